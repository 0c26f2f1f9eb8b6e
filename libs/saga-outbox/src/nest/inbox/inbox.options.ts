import type { InboxRetentionOptions } from '../../core/inbox/inbox-retention';

/** Inbox tuning (InboxModuleOptions); optional. */
export const INBOX_OPTIONS = Symbol('SAGE_INBOX_OPTIONS');

export interface InboxModuleOptions {
  /** Attempts (first delivery included) before a failing message is dead-lettered. Default 5. */
  maxAttempts?: number;
  /**
   * Subscribe the `@IdempotentHandler` methods to the broker on application bootstrap. Default
   * true; false leaves it to `IdempotentHandlerExplorer.subscribeAll()` (e.g. a process that only
   * produces, or tests that start consuming later).
   */
  subscribe?: boolean;
  /**
   * Leader-only deletion of processed inbox rows older than `retentionMs` (default 7 days; keep it
   * longer than any broker may redeliver). `enabled: false` leaves it to another deployment.
   */
  /**
   * Run the inbox's per-message dedup statement as a named prepared statement (parsed and planned
   * once per pooled connection; see PostgresInboxStoreOptions.preparedStatements). Default false.
   * Not with the embedded database, nor behind a PgBouncer older than 1.21 in transaction mode.
   */
  preparedStatements?: boolean;
  /**
   * Most deliveries an `@IdempotentHandler` handles in one inbox transaction when the broker hands
   * them over in batches (Kafka: consecutive records of one partition; RabbitMQ: first deliveries
   * arriving together, at most a quarter of its prefetch; NATS: first deliveries the subscriber
   * holds, one per key), 1 to 1000. Default 64. A
   * handler that throws rolls its batch back, and the batch is then handled one message at a time
   * (retries and dead letters as usual). 1: one transaction per message. See docs/inbox.md.
   */
  batchSize?: number;
  retention?: Omit<InboxRetentionOptions, 'store' | 'clock' | 'logger'> & { enabled?: boolean };
}
