import { performance } from 'node:perf_hooks';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import pg from 'pg';
import { uuidv7 } from '@sage/saga-outbox';
import { OUTBOX_TABLES } from './outbox-load';
import * as q from './raw-sql';
import { SampleBuffer } from './stats';

export interface RawRelayOptions {
  client: pg.ClientConfig;
  batchSize: number;
  leaseMs: number;
  /**
   * What to do after a claim came back empty: `{ pollIntervalMs, listen }` sleeps like the relay
   * (until the interval passes, or a NOTIFY arrives on its own LISTEN connection when `listen`);
   * `'spin'` claims again at once (draining a pre-loaded backlog as fast as the SQL allows).
   */
  idle: { pollIntervalMs: number; listen: boolean } | 'spin';
  /** Called with the claimed rows the moment the claim returned (before the mark). */
  onClaimed?: (rows: readonly q.OutboxMessageRow[], at: number) => void;
  /**
   * Publishes the claimed rows between claim and mark (the raw twin of the relay's broker step);
   * resolves once the broker acknowledged them. Absent: nothing is published (database only).
   */
  publish?: (rows: readonly q.OutboxMessageRow[]) => Promise<void>;
  /** Called after each mark with the running total marked sent. */
  onMarked?: (totalSent: number) => void;
}

export interface RawRelayStats {
  batches: number;
  emptyClaims: number;
  claimed: number;
  sent: number;
  claimMs: Float64Array;
  markMs: Float64Array;
}

/**
 * The raw ceiling of the relay: the very claim and mark-sent statements OutboxRelay sends (their
 * copies in raw-sql.ts, same batch size and lease), on one plain node-postgres connection,
 * in a loop — no TypeORM, no broker, no row mapping. Idle behaviour mirrors SingleFlightLoop: a
 * wake-up that arrives while a round runs makes the next wait return at once.
 */
export class RawRelay {
  private readonly client: pg.Client;
  private listener: pg.Client | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private woken = false;
  private wakeSleeper: (() => void) | undefined;
  private readonly claimMs = new SampleBuffer();
  private readonly markMs = new SampleBuffer();
  private readonly counters = { batches: 0, emptyClaims: 0, claimed: 0, sent: 0 };

  constructor(private readonly options: RawRelayOptions) {
    this.client = new pg.Client(options.client);
  }

  /** Connects (and LISTENs when asked) before `start()`, so connecting is not measured. */
  async connect(): Promise<void> {
    await this.client.connect();
    const idle = this.options.idle;
    if (idle !== 'spin' && idle.listen) {
      this.listener = new pg.Client(this.options.client);
      await this.listener.connect();
      this.listener.on('notification', (msg) => {
        if (msg.channel === OUTBOX_TABLES.channel) this.wake();
      });
      await this.listener.query(`LISTEN "${OUTBOX_TABLES.channel}"`);
    }
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    await this.running;
  }

  async close(): Promise<void> {
    await this.stop();
    await this.listener?.end();
    await this.client.end();
  }

  get stats(): RawRelayStats {
    return {
      ...this.counters,
      claimMs: this.claimMs.values(),
      markMs: this.markMs.values(),
    };
  }

  private wake(): void {
    this.woken = true;
    this.wakeSleeper?.();
  }

  private async loop(): Promise<void> {
    const { batchSize, leaseMs, idle } = this.options;
    while (!this.stopped) {
      const token = uuidv7();
      const claim = q.claimOutboxMessages(OUTBOX_TABLES, {
        claimToken: token,
        limit: batchSize,
        leaseMs,
      });
      const t0 = performance.now();
      const { rows } = await this.client.query<q.OutboxMessageRow>(claim.text, [...claim.values]);
      const t1 = performance.now();
      this.claimMs.push(t1 - t0);
      if (rows.length) {
        this.counters.batches++;
        this.counters.claimed += rows.length;
        this.options.onClaimed?.(rows, t1);
        if (this.options.publish) await this.options.publish(rows);
        const tMark = performance.now();
        const mark = q.markOutboxSent(OUTBOX_TABLES, {
          claimToken: token,
          ids: rows.map((r) => r.id),
        });
        const marked = await this.client.query(mark.text, [...mark.values]);
        this.markMs.push(performance.now() - tMark);
        this.counters.sent += marked.rowCount ?? 0;
        this.options.onMarked?.(this.counters.sent);
        continue;
      }
      this.counters.emptyClaims++;
      if (idle === 'spin') {
        await yieldToLoop();
        continue;
      }
      if (this.woken) {
        this.woken = false;
        continue;
      }
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.wakeSleeper = undefined;
          resolve();
        };
        const timer = setTimeout(done, idle.pollIntervalMs);
        this.wakeSleeper = done;
      });
      this.woken = false;
    }
  }
}
