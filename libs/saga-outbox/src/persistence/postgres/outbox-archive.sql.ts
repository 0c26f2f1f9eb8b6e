/**
 * The outbox archive (`outbox.retention.archive`): instead of deleting sent messages, the outbox
 * retention leader moves them to `outbox_message_archive`, where they stay `keepMs` and are then
 * purged. For teams whose audit needs the events that were sent, without keeping them in the hot
 * table the relay scans.
 */
import { OUTBOX_MAINTENANCE_LOCK_KEY, type OutboxTables } from './outbox-tables';
import type { Statement } from './saga-queries.sql';
import type { SagaSchema } from './schema-name';

/** `"sage"."outbox_message_archive"`, from a validated schema (see schema-name.ts). */
export function outboxArchiveTable(schema: SagaSchema): string {
  return `${schema.quoted}."outbox_message_archive"`;
}

const cutoff = `clock_timestamp() - ($1::double precision * interval '1 millisecond')`;

/**
 * One archive batch, in one statement, so one transaction: the sent rows past retention (oldest
 * first, `outbox_message_sent_idx`) are deleted from the outbox and the deleted rows, as RETURNING
 * gives them, inserted into the archive. A row is in exactly one of the two tables at every commit.
 * Leader-only like deleteSentBatch (try-lock, `leader = false` for the others); SKIP LOCKED.
 */
export function archiveSentBatch(
  t: OutboxTables,
  p: { olderThanMs: number; limit: number },
): Statement<{ leader: boolean; archived: number }> {
  const archive = outboxArchiveTable(t.schema);
  return {
    text: `
      WITH leader AS (
        SELECT pg_try_advisory_xact_lock(${OUTBOX_MAINTENANCE_LOCK_KEY}) AS ok
      ), doomed AS (
        SELECT id FROM ${t.outboxMessage}
        WHERE status = 'sent' AND sent_at < ${cutoff} AND (SELECT ok FROM leader)
        ORDER BY sent_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
      ), moved AS (
        DELETE FROM ${t.outboxMessage} m USING doomed WHERE m.id = doomed.id
        RETURNING m.id, m.destination, m.key, m.type, m.payload, m.headers, m.saga_id, m.attempts,
                  m.created_at, m.sent_at
      ), archived AS (
        INSERT INTO ${archive}
          (id, destination, key, type, payload, headers, saga_id, attempts, created_at, sent_at,
           archived_at)
        SELECT id, destination, key, type, payload, headers, saga_id, attempts, created_at, sent_at,
               clock_timestamp()
        FROM moved
        RETURNING 1
      )
      SELECT (SELECT ok FROM leader) AS leader, (SELECT count(*) FROM archived)::int AS archived`,
    values: [p.olderThanMs, p.limit],
  };
}

/**
 * Archived messages kept longer than `keepMs`, deleted oldest first (`archived_at` index), under the
 * outbox maintenance lock like every other outbox retention batch.
 */
export function purgeArchiveBatch(
  t: OutboxTables,
  p: { olderThanMs: number; limit: number },
): Statement<{ leader: boolean; deleted: number }> {
  const archive = outboxArchiveTable(t.schema);
  return {
    text: `
      WITH leader AS (
        SELECT pg_try_advisory_xact_lock(${OUTBOX_MAINTENANCE_LOCK_KEY}) AS ok
      ), doomed AS (
        SELECT id FROM ${archive}
        WHERE archived_at < ${cutoff} AND (SELECT ok FROM leader)
        ORDER BY archived_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
      ), deleted AS (
        DELETE FROM ${archive} a USING doomed WHERE a.id = doomed.id RETURNING 1
      )
      SELECT (SELECT ok FROM leader) AS leader, (SELECT count(*) FROM deleted)::int AS deleted`,
    values: [p.olderThanMs, p.limit],
  };
}
