/**
 * The optional dead-letter TTL (`outbox.retention.deadLetterTtlMs`, `inbox.retention.deadLetterTtlMs`):
 * dead letters older than the TTL deleted in bounded batches by the retention leader of their table,
 * under that table's maintenance lock. Off by default: dead letters are kept until an operator acts.
 */
import type { InboxTables } from './inbox-tables';
import { INBOX_MAINTENANCE_LOCK_KEY } from './inbox-queries.sql';
import { OUTBOX_MAINTENANCE_LOCK_KEY, type OutboxTables } from './outbox-tables';
import type { Statement } from './saga-queries.sql';

const cutoff = `clock_timestamp() - ($1::double precision * interval '1 millisecond')`;

/**
 * Outbox dead letters whose `dead_lettered_at` is older than the TTL, oldest first, through the
 * partial `outbox_message_dead_letter_expiry_idx`. Leader-only like deleteSentBatch (try-lock, never
 * waits; `leader = false` for the others). SKIP LOCKED: never waits on a row an operator is replaying.
 */
export function deleteExpiredOutboxDeadLetters(
  t: OutboxTables,
  p: { olderThanMs: number; limit: number },
): Statement<{ leader: boolean; deleted: number }> {
  return {
    text: `
      WITH leader AS (
        SELECT pg_try_advisory_xact_lock(${OUTBOX_MAINTENANCE_LOCK_KEY}) AS ok
      ), doomed AS (
        SELECT id FROM ${t.outboxMessage}
        WHERE status = 'dead_letter' AND dead_lettered_at < ${cutoff} AND (SELECT ok FROM leader)
        ORDER BY dead_lettered_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
      ), deleted AS (
        DELETE FROM ${t.outboxMessage} m USING doomed
        WHERE m.id = doomed.id AND m.status = 'dead_letter'
        RETURNING 1
      )
      SELECT (SELECT ok FROM leader) AS leader, (SELECT count(*) FROM deleted)::int AS deleted`,
    values: [p.olderThanMs, p.limit],
  };
}

/**
 * Inbox dead letters dead-lettered longer ago than the TTL (a dead letter's `processed_at` is when it
 * was dead-lettered), oldest first through `inbox_message_processed_at_idx`: processed rows that old
 * were deleted by the inbox retention already, so the scan reads dead letters. Leader-only under the
 * inbox maintenance lock. Deleting a dead letter forgets the message: a redelivery runs the handler
 * again (as `deleteDeadLetters` does).
 */
export function deleteExpiredInboxDeadLetters(
  t: InboxTables,
  p: { olderThanMs: number; limit: number },
): Statement<{ leader: boolean; deleted: number }> {
  return {
    text: `
      WITH leader AS (
        SELECT pg_try_advisory_xact_lock(${INBOX_MAINTENANCE_LOCK_KEY}) AS ok
      ), doomed AS (
        SELECT consumer, message_id FROM ${t.inboxMessage}
        WHERE status = 'dead_letter' AND processed_at < ${cutoff} AND (SELECT ok FROM leader)
        ORDER BY processed_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
      ), deleted AS (
        DELETE FROM ${t.inboxMessage} m USING doomed
        WHERE m.consumer = doomed.consumer AND m.message_id = doomed.message_id
          AND m.status = 'dead_letter'
        RETURNING 1
      )
      SELECT (SELECT ok FROM leader) AS leader, (SELECT count(*) FROM deleted)::int AS deleted`,
    values: [p.olderThanMs, p.limit],
  };
}
