import type { InboxStore } from '../ports/inbox-store';
import { RetentionLoop, type RetentionRun, type RetentionTuning } from '../retention-loop';

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
}

/**
 * Keeps the inbox table bounded: deletes `processed` rows older than the retention period (and
 * failure counters of messages that never came back), in bounded batches, on one process at a time
 * (the inbox maintenance advisory lock). Dead letters are kept until released.
 */
export class InboxRetention {
  private readonly loop: RetentionLoop;

  constructor(options: InboxRetentionOptions) {
    this.loop = new RetentionLoop(
      {
        name: 'inbox-retention',
        optionPrefix: 'inbox.retention',
        defaultRetentionMs: DEFAULT_INBOX_RETENTION_MS,
      },
      (olderThanMs, limit) => options.store.deleteProcessedBatch(olderThanMs, limit),
      options,
    );
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

  runOnce(): Promise<RetentionRun> {
    return this.loop.runOnce();
  }
}
