import type { JsonValue } from '../json';

/** One message as one consumer sees it: the inbox's primary key. */
export interface InboxKey {
  /** The consumer (handler) name: each consumer handles each message once. */
  consumer: string;
  /** The producer's message id (Sage: the outbox row id, sent as `ce-id` / `message-id` / `Nats-Msg-Id`). */
  messageId: string;
}

/** A failed attempt to record, after the handler's transaction rolled back. */
export interface InboxFailure extends InboxKey {
  /** Why the attempt failed (stored as the last error; the dead letter's reason at the end). */
  error: string;
  /** Attempts allowed in all: the failure that reaches this count dead-letters the message. */
  maxAttempts: number;
  /** The delivered message, stored with a dead letter so operators can see what failed. */
  message: JsonValue | null;
}

/**
 * What recording a failure did:
 * - `counted`: one more failed attempt (`attempts` so far); the message should be redelivered;
 * - `dead-lettered`: this failure reached `maxAttempts`; the message is now a dead letter in the
 *   inbox (never handled again) and should be acknowledged;
 * - `already-done`: the inbox already holds the message (another delivery handled or dead-lettered
 *   it meanwhile); nothing was recorded and the message should be acknowledged.
 */
export type InboxFailureOutcome =
  | { outcome: 'counted'; attempts: number }
  | { outcome: 'dead-lettered'; attempts: number }
  | { outcome: 'already-done' };

export type InboxStatus = 'processed' | 'dead_letter';

/** A row of the inbox: a message this consumer handled, or gave up on. */
export interface InboxEntry extends InboxKey {
  status: InboxStatus;
  /** The attempt that succeeded, or the attempts made before dead-lettering. */
  attempts: number;
  /** The dead letter's reason; null when processed. */
  lastError: string | null;
  /** The delivered message (dead letters only); null when processed. */
  message: JsonValue | null;
  processedAt: Date;
}

/** Failed attempts of a message not yet handled. */
export interface InboxFailureRecord extends InboxKey {
  attempts: number;
  lastError: string;
  firstFailedAt: Date;
  lastFailedAt: Date;
}

export interface InboxDeadLetterPage {
  entries: InboxEntry[];
  /** Pass as `after` for the next page; null on the last page. */
  nextCursor: InboxKey | null;
}

/**
 * Storage of the consumer inbox (PostgreSQL: persistence/postgres/postgres-inbox-store.ts; memory:
 * testing/in-memory-inbox-store.ts). `Tx` is the transaction handle the handler writes through (a
 * TypeORM EntityManager on PostgreSQL).
 *
 * Contract:
 * - `transaction(body)` runs `body` in one new transaction: commits when it resolves, rolls back
 *   and rethrows when it rejects.
 * - `markProcessed(tx, key)` records the key inside `tx` unless the inbox already holds it. While
 *   another open transaction holds an uncommitted row for the same key it waits for that one to end
 *   (commit → this is a duplicate; rollback → this one records it), so two racing deliveries never
 *   both get to run the handler. It also clears the key's failure record inside `tx` (a rollback
 *   restores it). Returns the attempt number (failures recorded so far + 1), or null for a duplicate.
 * - `recordFailure` runs in a transaction of its own (the handler's has rolled back): counts the
 *   attempt and, when the count reaches `maxAttempts`, moves the message into the inbox as a dead
 *   letter, atomically with the count.
 */
export interface InboxStore<Tx = unknown> {
  transaction<T>(body: (tx: Tx) => Promise<T>): Promise<T>;
  markProcessed(tx: Tx, key: InboxKey): Promise<number | null>;
  /**
   * Optional batch form of `markProcessed`, for several deliveries handled in one transaction
   * (InboxProcessor.processBatch): records `consumer`'s distinct `messageIds` inside `tx` in one
   * round trip, with markProcessed's semantics for each (waits on a concurrent uncommitted row of
   * the same key; clears the failure records inside `tx`). Returns, aligned with `messageIds`, each
   * one's attempt number, or null for a duplicate. Rejects when `messageIds` repeats an id. A store
   * without it gets no batches: every delivery goes through `markProcessed`.
   */
  markProcessedBatch?(
    tx: Tx,
    consumer: string,
    messageIds: readonly string[],
  ): Promise<(number | null)[]>;
  recordFailure(failure: InboxFailure): Promise<InboxFailureOutcome>;

  // Inspection / operations ----------------------------------------------------------------------
  get(key: InboxKey): Promise<InboxEntry | undefined>;
  getFailure(key: InboxKey): Promise<InboxFailureRecord | undefined>;
  /** Dead letters, oldest key first, optionally of one consumer; keyset-paged by `after`. */
  listDeadLetters(
    filter: { consumer?: string },
    limit: number,
    after?: InboxKey,
  ): Promise<InboxDeadLetterPage>;
  /**
   * Deletes dead letters of `consumer` (only dead letters), so that the next delivery of those
   * messages is handled again. Returns the message ids deleted.
   */
  deleteDeadLetters(consumer: string, messageIds: readonly string[]): Promise<string[]>;

  // Retention ---------------------------------------------------------------------------------
  /**
   * If this process wins the inbox maintenance lock (try, never wait), deletes up to `limit`
   * processed rows handled more than `olderThanMs` ago, and failure counters last touched that long
   * ago (their message never came back); returns how many rows went. Null: another process holds
   * the lock. Dead letters stay.
   */
  deleteProcessedBatch(olderThanMs: number, limit: number): Promise<number | null>;

  /**
   * Optional (`retention.deadLetterTtlMs`): deletes up to `limit` dead letters dead-lettered more
   * than `olderThanMs` ago (their messages would be handled again if redelivered). Null without the
   * lock.
   */
  deleteExpiredDeadLetterBatch?(olderThanMs: number, limit: number): Promise<number | null>;

  /**
   * Optional: reclaims the space of deleted rows now (PostgreSQL: `VACUUM`), so a busy inbox stays
   * small between autovacuum runs. Run by the retention leader after a large deletion.
   */
  vacuum?(): Promise<void>;
}
