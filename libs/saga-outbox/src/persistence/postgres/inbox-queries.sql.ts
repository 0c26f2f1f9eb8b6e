/**
 * Every statement the PostgreSQL consumer inbox runs, one per export, each saying why it is shaped
 * the way it is. Values travel as parameters; the only spliced text is identifiers from InboxTables
 * (validated and quoted once).
 *
 * The one rule all of them keep: a row in `inbox_message`, whatever its status, means "never run
 * this consumer's handler for this message again". So the hot path is one INSERT ... ON CONFLICT
 * DO NOTHING, and dead letters live in the same table.
 */
import type { InboxTables } from './inbox-tables';
import type { Statement } from './saga-queries.sql';

export type { Statement } from './saga-queries.sql';

export interface InboxMessageRow {
  consumer: string;
  message_id: string;
  status: string;
  attempts: number;
  last_error: string | null;
  message: unknown;
  processed_at: Date;
}

export interface InboxFailureRow {
  consumer: string;
  message_id: string;
  attempts: number;
  last_error: string;
  first_failed_at: Date;
  last_failed_at: Date;
}

const MESSAGE_COLUMNS = 'consumer, message_id, status, attempts, last_error, message, processed_at';
const FAILURE_COLUMNS =
  'consumer, message_id, attempts, last_error, first_failed_at, last_failed_at';

// ---------------------------------------------------------------------------------------------
// the handler's transaction
// ---------------------------------------------------------------------------------------------

/**
 * The dedup step, in the handler's transaction, in one round trip:
 * - `ins`: records the message. ON CONFLICT DO NOTHING on the primary key makes a redelivery return
 *   no row (duplicate). A concurrent delivery of the same message whose transaction is still open
 *   holds the key's index entry: this INSERT waits for it to end, then returns no row if it
 *   committed, or inserts if it rolled back. So racing deliveries never both run the handler, and
 *   the loser never fails with a unique violation.
 * - `prior`/`attempts`: the attempt number is the failures counted so far + 1 (read from the
 *   statement's snapshot), stored on the row and handed to the handler.
 * - `cleared`: the message's failure record goes in the same transaction: committed with the
 *   handler's writes, or restored by the rollback so the failure count survives.
 * Returns `attempt` null for a duplicate.
 */
export function markInboxProcessed(
  t: InboxTables,
  p: { consumer: string; messageId: string },
): Statement<{ attempt: number | null }> {
  return {
    text: `
      WITH prior AS (
        SELECT attempts FROM ${t.inboxFailure} WHERE consumer = $1 AND message_id = $2
      ), ins AS (
        INSERT INTO ${t.inboxMessage} (consumer, message_id, attempts)
        VALUES ($1, $2, COALESCE((SELECT attempts FROM prior), 0) + 1)
        ON CONFLICT (consumer, message_id) DO NOTHING
        RETURNING attempts
      ), cleared AS (
        DELETE FROM ${t.inboxFailure}
        WHERE consumer = $1 AND message_id = $2 AND EXISTS (SELECT 1 FROM ins)
      )
      SELECT (SELECT attempts FROM ins) AS attempt`,
    values: [p.consumer, p.messageId],
  };
}

/**
 * markInboxProcessed for several messages of one consumer at once (InboxProcessor.processBatch:
 * one transaction for a batch the broker handed over), in one round trip:
 * - `ins`: one multi-row INSERT ... ON CONFLICT DO NOTHING from the id array. The ids are distinct
 *   (the caller dedups) and inserted in id order, so two overlapping batches take the keys' index
 *   locks in the same order and never deadlock; a key held by another open transaction is waited
 *   for, as in markInboxProcessed (commit → not returned, a duplicate; rollback → inserted).
 * - `prior`: each new row's attempt number is its failures counted so far + 1.
 * - `cleared`: the failure records of the rows inserted go in the same transaction (looked up by
 *   the primary key with the id array, as `prior`).
 * Returns only the new messages, with their attempt; an id not returned is a duplicate.
 */
export function markInboxProcessedBatch(
  t: InboxTables,
  p: { consumer: string; messageIds: readonly string[] },
): Statement<{ message_id: string; attempt: number }> {
  return {
    text: `
      WITH prior AS (
        SELECT message_id, attempts FROM ${t.inboxFailure}
        WHERE consumer = $1 AND message_id = ANY($2::text[])
      ), ins AS (
        INSERT INTO ${t.inboxMessage} (consumer, message_id, attempts)
        SELECT $1, b.message_id, COALESCE(prior.attempts, 0) + 1
        FROM unnest($2::text[]) AS b(message_id) LEFT JOIN prior USING (message_id)
        ORDER BY b.message_id
        ON CONFLICT (consumer, message_id) DO NOTHING
        RETURNING message_id, attempts
      ), cleared AS (
        DELETE FROM ${t.inboxFailure}
        WHERE consumer = $1 AND message_id = ANY($2::text[])
          AND message_id IN (SELECT message_id FROM ins)
      )
      SELECT message_id, attempts AS attempt FROM ins`,
    values: [p.consumer, [...p.messageIds]],
  };
}

// ---------------------------------------------------------------------------------------------
// failures (own transaction, after the handler's rolled back)
// ---------------------------------------------------------------------------------------------

/**
 * Counts one failed attempt: first failure inserts, later ones increment (the upsert's row lock
 * serialises concurrent failures of one message, so none is lost). Nothing is recorded when the
 * inbox already holds the message (another delivery handled or dead-lettered it meanwhile): no row
 * returned, and no orphan failure record left behind.
 */
export function recordInboxFailure(
  t: InboxTables,
  p: { consumer: string; messageId: string; error: string },
): Statement<{ attempts: number }> {
  return {
    text: `
      INSERT INTO ${t.inboxFailure} AS f (consumer, message_id, attempts, last_error)
      SELECT $1, $2, 1, $3
      WHERE NOT EXISTS (
        SELECT 1 FROM ${t.inboxMessage} m WHERE m.consumer = $1 AND m.message_id = $2)
      ON CONFLICT (consumer, message_id) DO UPDATE
        SET attempts = f.attempts + 1, last_error = EXCLUDED.last_error, last_failed_at = now()
      RETURNING attempts`,
    values: [p.consumer, p.messageId, p.error],
  };
}

/**
 * Poison: the failure that used up the attempts moves the message into the inbox as a dead letter
 * (never handled again; error, attempts and the message kept for operators) and removes its failure
 * record, in the transaction that counted it, so a message is never counted out without being
 * dead-lettered. ON CONFLICT DO NOTHING: if another delivery recorded the message meanwhile, that
 * row stands and `dead_lettered` is false.
 */
export function insertInboxDeadLetter(
  t: InboxTables,
  p: {
    consumer: string;
    messageId: string;
    attempts: number;
    error: string;
    message: string | null;
  },
): Statement<{ dead_lettered: boolean }> {
  return {
    text: `
      WITH dead AS (
        INSERT INTO ${t.inboxMessage} (consumer, message_id, status, attempts, last_error, message)
        VALUES ($1, $2, 'dead_letter', $3, $4, $5::jsonb)
        ON CONFLICT (consumer, message_id) DO NOTHING
        RETURNING 1
      ), cleared AS (
        DELETE FROM ${t.inboxFailure} WHERE consumer = $1 AND message_id = $2
      )
      SELECT EXISTS (SELECT 1 FROM dead) AS dead_lettered`,
    values: [p.consumer, p.messageId, p.attempts, p.error, p.message],
  };
}

// ---------------------------------------------------------------------------------------------
// inspection / operations
// ---------------------------------------------------------------------------------------------

export function selectInboxMessage(
  t: InboxTables,
  p: { consumer: string; messageId: string },
): Statement<InboxMessageRow> {
  return {
    text: `SELECT ${MESSAGE_COLUMNS} FROM ${t.inboxMessage} WHERE consumer = $1 AND message_id = $2`,
    values: [p.consumer, p.messageId],
  };
}

export function selectInboxFailure(
  t: InboxTables,
  p: { consumer: string; messageId: string },
): Statement<InboxFailureRow> {
  return {
    text: `SELECT ${FAILURE_COLUMNS} FROM ${t.inboxFailure} WHERE consumer = $1 AND message_id = $2`,
    values: [p.consumer, p.messageId],
  };
}

/**
 * A page of dead letters in key order, keyset-paged on the dead-letter partial index (its
 * predicate matches, so processed rows are never read). A NULL consumer means every consumer.
 */
export function selectInboxDeadLetters(
  t: InboxTables,
  p: {
    consumer: string | null;
    limit: number;
    after: { consumer: string; messageId: string } | null;
  },
): Statement<InboxMessageRow> {
  return {
    text: `
      SELECT ${MESSAGE_COLUMNS} FROM ${t.inboxMessage}
      WHERE status = 'dead_letter'
        AND ($1::text IS NULL OR consumer = $1)
        AND ($2::text IS NULL OR (consumer, message_id) > ($2, $3))
      ORDER BY consumer, message_id
      LIMIT $4`,
    values: [p.consumer, p.after?.consumer ?? null, p.after?.messageId ?? null, p.limit],
  };
}

/**
 * Operator action: forgets dead letters (only dead letters, whatever the ids say), so that the next
 * delivery of those messages runs the handler again with a fresh attempt count.
 */
export function deleteInboxDeadLetters(
  t: InboxTables,
  p: { consumer: string; messageIds: readonly string[] },
): Statement<{ message_id: string }> {
  return {
    text: `
      DELETE FROM ${t.inboxMessage}
      WHERE consumer = $1 AND message_id = ANY($2::text[]) AND status = 'dead_letter'
      RETURNING message_id`,
    values: [p.consumer, [...p.messageIds]],
  };
}

/** Advisory-lock key of the leader-only inbox maintenance ("sage:inb" as a big-endian int8). */
export const INBOX_MAINTENANCE_LOCK_KEY = '8314040071571992162';

/**
 * Leader-only inbox retention batch, in one statement (its own transaction). The process that wins
 * `pg_try_advisory_xact_lock` (never waits; released with the statement's transaction, so a crash
 * cannot leave it behind) deletes the oldest processed rows past retention (`processed_at` index),
 * and failure counters of messages that never came back (`last_failed_at` index); the others get
 * `leader = false`. SKIP LOCKED: never waits on a row a handler is touching. Dead letters stay.
 */
export function deleteProcessedInboxBatch(
  t: InboxTables,
  p: { olderThanMs: number; limit: number },
): Statement<{ leader: boolean; deleted: number }> {
  const cutoff = `clock_timestamp() - ($1::double precision * interval '1 millisecond')`;
  return {
    text: `
      WITH leader AS (
        SELECT pg_try_advisory_xact_lock(${INBOX_MAINTENANCE_LOCK_KEY}) AS ok
      ), doomed AS (
        SELECT consumer, message_id FROM ${t.inboxMessage}
        WHERE status = 'processed' AND processed_at < ${cutoff} AND (SELECT ok FROM leader)
        ORDER BY processed_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
      ), deleted AS (
        DELETE FROM ${t.inboxMessage} m USING doomed
        WHERE m.consumer = doomed.consumer AND m.message_id = doomed.message_id
        RETURNING 1
      ), stale AS (
        SELECT consumer, message_id FROM ${t.inboxFailure}
        WHERE last_failed_at < ${cutoff} AND (SELECT ok FROM leader)
        ORDER BY last_failed_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
      ), forgotten AS (
        DELETE FROM ${t.inboxFailure} f USING stale
        WHERE f.consumer = stale.consumer AND f.message_id = stale.message_id
        RETURNING 1
      )
      SELECT (SELECT ok FROM leader) AS leader,
             ((SELECT count(*) FROM deleted) + (SELECT count(*) FROM forgotten))::int AS deleted`,
    values: [p.olderThanMs, p.limit],
  };
}

/**
 * Space reclaim after retention deleted many rows (InboxRetention's `vacuumAfterRows`): every
 * handled message inserts a row that retention later deletes, so the tables churn like the
 * outbox's. Plain VACUUM (no FULL): no exclusive lock, deliveries go on. Must run outside a
 * transaction block: it is sent on its own.
 */
export function vacuumInbox(t: InboxTables): Statement<never> {
  return { text: `VACUUM (ANALYZE) ${t.inboxMessage}, ${t.inboxFailure}`, values: [] };
}
