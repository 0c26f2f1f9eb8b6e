import type { OutboxStore } from '../ports/outbox-store';
import { RetentionLoop, type RetentionTuning } from '../retention-loop';

export type { RetentionRun } from '../retention-loop';

export interface OutboxRetentionOptions extends RetentionTuning {
  store: OutboxStore;
  /** How long sent messages are kept (for inspection) before deletion. Default 1 hour. */
  retentionMs?: number;
}

/**
 * Keeps the hot outbox table small: deletes `sent` rows older than the retention period, in
 * bounded batches, on one process at a time (leader = whoever wins the maintenance advisory lock
 * for a batch; the others skip), and vacuums the table after large deletions. Dead letters are
 * never deleted here. See docs/outbox.md ("Retention") for why this is delete-in-batches rather
 * than time partitions.
 */
export class OutboxRetention extends RetentionLoop {
  constructor(options: OutboxRetentionOptions) {
    const { store } = options;
    super(
      { name: 'outbox-retention', optionPrefix: 'outbox.retention', defaultRetentionMs: 3_600_000 },
      (olderThanMs, limit) => store.deleteSentBatch(olderThanMs, limit),
      options,
      store.vacuum ? () => store.vacuum!() : undefined,
    );
  }
}
