import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { SampleBuffer } from './stats';

/**
 * A plain `VACUUM <table>` every `everyMs` on its own connection, single-flight (the next one is
 * scheduled after the previous finished): what a maintenance task could run after its deletes
 * instead of waiting for autovacuum, which visits a database at most once per
 * `autovacuum_naptime` (60 s by default).
 */
export class PeriodicVacuum {
  readonly durationsMs = new SampleBuffer();
  private halt = new AbortController();
  private running: Promise<void> | undefined;

  constructor(
    private readonly client: pg.Client,
    /** Already quoted, e.g. `"sage"."outbox_message"`. */
    private readonly table: string,
    private readonly everyMs: number,
  ) {}

  start(): void {
    this.halt = new AbortController();
    this.running = this.loop(this.halt.signal);
  }

  async stop(): Promise<void> {
    this.halt.abort();
    await this.running;
  }

  private async loop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const slept = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(true), this.everyMs);
        signal.addEventListener(
          'abort',
          () => {
            clearTimeout(timer);
            resolve(false);
          },
          { once: true },
        );
      });
      if (!slept) return;
      const t0 = performance.now();
      await this.client.query(`VACUUM ${this.table}`);
      this.durationsMs.push(performance.now() - t0);
    }
  }
}
