/**
 * The statements of the WAL-streaming relay (postgres-wal-source.ts). Values travel as
 * parameters; the only spliced text is the outbox table's identifier (validated and quoted once in
 * OutboxTables) and transition statuses (constants from OUTBOX_TRANSITIONS).
 *
 * Fencing: the relay's writes to the outbox table are conditional on its replication session still
 * being the slot's active holder (`pg_replication_slots.active_pid`): PostgreSQL lets one session
 * stream from a slot at a time, so a streamer that lost the slot (its connection dropped, another
 * took over) changes nothing and learns it (`owner` false).
 */
import { OUTBOX_TRANSITIONS } from '../../core/outbox/outbox-transitions';
import type { OutboxTables } from './outbox-tables';
import type { Statement } from './saga-queries.sql';

const from = (name: 'walMarkSent' | 'walDeadLetter'): string =>
  OUTBOX_TRANSITIONS[name].from.map((s) => `'${s}'`).join(', ');

/** The holder check both fenced writes share. */
const HOLDER = `EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots
                  WHERE slot_name = $2 AND active_pid = $3::int)`;

export interface FencedRow {
  owner: boolean;
  ids: string[];
  unseen: string[];
}

/**
 * The asked ids with no row visible to the statement: streamed before their transaction became
 * visible (PostgreSQL sends a commit to the stream once it is flushed, a moment before the
 * committing session makes it visible), or removed since. Same snapshot as the UPDATE beside it.
 */
const UNSEEN = (t: OutboxTables): string => `ARRAY(
        SELECT a.id::text FROM unnest($1::uuid[]) AS a (id)
        WHERE (SELECT owner FROM holder)
          AND NOT EXISTS (SELECT 1 FROM ${t.outboxMessage} v WHERE v.id = a.id))`;

/**
 * pending → sent for the messages the broker acknowledged. No claim came first: the WAL relay is
 * the only publisher of its rows while it holds the slot. A row still `claimed` by a catch-up that
 * the database's restart cut short (its lease not yet over) is finished too, its claim cleared
 * (else it would stay claimed: nothing in WAL mode reaps); the stale claim's own mark then finds
 * its token gone. Rows already sent or dead-lettered (an operator discarded them, the catch-up
 * sent them) are left alone. Rows not visible yet come back as `unseen`: the relay records them
 * again.
 */
export function walMarkSent(
  t: OutboxTables,
  p: { ids: readonly string[]; slot: string; holderPid: number },
): Statement<FencedRow> {
  return {
    text: `
      WITH holder AS (SELECT ${HOLDER} AS owner),
      marked AS (
        UPDATE ${t.outboxMessage}
        SET status = '${OUTBOX_TRANSITIONS.walMarkSent.to}', sent_at = clock_timestamp(),
            claim_token = NULL, lease_until = NULL
        WHERE id = ANY($1::uuid[]) AND status IN (${from('walMarkSent')})
          AND (SELECT owner FROM holder)
        RETURNING id)
      SELECT (SELECT owner FROM holder) AS owner, ARRAY(SELECT id::text FROM marked) AS ids,
        ${UNSEEN(t)} AS unseen`,
    values: [p.ids, p.slot, p.holderPid],
  };
}

/**
 * pending → dead_letter for messages the broker will never take (or that failed every attempt), with
 * the reason, so they stay in the table for the dead-letter API (list, replay, discard). Rows not
 * visible yet come back as `unseen`, as in walMarkSent.
 */
export function walDeadLetter(
  t: OutboxTables,
  p: { ids: readonly string[]; errors: readonly string[]; slot: string; holderPid: number },
): Statement<FencedRow> {
  return {
    text: `
      WITH holder AS (SELECT ${HOLDER} AS owner),
      failed AS (
        UPDATE ${t.outboxMessage} m
        SET status = '${OUTBOX_TRANSITIONS.walDeadLetter.to}', last_error = f.error,
            attempts = m.attempts + 1, dead_lettered_at = clock_timestamp(),
            claim_token = NULL, lease_until = NULL
        FROM unnest($1::uuid[], $4::text[]) AS f (id, error)
        WHERE m.id = f.id AND m.status IN (${from('walDeadLetter')})
          AND (SELECT owner FROM holder)
        RETURNING m.id)
      SELECT (SELECT owner FROM holder) AS owner, ARRAY(SELECT id::text FROM failed) AS ids,
        ${UNSEEN(t)} AS unseen`,
    values: [p.ids, p.slot, p.holderPid, p.errors],
  };
}

/**
 * Are there rows the stream will not deliver, for the catch-up to publish while the relay streams?
 * The stream carries inserts only, so: dead letters replayed since (an UPDATE back to pending; a
 * replay keeps `dead_lettered_at`), and claims a catch-up left when the database went away before
 * it recorded them (their lease over). Not merely old pending rows: those include the relay's own,
 * retrying. Bounded work: the lease index, and the oldest 1,000 due pending rows on the claim index
 * (a replayed row keeps its place, so it is among them).
 */
export function walStrandedRows(t: OutboxTables): Statement<{ stranded: boolean }> {
  return {
    text: `
      SELECT EXISTS (
          SELECT 1 FROM ${t.outboxMessage}
          WHERE status = 'claimed' AND lease_until < clock_timestamp())
        OR EXISTS (
          SELECT 1 FROM (
            SELECT w.dead_lettered_at FROM ${t.outboxMessage} w
            WHERE w.status = 'pending' AND w.next_attempt_at <= clock_timestamp()
            ORDER BY w.txid, w.seq
            LIMIT 1000) oldest
          WHERE oldest.dead_lettered_at IS NOT NULL) AS stranded`,
    values: [],
  };
}

/** `wal_level`: the relay needs `logical`. */
export const SHOW_WAL_LEVEL: Statement<{ wal_level: string }> = {
  text: `SELECT current_setting('wal_level') AS wal_level`,
  values: [],
};

/** Does the publication exist in this database? (created by the opt-in migration) */
export function publicationExists(name: string): Statement<{ exists: boolean }> {
  return {
    text: `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1) AS exists`,
    values: [name],
  };
}

export interface SlotRow {
  database: string | null;
  /** The slot belongs to the database we are connected to. */
  same_database: boolean;
  plugin: string | null;
  wal_status: string | null;
  active: boolean;
  confirmed_flush_lsn: string | null;
}

export function selectSlot(slot: string): Statement<SlotRow> {
  return {
    text: `SELECT database, database = current_database() AS same_database, plugin, wal_status,
        active, confirmed_flush_lsn::text AS confirmed_flush_lsn
      FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`,
    values: [slot],
  };
}

/**
 * Creates the logical slot, idempotently: when two relays start at once, one creates it and the
 * other's duplicate_object error is ignored by the caller. `pgoutput` is built into PostgreSQL.
 */
export function createSlot(slot: string): Statement<{ lsn: string }> {
  return {
    text: `SELECT lsn::text AS lsn FROM pg_create_logical_replication_slot($1, 'pgoutput')`,
    values: [slot],
  };
}

/** The slot's lag: WAL the server keeps for it, and whether it is still usable. */
export function slotLag(slot: string): Statement<{
  lag_bytes: string | null;
  wal_status: string | null;
  active: boolean;
}> {
  return {
    text: `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text AS lag_bytes,
        wal_status, active
      FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`,
    values: [slot],
  };
}
