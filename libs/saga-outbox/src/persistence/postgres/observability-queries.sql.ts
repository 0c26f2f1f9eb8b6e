/**
 * The statements behind the scrape-time gauges and the backlog health check, one per export. They
 * run on every Prometheus scrape and health probe, so each is shaped to stay cheap on a large
 * table: it reads only the partial indexes the migrations created for the live part of the tables.
 * Values travel as parameters; the only spliced text is identifiers from OutboxTables / SagaSchema
 * (validated and quoted once).
 */
import type { OutboxTables } from './outbox-tables';
import type { Statement } from './saga-queries.sql';
import type { SagaSchema } from './schema-name';

export interface OutboxBacklogRow {
  /** bigint as text (count(*) is int8). */
  pending: string;
  /** Seconds since the oldest pending message was written (database clock); null when none. */
  oldest_pending_age_seconds: number | null;
  dead_letters: string;
}

/**
 * Outbox backlog in one round trip:
 * - `pending`: unsent messages, pending or claimed (in flight); counted from the partial indexes
 *   `outbox_message_claimable_idx` / `outbox_message_lease_idx`, so sent rows are never read.
 * - oldest pending age: the first pending row in publish order `(txid, seq)`, one probe of
 *   `outbox_message_claimable_idx` instead of `min(created_at)` over the whole backlog; commit
 *   order and creation order agree closely enough for an age in seconds.
 * - `dead_letters`: from `outbox_message_dead_letter_idx`.
 * `clock_timestamp()` is the database clock, the same one `created_at` was written with, so app
 * hosts with skewed clocks report the same age.
 */
export function selectOutboxBacklog(t: OutboxTables): Statement<OutboxBacklogRow> {
  return {
    text: `
      SELECT
        (SELECT count(*) FROM ${t.outboxMessage} WHERE status = 'pending')
          + (SELECT count(*) FROM ${t.outboxMessage} WHERE status = 'claimed') AS pending,
        (SELECT extract(epoch FROM clock_timestamp() - o.created_at)::double precision
           FROM ${t.outboxMessage} o
           WHERE o.status = 'pending'
           ORDER BY o.txid, o.seq
           LIMIT 1) AS oldest_pending_age_seconds,
        (SELECT count(*) FROM ${t.outboxMessage} WHERE status = 'dead_letter') AS dead_letters`,
    values: [],
  };
}

export interface ActiveSagasRow {
  name: string;
  /** bigint as text. */
  active: string;
}

/**
 * Sagas not yet ended (running, waiting on a remote step's reply, or compensating), per saga name.
 * Its predicate is that of `saga_instance_claim_idx` (partial on exactly these statuses), so ended
 * sagas, the bulk of the table over time, are never touched. Names are few (one per saga
 * definition): a low-cardinality label.
 */
export function selectActiveSagas(s: SagaSchema): Statement<ActiveSagasRow> {
  return {
    text: `
      SELECT name, count(*) AS active
      FROM ${s.sagaInstance}
      WHERE status IN ('running', 'waiting', 'compensating')
      GROUP BY name`,
    values: [],
  };
}

/** A round trip that touches no table: "can we reach the database at all" for the health check. */
export function selectOne(): Statement<{ ok: number }> {
  return { text: 'SELECT 1 AS ok', values: [] };
}
