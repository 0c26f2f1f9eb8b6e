import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { LatencySlice } from './results';
import { round, SampleBuffer, summarise, type LatencySummary } from './stats';

/**
 * Commit → receive per message id: the producer stamps the instant its COMMIT returned, the
 * receiving side (the in-memory broker's subscriber, or the raw loop when its claim returns) the
 * instant the message reached it. Both are `performance.now()` in this one process.
 */
export class PublishLatencyRecorder {
  private readonly committedAt = new Map<string, number>();
  private readonly receivedAt = new Map<string, number>();
  private outstandingCount = 0;
  private waiting: { resolve: () => void } | undefined;

  /** Only messages committed inside the measured window are tracked. */
  committed(ids: readonly string[], at: number): void {
    for (const id of ids) {
      if (this.committedAt.has(id)) continue;
      this.committedAt.set(id, at);
      if (!this.receivedAt.has(id)) this.outstandingCount++;
    }
  }

  received(id: string, at: number): void {
    if (this.receivedAt.has(id)) return;
    this.receivedAt.set(id, at);
    if (this.committedAt.has(id)) this.outstandingCount--;
    if (this.waiting && this.outstandingCount === 0) this.waiting.resolve();
  }

  get tracked(): number {
    return this.committedAt.size;
  }

  outstanding(): number {
    return this.outstandingCount;
  }

  /** Resolves once every tracked message arrived, or after `timeoutMs` (the rest count as missing). */
  async settle(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.outstanding() > 0 && performance.now() < deadline) {
      await Promise.race([
        new Promise<void>((resolve) => (this.waiting = { resolve })),
        sleep(Math.min(50, Math.max(1, deadline - performance.now()))),
      ]);
      this.waiting = undefined;
    }
  }

  /** Latencies in ms (negative ones — receive stamped before the commit callback ran — as 0). */
  result(): { samples: Float64Array; missing: number; negative: number } {
    const samples = new SampleBuffer();
    let missing = 0;
    let negative = 0;
    for (const [id, commit] of this.committedAt) {
      const receive = this.receivedAt.get(id);
      if (receive === undefined) {
        missing++;
        continue;
      }
      const d = receive - commit;
      if (d < 0) negative++;
      samples.push(Math.max(0, d));
    }
    return { samples: samples.values(), missing, negative };
  }
}

/**
 * A write transaction left open anywhere on the server (an engineer's test run in another database
 * included) competes for the machine, and until 0.3 held back every outbox row newer than it (the
 * cluster-wide commit watermark). This samples the age of the oldest such transaction not started by the benchmark, so a latency
 * spike it caused can be told apart from one the relay caused.
 */
export class ForeignWriteTxSampler {
  private maxAgeMs = 0;
  private halt = false;
  private running: Promise<void> | undefined;

  constructor(private readonly client: pg.Client) {}

  start(): void {
    this.halt = false;
    this.maxAgeMs = 0;
    this.running = this.loop();
  }

  async stop(): Promise<number> {
    this.halt = true;
    await this.running;
    return round(this.maxAgeMs, 0);
  }

  private async loop(): Promise<void> {
    while (!this.halt) {
      const { rows } = await this.client.query<{ age_ms: number | null }>(
        `SELECT max(extract(epoch FROM clock_timestamp() - xact_start) * 1000)::float8 AS age_ms
         FROM pg_stat_activity
         WHERE backend_xid IS NOT NULL AND application_name NOT LIKE 'sage-bench%'`,
      );
      this.maxAgeMs = Math.max(this.maxAgeMs, rows[0]?.age_ms ?? 0);
      await sleep(100);
    }
  }
}

/** Accumulates one system's slices into the figures the results file keeps. */
export class LatencyTotals {
  readonly latency = new SampleBuffer();
  readonly commitMs = new SampleBuffer();
  windowMs = 0;
  committed = 0;
  missing = 0;
  negative = 0;
  lagMaxMs = 0;
  batches = 0;
  claimed = 0;
  errors = 0;
  firstError: string | null = null;
  foreignWriteTxMaxMs = 0;
  readonly slices: LatencySlice[] = [];

  addSamples(target: SampleBuffer, values: Float64Array): void {
    for (const v of values) target.push(v);
  }

  summary(): { latencyMs: LatencySummary; commitMs: LatencySummary } {
    return {
      latencyMs: summarise(this.latency.values()),
      commitMs: summarise(this.commitMs.values()),
    };
  }
}
