import type { Clock } from './ports/clock';
import type { SageLogger } from './ports/logger';
import { errorText } from './error-text';

export interface LoopStats {
  ticks: number;
  errors: number;
  consecutiveErrors: number;
  lastTickAt: number | null;
  lastError: string | null;
}

/**
 * How long a loop waits after failed ticks: `firstMs` after the first, doubling per failure in a
 * row up to `maxMs`. The cap is what bounds recovery: once the cause is gone (the database is back),
 * the loop notices within `maxMs`.
 */
export interface LoopErrorBackoff {
  firstMs: number;
  maxMs: number;
}

export interface SingleFlightLoopOptions {
  /** In logs: `<name> tick failed`, events `<name>.error` and `<name>.recovered`. */
  name: string;
  /** Pause after a tick that succeeded (or until `wake()`). */
  intervalMs: number;
  /** Default: `intervalMs` doubling up to a minute (or `intervalMs`, if longer): for maintenance. */
  errorBackoff?: LoopErrorBackoff;
  /**
   * While ticks keep failing, the error is logged when the failures begin and then at most this
   * often (with the count so far); the failures between are logged at debug. Default 10 s.
   */
  errorLogIntervalMs?: number;
  tick: (signal: AbortSignal) => Promise<void>;
  clock: Clock;
  logger: SageLogger;
}

const DEFAULT_MAX_ERROR_BACKOFF_MS = 60_000;
const DEFAULT_ERROR_LOG_INTERVAL_MS = 10_000;

/**
 * A single-flight background loop: one tick at a time, rescheduled after it settles, stopped by
 * an AbortSignal, woken early by `wake()`. Errors are counted, logged with context and backed off;
 * they never stop the loop and never escape it. A run of failures (a database outage) is logged
 * when it begins, at most every `errorLogIntervalMs` while it lasts, and once when it ends, with
 * the count: not once per tick.
 */
export class SingleFlightLoop {
  readonly stats: LoopStats = {
    ticks: 0,
    errors: 0,
    consecutiveErrors: 0,
    lastTickAt: null,
    lastError: null,
  };
  private readonly name: string;
  private readonly intervalMs: number;
  private readonly backoff: LoopErrorBackoff;
  private readonly errorLogIntervalMs: number;
  private readonly tick: (signal: AbortSignal) => Promise<void>;
  private readonly clock: Clock;
  private readonly logger: SageLogger;
  private wakeController = new AbortController();
  private running: Promise<void> | undefined;
  /** When the current run of failed ticks began, and when it was last logged at error level. */
  private failingSince = 0;
  private lastErrorLogAt = 0;

  constructor(options: SingleFlightLoopOptions) {
    this.name = options.name;
    this.intervalMs = options.intervalMs;
    this.backoff = options.errorBackoff ?? {
      firstMs: options.intervalMs,
      maxMs: Math.max(options.intervalMs, DEFAULT_MAX_ERROR_BACKOFF_MS),
    };
    this.errorLogIntervalMs = options.errorLogIntervalMs ?? DEFAULT_ERROR_LOG_INTERVAL_MS;
    this.tick = options.tick;
    this.clock = options.clock;
    this.logger = options.logger;
  }

  start(signal: AbortSignal): void {
    if (this.running) return;
    this.running = this.run(signal);
  }

  /** Runs the next tick now instead of after the interval (or the error backoff). */
  wake(): void {
    this.wakeController.abort();
  }

  /** Resolves once the loop has stopped (after its signal aborted). */
  async stopped(): Promise<void> {
    await this.running;
  }

  /** The wait after `consecutiveErrors` failed ticks in a row (0: after a success). */
  pauseAfter(consecutiveErrors: number): number {
    if (consecutiveErrors === 0) return this.intervalMs;
    const { firstMs, maxMs } = this.backoff;
    return Math.min(firstMs * 2 ** Math.min(consecutiveErrors - 1, 30), maxMs);
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.tick(signal);
        this.succeeded();
      } catch (error) {
        if (signal.aborted) break;
        this.failed(error);
      }
      const wake = this.wakeController.signal;
      try {
        await this.clock.sleep(
          this.pauseAfter(this.stats.consecutiveErrors),
          AbortSignal.any([signal, wake]),
        );
      } catch {
        // woken or stopped
      }
      if (wake.aborted) this.wakeController = new AbortController();
    }
  }

  private succeeded(): void {
    const failedTicks = this.stats.consecutiveErrors;
    this.stats.ticks++;
    this.stats.consecutiveErrors = 0;
    this.stats.lastTickAt = this.clock.now();
    if (failedTicks === 0) return;
    this.logger.info(`${this.name} recovered after ${failedTicks} failed ticks`, {
      event: `${this.name}.recovered`,
      failedTicks,
      failingForMs: this.stats.lastTickAt - this.failingSince,
      lastError: this.stats.lastError,
    });
  }

  private failed(error: unknown): void {
    const now = this.clock.now();
    this.stats.errors++;
    this.stats.consecutiveErrors++;
    this.stats.lastError = errorText(error);
    const consecutiveErrors = this.stats.consecutiveErrors;
    if (consecutiveErrors === 1) this.failingSince = now;
    const fields = {
      event: `${this.name}.error`,
      error: this.stats.lastError,
      consecutiveErrors,
      failingForMs: now - this.failingSince,
      retryInMs: this.pauseAfter(consecutiveErrors),
    };
    if (consecutiveErrors > 1 && now - this.lastErrorLogAt < this.errorLogIntervalMs) {
      this.logger.debug(`${this.name} tick failed`, fields);
      return;
    }
    this.lastErrorLogAt = now;
    this.logger.error(
      consecutiveErrors === 1
        ? `${this.name} tick failed`
        : `${this.name} still failing (${consecutiveErrors} ticks in a row)`,
      fields,
    );
  }
}
