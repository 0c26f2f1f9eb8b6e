import { InvalidOptionsError } from '../errors';

/** How the relay retries a message whose publish failed. Exponential backoff with jitter. */
export interface OutboxRetryPolicy {
  /** Publish attempts before a message is dead-lettered (including the first). Default 10. */
  maxAttempts: number;
  /** Backoff after the first failure (ms). Default 500. */
  initialDelayMs: number;
  /** Cap on any single backoff (ms). Default 5 minutes. */
  maxDelayMs: number;
  /** Growth per attempt. Default 2. */
  multiplier: number;
  /**
   * Fraction of each delay that is randomised: 0 = none, 1 = "full jitter" (uniform in [0, delay]).
   * Default 0.5 (uniform in [delay/2, delay]): spreads retries of a failed batch without ever
   * retrying a poison message in a tight loop.
   */
  jitter: number;
}

export const DEFAULT_OUTBOX_RETRY: OutboxRetryPolicy = {
  maxAttempts: 10,
  initialDelayMs: 500,
  maxDelayMs: 5 * 60_000,
  multiplier: 2,
  jitter: 0.5,
};

export function resolveOutboxRetryPolicy(
  input: Partial<OutboxRetryPolicy> = {},
): OutboxRetryPolicy {
  const p: OutboxRetryPolicy = { ...DEFAULT_OUTBOX_RETRY };
  for (const [k, v] of Object.entries(input))
    if (v !== undefined) (p as unknown as Record<string, unknown>)[k] = v;
  if (!Number.isInteger(p.maxAttempts) || p.maxAttempts < 1) {
    throw new InvalidOptionsError(
      'outbox.retry.maxAttempts',
      `must be an integer >= 1, got ${String(p.maxAttempts)}`,
    );
  }
  for (const key of ['initialDelayMs', 'maxDelayMs'] as const) {
    if (typeof p[key] !== 'number' || !Number.isFinite(p[key]) || p[key] < 0) {
      throw new InvalidOptionsError(
        `outbox.retry.${key}`,
        `must be a finite number >= 0, got ${String(p[key])}`,
      );
    }
  }
  if (typeof p.multiplier !== 'number' || !Number.isFinite(p.multiplier) || p.multiplier < 1) {
    throw new InvalidOptionsError(
      'outbox.retry.multiplier',
      `must be >= 1, got ${String(p.multiplier)}`,
    );
  }
  if (typeof p.jitter !== 'number' || !(p.jitter >= 0 && p.jitter <= 1)) {
    throw new InvalidOptionsError(
      'outbox.retry.jitter',
      `must be between 0 and 1, got ${String(p.jitter)}`,
    );
  }
  return p;
}

/** What happens to a message after its `attemptsSoFar + 1`-th publish failed. */
export type FailureOutcome = { kind: 'retry'; delayMs: number } | { kind: 'dead_letter' };

/**
 * The backoff decision, in one place. `attemptsSoFar` counts failures before this one;
 * `retryable: false` (the broker said the message can never be accepted) dead-letters at once.
 */
export function failureOutcome(
  policy: OutboxRetryPolicy,
  attemptsSoFar: number,
  retryable: boolean,
  random: () => number = Math.random,
): FailureOutcome {
  const attempt = attemptsSoFar + 1;
  if (!retryable || attempt >= policy.maxAttempts) return { kind: 'dead_letter' };
  const base = Math.min(
    policy.maxDelayMs,
    policy.initialDelayMs * policy.multiplier ** (attempt - 1),
  );
  const delayMs = Math.round(base * (1 - policy.jitter * random()));
  return { kind: 'retry', delayMs };
}
