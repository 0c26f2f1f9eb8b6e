import type { OutboxStore } from '../ports/outbox-store';
import { RetentionLoop, type RetentionRun, type RetentionTuning } from '../retention-loop';

export type { RetentionRun } from '../retention-loop';

export interface OutboxRetentionOptions extends RetentionTuning {
  store: OutboxStore;
  /** How long sent messages are kept (for inspection) before deletion. Default 1 hour. */
  retentionMs?: number;
}

/**
 * Keeps the hot outbox table small: deletes `sent` rows older than the retention period, in
 * bounded batches, on one process at a time (leader = whoever wins the maintenance advisory lock
 * for a batch; the others skip). Dead letters are never deleted here. See docs/outbox.md
 * ("Retention") for why this is delete-in-batches rather than time partitions.
 */
export class OutboxRetention {
  private readonly loop: RetentionLoop;

  constructor(options: OutboxRetentionOptions) {
    this.loop = new RetentionLoop(
      { name: 'outbox-retention', optionPrefix: 'outbox.retention', defaultRetentionMs: 3_600_000 },
      (olderThanMs, limit) => options.store.deleteSentBatch(olderThanMs, limit),
      options,
      options.store.vacuum ? () => options.store.vacuum!() : undefined,
    );
  }

  get deletedTotal(): number {
    return this.loop.deletedTotal;
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  get stats(): RetentionLoop['stats'] {
    return this.loop.stats;
  }

  /** One maintenance run: batches until a short batch, the run bound, or losing leadership. */
  runOnce(): Promise<RetentionRun> {
    return this.loop.runOnce();
  }
}
