/**
 * Leader-only saga retention (core/saga/saga-retention.ts): terminal sagas and their steps deleted
 * in bounded batches. Time is the database clock (`clock_timestamp()`), as everywhere in Sage.
 */
import type { Statement } from './saga-queries.sql';
import type { SagaSchema } from './schema-name';

/** Advisory-lock key of the leader-only saga maintenance ("sage:sag" as a big-endian int8). */
export const SAGA_MAINTENANCE_LOCK_KEY = '8314040071572644199';

/**
 * One retention batch, in one statement (its own transaction). The process that wins
 * `pg_try_advisory_xact_lock` (never waits; released with the statement's transaction, so a crash
 * cannot leave it behind) deletes the oldest terminal sagas whose last transition (`updated_at`) is
 * older than the retention; the others get `leader = false`. The status list is the partial
 * `saga_instance_terminal_idx`'s predicate, so the scan reads that index in `updated_at` order and
 * stops after `limit` rows: running, waiting and compensating sagas are not in it and can never be
 * chosen. FOR UPDATE SKIP LOCKED never waits on a saga an operator is touching, and re-checks the
 * status of a row changed meanwhile. Steps go with their saga (`saga_step`'s FK is ON DELETE
 * CASCADE, through its primary key on `saga_id`).
 */
export function deleteTerminalSagaBatch(
  schema: SagaSchema,
  p: { olderThanMs: number; limit: number },
): Statement<{ leader: boolean; deleted: number }> {
  return {
    text: `
      WITH leader AS (
        SELECT pg_try_advisory_xact_lock(${SAGA_MAINTENANCE_LOCK_KEY}) AS ok
      ), doomed AS (
        SELECT id FROM ${schema.sagaInstance}
        WHERE status IN ('completed', 'compensated', 'failed')
          AND updated_at < clock_timestamp() - ($1::double precision * interval '1 millisecond')
          AND (SELECT ok FROM leader)
        ORDER BY updated_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
      ), deleted AS (
        DELETE FROM ${schema.sagaInstance} s USING doomed WHERE s.id = doomed.id RETURNING 1
      )
      SELECT (SELECT ok FROM leader) AS leader, (SELECT count(*) FROM deleted)::int AS deleted`,
    values: [p.olderThanMs, p.limit],
  };
}

/**
 * Space reclaim after retention deleted many sagas (`vacuumAfterRows`). Plain VACUUM (no FULL): no
 * exclusive lock, sagas go on. Must run outside a transaction block: it is sent on its own.
 */
export function vacuumSagaTables(schema: SagaSchema): Statement<never> {
  return { text: `VACUUM (ANALYZE) ${schema.sagaInstance}, ${schema.sagaStep}`, values: [] };
}
