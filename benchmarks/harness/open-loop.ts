import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CommitOperation } from './outbox-load';
import { SampleBuffer } from './stats';

export interface OpenLoopOptions {
  /** Transactions started per second, on a fixed schedule whatever the system does. */
  ratePerSec: number;
  /** Commits returning in the warm-up are not in the window. */
  warmupMs: number;
  durationMs: number;
  /** Transactions allowed in flight before the producer stops issuing (and falls behind). */
  maxInFlight?: number;
  /** Called when a transaction's COMMIT returned: its ids, the instant, and whether it is in the window. */
  onCommitted: (ids: readonly string[], committedAt: number, inWindow: boolean) => void;
  onWindowStart?: () => void;
  onWindowEnd?: () => void;
}

export interface OpenLoopResult {
  windowMs: number;
  /** Transactions whose COMMIT returned inside the window. */
  committedInWindow: number;
  /** Every transaction that committed (warm-up and stragglers included). */
  committedTotal: number;
  errors: number;
  firstError: string | null;
  /** Scheduled start → COMMIT returned, for the transactions in the window. */
  commitMs: Float64Array;
  /** The latest a transaction started after its scheduled instant. */
  lagMaxMs: number;
}

/**
 * Open loop: transaction `n` is due at `start + n / rate`; a single-flight scheduler starts every
 * due transaction without waiting for earlier ones, so a slow system builds a queue instead of
 * slowing the offered load (no coordinated omission). Returns after every started transaction
 * settled.
 */
export async function runOpenLoop(
  op: CommitOperation,
  options: OpenLoopOptions,
): Promise<OpenLoopResult> {
  const { ratePerSec, warmupMs, durationMs } = options;
  const maxInFlight = options.maxInFlight ?? 5000;
  const begin = performance.now();
  const windowStart = begin + warmupMs;
  const windowEnd = windowStart + durationMs;
  const commitMs = new SampleBuffer();
  const inFlight = new Set<Promise<void>>();
  let issued = 0;
  let committedInWindow = 0;
  let committedTotal = 0;
  let errors = 0;
  let firstError: string | null = null;
  let lagMaxMs = 0;
  let windowOpen = false;

  const start = (n: number, scheduledAt: number): void => {
    const run = op(n).then(
      (ids) => {
        const at = performance.now();
        const inWindow = at >= windowStart && at <= windowEnd;
        committedTotal++;
        if (inWindow) {
          committedInWindow++;
          commitMs.push(at - scheduledAt);
        }
        options.onCommitted(ids, at, inWindow);
      },
      (error: unknown) => {
        errors++;
        firstError ??= error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      },
    );
    const tracked = run.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };

  for (;;) {
    const now = performance.now();
    if (!windowOpen && now >= windowStart) {
      windowOpen = true;
      options.onWindowStart?.();
    }
    if (now >= windowEnd) break;
    const due = Math.floor(((now - begin) * ratePerSec) / 1000);
    while (issued < due && inFlight.size < maxInFlight) {
      const scheduledAt = begin + (issued * 1000) / ratePerSec;
      lagMaxMs = Math.max(lagMaxMs, now - scheduledAt);
      start(issued++, scheduledAt);
    }
    await sleep(1);
  }
  options.onWindowEnd?.();
  await Promise.all(inFlight);
  return {
    windowMs: durationMs,
    committedInWindow,
    committedTotal,
    errors,
    firstError,
    commitMs: commitMs.values(),
    lagMaxMs,
  };
}
