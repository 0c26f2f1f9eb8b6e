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
 * A single-flight background loop: one tick at a time, rescheduled after it settles, stopped by
 * an AbortSignal, woken early by `wake()`. Errors are counted, logged with context and backed off;
 * they never stop the loop and never escape it.
 */
export class SingleFlightLoop {
  readonly stats: LoopStats = {
    ticks: 0,
    errors: 0,
    consecutiveErrors: 0,
    lastTickAt: null,
    lastError: null,
  };
  private wakeController = new AbortController();
  private running: Promise<void> | undefined;

  constructor(
    private readonly name: string,
    private readonly intervalMs: number,
    private readonly tick: (signal: AbortSignal) => Promise<void>,
    private readonly clock: Clock,
    private readonly logger: SageLogger,
  ) {}

  start(signal: AbortSignal): void {
    if (this.running) return;
    this.running = this.run(signal);
  }

  /** Runs the next tick now instead of after the interval. */
  wake(): void {
    this.wakeController.abort();
  }

  /** Resolves once the loop has stopped (after its signal aborted). */
  async stopped(): Promise<void> {
    await this.running;
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.tick(signal);
        this.stats.ticks++;
        this.stats.consecutiveErrors = 0;
        this.stats.lastTickAt = this.clock.now();
      } catch (error) {
        if (signal.aborted) break;
        this.stats.errors++;
        this.stats.consecutiveErrors++;
        this.stats.lastError = errorText(error);
        this.logger.error(`${this.name} tick failed`, {
          event: `${this.name}.error`,
          error: this.stats.lastError,
          consecutiveErrors: this.stats.consecutiveErrors,
        });
      }
      const backoff = this.stats.consecutiveErrors
        ? Math.min(this.intervalMs * 2 ** Math.min(this.stats.consecutiveErrors, 6), 60_000)
        : this.intervalMs;
      const wake = this.wakeController.signal;
      try {
        await this.clock.sleep(backoff, AbortSignal.any([signal, wake]));
      } catch {
        // woken or stopped
      }
      if (wake.aborted) this.wakeController = new AbortController();
    }
  }
}
