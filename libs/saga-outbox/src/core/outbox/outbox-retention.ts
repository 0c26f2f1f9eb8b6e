import { InvalidOptionsError } from '../errors';
import { SingleFlightLoop } from '../loop';
import { systemClock, type Clock } from '../ports/clock';
import { silentLogger, type SageLogger } from '../ports/logger';
import type { OutboxStore } from '../ports/outbox-store';

export interface OutboxRetentionOptions {
  store: OutboxStore;
  /** How long sent messages are kept (for inspection) before deletion. Default 1 hour. */
  retentionMs?: number;
  /** Rows deleted per statement (bounds lock time and WAL bursts). Default 1000. */
  batchSize?: number;
  /** Pause between maintenance runs. Default 30 s. */
  intervalMs?: number;
  /** Batches per run at most, so one run never monopolises the table. Default 100. */
  maxBatchesPerRun?: number;
  clock?: Clock;
  logger?: SageLogger;
}

export interface RetentionRun {
  /** False when another process held the maintenance lock (it is the leader right now). */
  leader: boolean;
  deleted: number;
}

/**
 * Keeps the hot outbox table small: deletes `sent` rows older than the retention period, in
 * bounded batches, on one process at a time (leader = whoever wins the maintenance advisory lock
 * for a batch; the others skip). Dead letters are never deleted here. See docs/outbox.md
 * ("Retention") for why this is delete-in-batches rather than time partitions.
 */
export class OutboxRetention {
  private readonly retentionMs: number;
  private readonly batchSize: number;
  private readonly maxBatchesPerRun: number;
  private readonly loop: SingleFlightLoop;
  private readonly controller = new AbortController();
  private readonly logger: SageLogger;
  deletedTotal = 0;

  constructor(private readonly options: OutboxRetentionOptions) {
    this.retentionMs = positive('retentionMs', options.retentionMs, 60 * 60_000, true);
    this.batchSize = positive('batchSize', options.batchSize, 1000);
    this.maxBatchesPerRun = positive('maxBatchesPerRun', options.maxBatchesPerRun, 100);
    const intervalMs = positive('intervalMs', options.intervalMs, 30_000);
    this.logger = options.logger ?? silentLogger;
    this.loop = new SingleFlightLoop(
      'outbox-retention',
      intervalMs,
      () => this.runOnce().then(() => undefined),
      options.clock ?? systemClock,
      this.logger,
    );
  }

  start(): void {
    this.loop.start(this.controller.signal);
  }

  async stop(): Promise<void> {
    this.controller.abort();
    await this.loop.stopped();
  }

  get stats(): { deletedTotal: number; loop: SingleFlightLoop['stats'] } {
    return { deletedTotal: this.deletedTotal, loop: { ...this.loop.stats } };
  }

  /** One maintenance run: batches until a short batch, the run bound, or losing leadership. */
  async runOnce(): Promise<RetentionRun> {
    let deleted = 0;
    for (let i = 0; i < this.maxBatchesPerRun && !this.controller.signal.aborted; i++) {
      const n = await this.options.store.deleteSentBatch(this.retentionMs, this.batchSize);
      if (n === null) return { leader: i > 0, deleted };
      deleted += n;
      this.deletedTotal += n;
      if (n < this.batchSize) break;
    }
    if (deleted)
      this.logger.debug('outbox retention deleted sent messages', {
        event: 'outbox.retention.deleted',
        deleted,
      });
    return { leader: true, deleted };
  }
}

function positive(
  name: string,
  value: number | undefined,
  fallback: number,
  allowZero = false,
): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    throw new InvalidOptionsError(
      `outbox.retention.${name}`,
      `must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${String(value)}`,
    );
  }
  return v;
}
