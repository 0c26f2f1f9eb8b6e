import type { InboxStore } from '../ports/inbox-store';
import { RetentionLoop, type RetentionTuning } from '../retention-loop';
import { optionalSweep } from '../retention-sweeps';

/** Default: processed inbox rows are kept a week. */
export const DEFAULT_INBOX_RETENTION_MS = 7 * 24 * 3_600_000;

export interface InboxRetentionOptions extends RetentionTuning {
  store: InboxStore<unknown>;
  /**
   * How long a processed message is remembered (default 7 days). It must exceed the longest time a
   * broker may redeliver a message after handing it out (consumer lag, replays from retention):
   * a duplicate arriving after its inbox row was deleted runs the handler again.
   */
  retentionMs?: number;
  /**
   * Dead letters older than this (counted from when they were dead-lettered) are deleted by the
   * retention leader; a redelivery of such a message is then handled again. Default: none, dead
   * letters are kept until released.
   */
  deadLetterTtlMs?: number;
}

/**
 * Keeps the inbox table bounded: deletes `processed` rows older than the retention period (and
 * failure counters of messages that never came back), in bounded batches, on one process at a time
 * (the inbox maintenance advisory lock). Dead letters are kept until released, or
 * until the optional `deadLetterTtlMs`.
 */
export class InboxRetention extends RetentionLoop {
  constructor(options: InboxRetentionOptions) {
    const { store } = options;
    super(
      {
        name: 'inbox-retention',
        optionPrefix: 'inbox.retention',
        defaultRetentionMs: DEFAULT_INBOX_RETENTION_MS,
      },
      (olderThanMs, limit) => store.deleteProcessedBatch(olderThanMs, limit),
      options,
      store.vacuum ? () => store.vacuum!() : undefined,
      optionalSweep(
        'inbox.retention.deadLetterTtlMs',
        'deadLetters',
        options.deadLetterTtlMs,
        store.deleteExpiredDeadLetterBatch?.bind(store),
        'inbox store',
      ),
    );
  }
}
