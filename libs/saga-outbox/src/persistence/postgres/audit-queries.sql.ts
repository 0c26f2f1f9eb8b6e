/**
 * Every statement of the audit log (docs/audit-log.md), one per export. Values travel as
 * parameters; the only spliced text is identifiers from AuditTables (validated and quoted once).
 *
 * Times cross into the hash as text in one exact form (`AT_TEXT`: UTC, microseconds), rendered by
 * the database, so the hashed text never depends on JavaScript's millisecond Dates.
 */
import { AUDIT_SEAL_LOCK_KEY, type AuditTables } from './audit-tables';
import type { Statement } from './saga-queries.sql';

export type { Statement } from './saga-queries.sql';

const AT_TEXT = `to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** A pending or sealed row as the statements below return it. */
export interface AuditRow {
  at: string;
  actor: string;
  action: string;
  target_type: string;
  target_id: string;
  detail: unknown;
}

export interface AuditPendingRow extends AuditRow {
  /** bigint as text. */
  id: string;
}

export interface AuditLogRow extends AuditRow {
  /** bigint as text. */
  seq: string;
  prev_hash: string;
  hash: string;
  hmac_key_id: string | null;
}

/** The longest actor kept (the CLI refuses longer operator names; triggers cut at the same length). */
export const MAX_AUDIT_ACTOR_LENGTH = 128;

/**
 * Records an audited change in the caller's transaction: it commits or rolls back with the change.
 * `sage.actor` (setAuditActor) or the session's role is the actor unless `actor` is given.
 */
export function insertAuditPending(
  a: AuditTables,
  p: {
    action: string;
    targetType: string;
    targetId: string;
    detail: string;
    actor: string | null;
  },
): Statement<never> {
  return {
    text: `
      INSERT INTO ${a.auditPending} (actor, action, target_type, target_id, detail)
      VALUES (left(coalesce($1, nullif(current_setting('sage.actor', true), ''), session_user::text), ${MAX_AUDIT_ACTOR_LENGTH}),
              $2, $3, $4, $5::jsonb)`,
    values: [p.actor, p.action, p.targetType, p.targetId, p.detail],
  };
}

/**
 * Names the operator for the rest of the current transaction only (`set_config(..., true)` is
 * SET LOCAL): the audit triggers record it as the actor of every change the transaction makes.
 * Transaction-scoped, so a pooled connection (or PgBouncer in transaction mode) never carries it
 * over to another client.
 */
export function setAuditActor(actor: string): Statement<never> {
  return { text: `SELECT set_config('sage.actor', $1, true)`, values: [actor] };
}

/**
 * The sealer's leadership for this transaction: never waits; released at commit or rollback, so a
 * crashed sealer cannot keep it.
 */
export function tryLockAuditSealer(): Statement<{ ok: boolean }> {
  return {
    text: `SELECT pg_try_advisory_xact_lock(${AUDIT_SEAL_LOCK_KEY}) AS ok`,
    values: [],
  };
}

/**
 * Where the chain goes on: the last sealed entry, or the latest checkpoint when retention pruned
 * every entry; no row on an empty log. Two primary-key probes.
 */
export function selectAuditChainHead(a: AuditTables): Statement<{ seq: string; hash: string }> {
  return {
    text: `
      SELECT seq, hash FROM (
        (SELECT seq, hash FROM ${a.auditLog} ORDER BY seq DESC LIMIT 1)
        UNION ALL
        (SELECT seq, hash FROM ${a.auditCheckpoint} ORDER BY seq DESC LIMIT 1)
      ) head
      ORDER BY seq DESC
      LIMIT 1`,
    values: [],
  };
}

/**
 * Takes the oldest committed pending entries, in id order. Only committed rows are visible (READ
 * COMMITTED), so an entry whose transaction commits later is simply sealed by a later batch: the
 * chain's order is sealing order, not commit order, and no entry is skipped. SKIP LOCKED: never
 * waits on a row another sealer (a racing one that lost nothing but time) is taking.
 * RETURNING has no order: the caller sorts by id.
 */
export function takeAuditPendingBatch(
  a: AuditTables,
  p: { limit: number },
): Statement<AuditPendingRow> {
  return {
    text: `
      DELETE FROM ${a.auditPending}
      WHERE id IN (
        SELECT id FROM ${a.auditPending}
        ORDER BY id
        LIMIT $1
        FOR UPDATE SKIP LOCKED)
      RETURNING id, ${AT_TEXT} AS at, actor, action, target_type, target_id, detail`,
    values: [p.limit],
  };
}

/** Appends sealed entries (one statement for the batch). */
export function insertAuditLogEntries(
  a: AuditTables,
  p: {
    seqs: string[];
    ats: string[];
    actors: string[];
    actions: string[];
    targetTypes: string[];
    targetIds: string[];
    details: string[];
    prevHashes: string[];
    hashes: string[];
    hmacKeyIds: (string | null)[];
  },
): Statement<never> {
  return {
    text: `
      INSERT INTO ${a.auditLog}
        (seq, at, actor, action, target_type, target_id, detail, prev_hash, hash, hmac_key_id)
      SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                           $6::text[], $7::jsonb[], $8::text[], $9::text[], $10::text[])`,
    values: [
      p.seqs,
      p.ats,
      p.actors,
      p.actions,
      p.targetTypes,
      p.targetIds,
      p.details,
      p.prevHashes,
      p.hashes,
      p.hmacKeyIds,
    ],
  };
}

/** The latest retention checkpoint: verification starts after it. */
export function selectLatestAuditCheckpoint(
  a: AuditTables,
): Statement<{ seq: string; hash: string; at: Date; pruned_until: Date }> {
  return {
    text: `SELECT seq, hash, at, pruned_until FROM ${a.auditCheckpoint} ORDER BY seq DESC LIMIT 1`,
    values: [],
  };
}

/** A page of the chain in seq order after `after` (keyset on the primary key). */
export function selectAuditLogPage(
  a: AuditTables,
  p: { after: string; limit: number },
): Statement<AuditLogRow> {
  return {
    text: `
      SELECT seq, ${AT_TEXT} AS at, actor, action, target_type, target_id, detail,
             prev_hash, hash, hmac_key_id
      FROM ${a.auditLog}
      WHERE seq > $1::bigint
      ORDER BY seq
      LIMIT $2`,
    values: [p.after, p.limit],
  };
}

/**
 * The lowest entry at or below the checkpoint (none should be left: pruning deletes them with the
 * checkpoint's write), i.e. a row added below it by hand.
 */
export function selectAuditEntryBelow(
  a: AuditTables,
  p: { seq: string },
): Statement<{ seq: string | null }> {
  return {
    text: `SELECT min(seq) AS seq FROM ${a.auditLog} WHERE seq <= $1::bigint`,
    values: [p.seq],
  };
}

/** Entries written but not sealed yet (a backlog means no sealer runs, or it fails). */
export function countAuditPending(a: AuditTables): Statement<{ pending: number }> {
  return {
    text: `SELECT count(*)::int AS pending FROM ${a.auditPending}`,
    values: [],
  };
}

/**
 * Retention: sage_audit_prune deletes entries older than `keepAfter` behind a checkpoint (see the
 * migration); returns the checkpoint's seq, or null when nothing was old enough.
 */
export function pruneAuditLog(
  a: AuditTables,
  p: { keepAfter: Date },
): Statement<{ checkpoint: string | null }> {
  return {
    text: `SELECT ${a.pruneFunction}($1::timestamptz) AS checkpoint`,
    values: [p.keepAfter],
  };
}
