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
  /**
   * false: the attempt is not counted (`attempts` unchanged), as when the broker was unreachable;
   * only with a `delayMs`. Default true.
   */
  counted?: boolean;
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

export interface ClaimByIdsResult {
  claimed: ClaimedOutboxMessage[];
  waiting: string[];
}

/**
 * Observes the end of a writer's transaction `Tx` (TypeORM: a subscriber on the DataSource keyed by
 * query runner; in memory: InMemoryTx.onCommit). What the optimistic sender hooks into.
 */
export interface TransactionCommitHooks<Tx> {
  /**
   * Calls `callback(true)` once the outermost transaction `tx` belongs to has committed, or
   * `callback(false)` once it rolled back (savepoints are not ends). It may never be called when
   * the end cannot be observed (e.g. a COMMIT that failed): callers must treat "never" as "not
   * committed". Runs synchronously after the end; must not delay or fail the commit (callbacks
   * must not throw). Returns false when the end of this `tx` cannot be observed at all.
   */
  onTransactionEnd(tx: Tx, callback: (committed: boolean) => void): boolean;
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
  /**
   * Optional (optimistic sending's fast path): `insert`, except that the rows of `claim.ids` that
   * will head their key (the call's first row of the key, and no row of the key pending or
   * claimed; keyless rows always) are written already claimed by `claim.claimToken` with a lease of
   * `claim.leaseMs`, and returned. Committed, they are the caller's to publish and mark sent with
   * that token, with no claim in between; if the caller never does, the lease runs out and a relay's
   * reaper hands them back. A store may claim fewer (none at all) when it cannot decide safely.
   */
  insertClaimed?(
    tx: Tx,
    messages: readonly NewOutboxMessage[],
    claim: { claimToken: string; leaseMs: number; ids: readonly string[] },
  ): Promise<ClaimedOutboxMessage[]>;
}

/**
 * Relay side of the outbox. Every status change is one conditional statement implementing one of
 * OUTBOX_TRANSITIONS; the ones out of `claimed` are fenced by `claimToken` and return the ids they
 * actually changed (a stale token changes nothing and returns none).
 */
export interface OutboxStore {
  /**
   * Claims up to `limit` messages: pending, due, and the head of their key (no earlier message of
   * the same key is pending or claimed; per key, earlier means committed earlier). Sets the token
   * and a lease of `leaseMs` on the database clock. Returned in publish order.
   */
  claim(claimToken: string, limit: number, leaseMs: number): Promise<ClaimedOutboxMessage[]>;
  /**
   * The optimistic sender's claim: exactly `claim`'s eligibility and transition, restricted to
   * `ids` (the rows this process just committed), at most `ids.length` rows. `claimed` is in
   * publish order. `waiting` lists the ids still pending but not claimable yet (behind an
   * earlier message of their key, not due, or being claimed concurrently):
   * worth another try shortly. An id in neither list is out of reach (claimed or sent by a relay,
   * dead-lettered, or never committed).
   */
  claimByIds(
    claimToken: string,
    ids: readonly string[],
    leaseMs: number,
  ): Promise<ClaimByIdsResult>;
  markSent(claimToken: string, ids: readonly string[]): Promise<string[]>;
  markFailed(claimToken: string, failures: readonly OutboxFailure[]): Promise<string[]>;
  /**
   * Hands claims back untouched (attempts unchanged, due now) and wakes relays (NOTIFY hint):
   * relay shutdown, and optimistic publishes that failed or timed out.
   */
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

  /**
   * Optional (`retention.archive`): like deleteSentBatch, but moves the rows into the archive, in
   * the same transaction as their deletion. Returns how many moved; null without the lock.
   */
  archiveSentBatch?(olderThanMs: number, limit: number): Promise<number | null>;

  /** Optional (`retention.archive`): deletes up to `limit` rows archived more than `olderThanMs` ago. */
  purgeArchiveBatch?(olderThanMs: number, limit: number): Promise<number | null>;

  /**
   * Optional (`retention.deadLetterTtlMs`): deletes up to `limit` messages that became dead letters
   * more than `olderThanMs` ago. Null without the lock.
   */
  deleteExpiredDeadLetterBatch?(olderThanMs: number, limit: number): Promise<number | null>;

  /**
   * Optional: reclaims the space of deleted rows now (PostgreSQL: `VACUUM`), so a table that churns
   * thousands of rows a second stays small between autovacuum runs. Run by the retention leader.
   */
  vacuum?(): Promise<void>;

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
