import { performance } from 'node:perf_hooks';
import { SampleBuffer, round, summarise, type LatencySummary } from './stats';

/**
 * One unit of work (one saga). Resolves when it is done; may resolve with the `performance.now()`
 * instant it actually completed (e.g. when a completion event fired) for a tighter end stamp.
 */
export type Operation = (worker: number) => Promise<number | void>;

export interface ClosedLoopOptions {
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** How long to wait for operations still in flight after the window closes. */
  drainTimeoutMs?: number;
  /** Called when the measurement window opens and closes (resource sampling hooks). */
  onWindowStart?: () => void;
  onWindowEnd?: () => void;
}

/** One closed-loop window: raw latency samples, kept so several windows can be combined exactly. */
export interface LoopWindow {
  windowMs: number;
  completed: number;
  errors: number;
  firstError: string | null;
  samples: Float64Array;
}

export interface ClosedLoopResult {
  concurrency: number;
  /** Measured time, summed over the windows. */
  windowMs: number;
  windows: number;
  /** Operations that completed inside the windows. */
  completed: number;
  /** Operations that failed (anywhere: warm-up, window or drain). */
  errors: number;
  firstError: string | null;
  /** completed / measured time. */
  throughputPerSec: number;
  latencyMs: LatencySummary;
}

/**
 * Closed loop: `concurrency` workers, each starting its next operation the moment the previous one
 * finished, so offered load adapts to the system and nothing queues outside it. Operations that
 * complete during the warm-up are discarded; the window counts every operation that completes
 * inside it (whenever it started), which is the standard closed-loop throughput definition.
 */
export async function runClosedLoop(
  op: Operation,
  options: ClosedLoopOptions,
): Promise<LoopWindow> {
  const { concurrency, warmupMs, durationMs } = options;
  const samples = new SampleBuffer();
  let errors = 0;
  let firstError: string | null = null;
  let completed = 0;

  const begin = performance.now();
  const windowStart = begin + warmupMs;
  const windowEnd = windowStart + durationMs;

  // The hooks come in pairs, exactly once each: under load the workers can see the window end (by
  // performance.now()) and drain before the close timer has run, so the drain calls what is left.
  let opened = false;
  let closed = false;
  const open = (): void => {
    if (opened) return;
    opened = true;
    options.onWindowStart?.();
  };
  const close = (): void => {
    if (closed) return;
    open();
    closed = true;
    options.onWindowEnd?.();
  };
  const windowOpen = setTimeout(open, warmupMs);
  const windowClose = setTimeout(close, warmupMs + durationMs);

  const worker = async (index: number): Promise<void> => {
    while (performance.now() < windowEnd) {
      const t0 = performance.now();
      try {
        const reported = await op(index);
        const t1 = typeof reported === 'number' ? reported : performance.now();
        if (t1 >= windowStart && t1 <= windowEnd) {
          completed++;
          samples.push(t1 - t0);
        }
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      }
    }
  };

  const workers = Array.from({ length: concurrency }, (_, i) => worker(i));
  const drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
  let drainTimer: NodeJS.Timeout | undefined;
  const drained = await Promise.race([
    Promise.all(workers).then(() => true),
    new Promise<boolean>((resolve) => {
      drainTimer = setTimeout(() => resolve(false), warmupMs + durationMs + drainTimeoutMs);
    }),
  ]);
  clearTimeout(drainTimer);
  clearTimeout(windowOpen);
  clearTimeout(windowClose);
  close();
  if (!drained) {
    throw new Error(
      `closed loop at concurrency ${concurrency} did not drain within ${drainTimeoutMs} ms after the window closed`,
    );
  }
  return { windowMs: durationMs, completed, errors, firstError, samples: samples.values() };
}

/** Several windows of the same system and concurrency as one result (percentiles over all samples). */
export function combineWindows(
  concurrency: number,
  windows: readonly LoopWindow[],
): ClosedLoopResult {
  const all = new SampleBuffer();
  for (const w of windows) for (const v of w.samples) all.push(v);
  const windowMs = windows.reduce((a, w) => a + w.windowMs, 0);
  const completed = windows.reduce((a, w) => a + w.completed, 0);
  return {
    concurrency,
    windowMs,
    windows: windows.length,
    completed,
    errors: windows.reduce((a, w) => a + w.errors, 0),
    firstError: windows.find((w) => w.firstError !== null)?.firstError ?? null,
    throughputPerSec: windowMs > 0 ? round(completed / (windowMs / 1000), 1) : 0,
    latencyMs: summarise(all.values()),
  };
}
