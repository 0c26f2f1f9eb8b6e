import { invalidOption } from '../options';
import type { OutboxStore } from '../ports/outbox-store';
import { RetentionLoop, type RetentionTuning } from '../retention-loop';
import { optionalSweep } from '../retention-sweeps';

export type { RetentionRun } from '../retention-loop';

/** Default time an archived sent message is kept in the archive: 30 days. */
export const DEFAULT_OUTBOX_ARCHIVE_KEEP_MS = 30 * 24 * 3_600_000;

/** `retention.archive`: move sent messages to `outbox_message_archive` instead of deleting them. */
export interface OutboxArchiveOptions {
  /** How long a message stays in the archive after it was moved there. Default 30 days. */
  keepMs?: number;
}

export interface OutboxRetentionOptions extends RetentionTuning {
  store: OutboxStore;
  /** How long sent messages are kept (for inspection) before deletion. Default 1 hour. */
  retentionMs?: number;
  /**
   * Dead letters older than this (counted from when they became dead letters) are deleted by the
   * retention leader. Default: none, dead letters are kept until an operator replays or discards them.
   */
  deadLetterTtlMs?: number;
  /**
   * Archive sent messages past `retentionMs` instead of deleting them (moved in one transaction per
   * batch), and purge the archive after `keepMs`. Default: off (sent messages are deleted).
   */
  archive?: OutboxArchiveOptions;
}

/**
 * Keeps the hot outbox table small: deletes `sent` rows older than the retention period (or moves
 * them to the archive), in bounded batches, on one process at a time (leader = whoever wins the
 * maintenance advisory lock for a batch; the others skip), and vacuums the table after large
 * deletions. Dead letters are deleted only past the optional `deadLetterTtlMs`. See docs/outbox.md
 * ("Retention") for why this is delete-in-batches rather than time partitions.
 */
export class OutboxRetention extends RetentionLoop {
  /** True when sent rows are archived rather than deleted (`deletedTotal` then counts moved rows). */
  readonly archiving: boolean;

  constructor(options: OutboxRetentionOptions) {
    const { store, archive } = options;
    if (archive !== undefined && (typeof archive !== 'object' || archive === null))
      throw invalidOption(
        'outbox.retention.archive',
        'must be an object such as { keepMs: 2592000000 }',
      );
    if (archive && !store.archiveSentBatch)
      throw invalidOption(
        'outbox.retention.archive',
        'this outbox store cannot archive; use the PostgreSQL store, or remove the option',
      );
    const sweeps = [
      ...optionalSweep(
        'outbox.retention.deadLetterTtlMs',
        'deadLetters',
        options.deadLetterTtlMs,
        store.deleteExpiredDeadLetterBatch?.bind(store),
        'outbox store',
      ),
      ...(archive
        ? optionalSweep(
            'outbox.retention.archive.keepMs',
            'archivePurged',
            archive.keepMs ?? DEFAULT_OUTBOX_ARCHIVE_KEEP_MS,
            store.purgeArchiveBatch?.bind(store),
            'outbox store',
          )
        : []),
    ];
    super(
      { name: 'outbox-retention', optionPrefix: 'outbox.retention', defaultRetentionMs: 3_600_000 },
      archive
        ? (olderThanMs, limit) => store.archiveSentBatch!(olderThanMs, limit)
        : (olderThanMs, limit) => store.deleteSentBatch(olderThanMs, limit),
      options,
      store.vacuum ? () => store.vacuum!() : undefined,
      sweeps,
    );
    this.archiving = archive !== undefined;
  }
}
