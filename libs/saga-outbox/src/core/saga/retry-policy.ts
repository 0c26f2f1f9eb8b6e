import { InvalidOptionsError } from '../errors';

/** How a step (or a compensation) is retried. Backoff is exponential with full jitter. */
export interface RetryPolicy {
  /** Total attempts including the first. 1 = no retry. */
  maxAttempts: number;
  /** Upper bound of the first backoff (ms). */
  initialDelayMs: number;
  /** Cap for any single backoff (ms). */
  maxDelayMs: number;
  /** Growth factor per attempt. */
  multiplier: number;
  /** Which errors are worth retrying; default: every error. */
  retryable?: (error: unknown) => boolean;
}

export type RetryPolicyInput = Partial<RetryPolicy>;

export const DEFAULT_STEP_RETRY: RetryPolicy = {
  maxAttempts: 3,
  initialDelayMs: 100,
  maxDelayMs: 10_000,
  multiplier: 2,
};

export const DEFAULT_COMPENSATION_RETRY: RetryPolicy = {
  maxAttempts: 10,
  initialDelayMs: 100,
  maxDelayMs: 30_000,
  multiplier: 2,
};

export function resolveRetryPolicy(
  input: RetryPolicyInput | undefined,
  defaults: RetryPolicy,
  where: string,
): RetryPolicy {
  const policy: RetryPolicy = { ...defaults, ...stripUndefined(input ?? {}) };
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1) {
    throw new InvalidOptionsError(
      `${where}.maxAttempts`,
      `must be an integer >= 1, got ${String(policy.maxAttempts)}`,
    );
  }
  for (const key of ['initialDelayMs', 'maxDelayMs'] as const) {
    if (!Number.isFinite(policy[key]) || policy[key] < 0) {
      throw new InvalidOptionsError(
        `${where}.${key}`,
        `must be a finite number >= 0, got ${String(policy[key])}`,
      );
    }
  }
  if (!Number.isFinite(policy.multiplier) || policy.multiplier < 1) {
    throw new InvalidOptionsError(
      `${where}.multiplier`,
      `must be >= 1, got ${String(policy.multiplier)}`,
    );
  }
  if (policy.retryable !== undefined && typeof policy.retryable !== 'function') {
    throw new InvalidOptionsError(`${where}.retryable`, 'must be a function (error) => boolean');
  }
  return Object.freeze(policy);
}

/**
 * Full-jitter backoff ("Exponential Backoff And Jitter", AWS architecture blog): a uniform draw
 * from [0, min(cap, initial * multiplier^(attempt-1))]. `attempt` is the attempt that just failed (1-based).
 */
export function backoffDelay(
  policy: RetryPolicy,
  attempt: number,
  random: () => number = Math.random,
): number {
  // With no initial delay there is no backoff; checked first because multiplier^attempt can
  // overflow to Infinity and 0 * Infinity is NaN.
  if (policy.initialDelayMs === 0) return 0;
  const ceiling = Math.min(
    policy.maxDelayMs,
    policy.initialDelayMs * Math.pow(policy.multiplier, attempt - 1),
  );
  return Math.floor(random() * ceiling);
}

export function isRetryable(policy: RetryPolicy, error: unknown): boolean {
  if (!policy.retryable) return true;
  try {
    return policy.retryable(error);
  } catch {
    return false;
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
