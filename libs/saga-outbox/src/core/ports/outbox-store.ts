import type {
  ClaimedOutboxMessage,
  NewOutboxMessage,
  OutboxMessage,
} from '../outbox/outbox-message';

/** A failed publish to record: back to `pending` after `delayMs`, or dead-lettered. */
export interface OutboxFailure {
  id: string;
  error: string;
  /** null → dead_letter (with `error` as the reason). */
  delayMs: number | null;
}

export interface DeadLetterFilter {
  destination?: string;
  type?: string;
  key?: string;
  sagaId?: string;
  /** Written (by the business transaction) before this instant. */
  createdBefore?: Date;
}

export interface DeadLetterPage {
  messages: OutboxMessage[];
  /** Pass as `after` for the next page; null on the last page. */
  nextCursor: string | null;
}

export interface OutboxWakeSubscription {
  close(): Promise<void>;
}

/**
 * Write side: inserts messages inside the caller's transaction `Tx` (a TypeORM EntityManager on
 * PostgreSQL). Never opens a transaction of its own.
 */
export interface OutboxWriter<Tx = unknown> {
  /** True when `tx` is a usable, open transaction handle. */
  isTransaction(tx: Tx): boolean;
  insert(tx: Tx, messages: readonly NewOutboxMessage[]): Promise<void>;
}

/**
 * Relay side of the outbox. Every status change is one conditional statement implementing one of
 * OUTBOX_TRANSITIONS; the ones out of `claimed` are fenced by `claimToken` and return the ids they
 * actually changed (a stale token changes nothing and returns none).
 */
export interface OutboxStore {
  /**
   * Claims up to `limit` messages: pending, due, committed below the commit watermark, and the
   * head of their key (no earlier message of the same key is pending or claimed). Sets the token
   * and a lease of `leaseMs` on the database clock. Returned in publish order.
   */
  claim(claimToken: string, limit: number, leaseMs: number): Promise<ClaimedOutboxMessage[]>;
  markSent(claimToken: string, ids: readonly string[]): Promise<string[]>;
  markFailed(claimToken: string, failures: readonly OutboxFailure[]): Promise<string[]>;
  /** Hands claims back untouched (attempts unchanged, due now). */
  release(claimToken: string, ids: readonly string[]): Promise<string[]>;
  /** Releases up to `limit` claims whose lease expired (their relay died or stalled). Returns how many. */
  reapExpired(limit: number): Promise<number>;
  /**
   * LISTEN for the write-side hint; null when the database cannot deliver notifications to this
   * process (embedded PGlite behind its socket multiplexer) — the relay then only polls.
   */
  listen(
    onNotify: () => void,
    onError: (error: unknown) => void,
  ): Promise<OutboxWakeSubscription | null>;

  // Dead letters ------------------------------------------------------------------------------
  get(id: string): Promise<OutboxMessage | undefined>;
  listDeadLetters(filter: DeadLetterFilter, limit: number, after?: string): Promise<DeadLetterPage>;
  /** dead_letter → pending (attempts reset, due now). Returns the ids replayed. */
  replayDeadLetters(
    selector: { ids: readonly string[] } | { filter: DeadLetterFilter; limit: number },
  ): Promise<string[]>;
  /** Deletes dead letters. Returns the ids deleted. */
  discardDeadLetters(
    selector: { ids: readonly string[] } | { filter: DeadLetterFilter; limit: number },
  ): Promise<string[]>;

  // Retention ---------------------------------------------------------------------------------
  /**
   * If this process wins the maintenance advisory lock (try, never wait), deletes up to `limit`
   * sent messages older than `olderThanMs`. Returns null when another process holds the lock.
   */
  deleteSentBatch(olderThanMs: number, limit: number): Promise<number | null>;

  /** Counts per status (and the age of the oldest pending), for health and metrics. */
  stats(): Promise<OutboxStats>;
}

export interface OutboxStats {
  pending: number;
  claimed: number;
  sent: number;
  deadLetter: number;
  /** Seconds since the oldest pending message was written; 0 when none. */
  oldestPendingAgeSeconds: number;
}
