/**
 * The raw ceilings' own SQL. A raw ceiling is hand-written against the plain clients, so it does
 * not borrow the library's internals; instead these statements MIRROR, text for text, the ones the
 * library sends (libs/saga-outbox/src/persistence/postgres/outbox-queries.sql.ts and
 * saga-queries.sql.ts, with the outbox transition statuses spelled out), so the raw loop does the
 * same database work as the system under test and the comparison stays fair. When the library
 * changes one of these statements, change its copy here too (the scenarios' calibration counts
 * statements, not their text).
 */

/** A statement ready to run: SQL text, its positional parameters, and (for typing) its row shape. */
export interface Statement<Row> {
  readonly text: string;
  readonly values: readonly unknown[];
  /** Phantom: never set, only carries the row type. */
  readonly row?: Row;
}

/** Lower-case, unquoted-identifier shape, at most 63 bytes: needs no escaping once validated. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Quoted identifiers of the tables the raw side addresses, and the outbox's NOTIFY channel. */
export interface BenchTables {
  /** `"sage"` */
  readonly schema: string;
  /** `"sage"."outbox_message"` */
  readonly outboxMessage: string;
  /** `"sage"."saga_instance"` */
  readonly sagaInstance: string;
  /** `"sage"."saga_step"` */
  readonly sagaStep: string;
  /** `sage_outbox` for the default schema, `sage_outbox_<schema>` otherwise (as the library names it). */
  readonly channel: string;
}

/** Validates `schema` once and quotes it once: the only identifier spliced into the SQL below. */
export function benchTables(schema: string): BenchTables {
  if (!SCHEMA_NAME.test(schema)) throw new Error(`invalid schema name ${JSON.stringify(schema)}`);
  const quoted = `"${schema}"`;
  return Object.freeze({
    schema: quoted,
    outboxMessage: `${quoted}."outbox_message"`,
    sagaInstance: `${quoted}."saga_instance"`,
    sagaStep: `${quoted}."saga_step"`,
    channel: (schema === 'sage' ? 'sage_outbox' : `sage_outbox_${schema}`).slice(0, 63),
  });
}

const msInterval = (param: string): string =>
  `(${param}::double precision * interval '1 millisecond')`;

// ---------------------------------------------------------------------------------------------
// outbox (mirrors outbox-queries.sql.ts)
// ---------------------------------------------------------------------------------------------

/** An outbox row as the claim returns it (pg parses jsonb, timestamptz → Date). */
export interface OutboxMessageRow {
  id: string;
  destination: string;
  key: string | null;
  type: string;
  payload: unknown;
  headers: Record<string, string>;
  saga_id: string | null;
  status: string;
  attempts: number;
  next_attempt_at: Date;
  created_at: Date;
  sent_at: Date | null;
  last_error: string | null;
  /** xid8 and bigint as text: both exceed 2^53. */
  txid: string;
  seq: string;
}

export interface InsertOutboxParams {
  ids: string[];
  destinations: string[];
  keys: (string | null)[];
  types: string[];
  /** JSON text, cast to jsonb in SQL. */
  payloads: string[];
  headers: string[];
  sagaIds: (string | null)[];
}

/**
 * The store's INSERT: all of one publish() in one round trip, `seq` in array order, after the
 * per-key advisory locks (one-time filter) that make per-key `seq` order commit order.
 */
export function insertOutboxMessages(t: BenchTables, p: InsertOutboxParams): Statement<never> {
  return {
    text: `
      INSERT INTO ${t.outboxMessage} (id, destination, key, type, payload, headers, saga_id)
      SELECT m.id, m.destination, m.key, m.type, m.payload::jsonb, m.headers::jsonb, m.saga_id
      FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::uuid[])
        WITH ORDINALITY AS m (id, destination, key, type, payload, headers, saga_id, ord)
      WHERE (SELECT count(pg_advisory_xact_lock(hashtext($8::text), l.h))
        FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest($3::text[]) AS k
              WHERE k IS NOT NULL ORDER BY 1) l) >= 0
      ORDER BY m.ord`,
    values: [
      p.ids,
      p.destinations,
      p.keys,
      p.types,
      p.payloads,
      p.headers,
      p.sagaIds,
      t.outboxMessage,
    ],
  };
}

/**
 * The relay's claim: up to `limit` pending, due rows that head their key, oldest first, FOR UPDATE SKIP LOCKED, leased on the database clock.
 */
export function claimOutboxMessages(
  t: BenchTables,
  p: { claimToken: string; limit: number; leaseMs: number },
): Statement<OutboxMessageRow> {
  return {
    text: `
      WITH candidate AS (
        SELECT m.id
        FROM ${t.outboxMessage} m
        WHERE m.status IN ('pending')
          AND m.next_attempt_at <= clock_timestamp()
          AND (m.key IS NULL OR NOT EXISTS (
            SELECT 1 FROM ${t.outboxMessage} e
            WHERE e.key = m.key
              AND e.status IN ('pending', 'claimed')
              AND e.seq < m.seq))
        ORDER BY m.txid, m.seq
        LIMIT $2
        FOR UPDATE OF m SKIP LOCKED
      )
      UPDATE ${t.outboxMessage} m
      SET status = 'claimed', claim_token = $1, lease_until = clock_timestamp() + ${msInterval('$3')}
      FROM candidate
      WHERE m.id = candidate.id
      RETURNING m.id, m.destination, m.key, m.type, m.payload, m.headers, m.saga_id, m.status, m.attempts,
                m.next_attempt_at, m.created_at, m.sent_at, m.last_error, m.txid::text AS txid, m.seq::text AS seq`,
    values: [p.claimToken, p.limit, p.leaseMs],
  };
}

/** Broker acks, one statement per batch, fenced on the claim token. */
export function markOutboxSent(
  t: BenchTables,
  p: { claimToken: string; ids: readonly string[] },
): Statement<{ id: string }> {
  return {
    text: `
      UPDATE ${t.outboxMessage}
      SET status = 'sent', sent_at = clock_timestamp(), claim_token = NULL, lease_until = NULL
      WHERE id = ANY($2::uuid[]) AND claim_token = $1 AND status IN ('claimed')
      RETURNING id`,
    values: [p.claimToken, [...p.ids]],
  };
}

// ---------------------------------------------------------------------------------------------
// saga (mirrors saga-queries.sql.ts)
// ---------------------------------------------------------------------------------------------

export interface CreateSagaParams {
  id: string;
  name: string;
  version: string;
  input: unknown;
  idempotencyKey: string | null;
  /** Stored with the idempotency key (null without one, as the engine does). */
  inputFingerprint: string | null;
  owner: string | null;
  leaseMs: number;
  timeoutMs: number | null;
  /** One `pending` row each; the array index is the row's `position`. */
  stepNames: readonly string[];
}

/** The instance and all its step rows in ONE statement (no BEGIN/COMMIT needed). */
export function createSaga(t: BenchTables, p: CreateSagaParams): Statement<{ id: string }> {
  return {
    text: `
      WITH instance AS (
        INSERT INTO ${t.sagaInstance}
          (id, name, version, status, input, idempotency_key, owner, lease_until, deadline_at,
           input_fingerprint)
        VALUES (
          $1, $2, $3, 'running', $4::jsonb, $5, $6,
          CASE WHEN $6::text IS NULL THEN NULL ELSE clock_timestamp() + ${msInterval('$7')} END,
          CASE WHEN $8::double precision IS NULL THEN NULL ELSE now() + ${msInterval('$8')} END,
          $10
        )
        ON CONFLICT (name, idempotency_key) DO NOTHING
        RETURNING id
      ), steps AS (
        INSERT INTO ${t.sagaStep} (saga_id, name, position)
        SELECT instance.id, step.name, step.ordinality - 1
        FROM instance CROSS JOIN unnest($9::text[]) WITH ORDINALITY AS step (name, ordinality)
      )
      SELECT id FROM instance`,
    values: [
      p.id,
      p.name,
      p.version,
      JSON.stringify(p.input),
      p.idempotencyKey,
      p.owner,
      p.leaseMs,
      p.timeoutMs,
      [...p.stepNames],
      p.inputFingerprint,
    ],
  };
}

/** Locks the step row for the step's transaction. */
export function lockStep(
  t: BenchTables,
  p: { sagaId: string; step: string },
): Statement<{ status: string }> {
  return {
    text: `SELECT status FROM ${t.sagaStep} WHERE saga_id = $1 AND name = $2 FOR UPDATE`,
    values: [p.sagaId, p.step],
  };
}

/** Records the step done and checks the lease fence in one statement, the last before COMMIT. */
export function completeStep(
  t: BenchTables,
  p: { sagaId: string; owner: string; step: string; result: unknown; attempt: number },
): Statement<{ fenced: number; recorded: number }> {
  return {
    text: `
      WITH fence AS (
        SELECT id FROM ${t.sagaInstance}
        WHERE id = $1 AND owner = $2 AND lease_until > clock_timestamp()
        FOR SHARE
      ), recorded AS (
        UPDATE ${t.sagaStep} s
        SET status = 'completed', result = $4::jsonb, attempts = $5,
            started_at = coalesce(s.started_at, now()), completed_at = clock_timestamp()
        FROM fence
        WHERE s.saga_id = fence.id AND s.name = $3
        RETURNING s.name
      )
      SELECT (SELECT count(*) FROM fence)::int AS fenced,
             (SELECT count(*) FROM recorded)::int AS recorded`,
    values: [
      p.sagaId,
      p.owner,
      p.step,
      p.result === undefined ? null : JSON.stringify(p.result),
      p.attempt,
    ],
  };
}

/** The conditional status change (expected status, owner, live lease) in one UPDATE. */
export function transitionSaga(
  t: BenchTables,
  p: {
    sagaId: string;
    owner: string;
    from: readonly string[];
    to: string;
    error: string | null;
    failedStep: string | null;
  },
): Statement<{ id: string }> {
  return {
    text: `
      UPDATE ${t.sagaInstance}
      SET status = $4,
          error = coalesce($5, error),
          failed_step = coalesce($6, failed_step),
          updated_at = clock_timestamp(),
          owner = CASE WHEN $4 IN ('completed', 'compensated', 'failed') THEN NULL ELSE owner END,
          lease_until = CASE WHEN $4 IN ('completed', 'compensated', 'failed') THEN NULL ELSE lease_until END
      WHERE id = $1 AND owner = $2 AND status = ANY($3::text[]) AND lease_until > clock_timestamp()
      RETURNING id`,
    values: [p.sagaId, p.owner, [...p.from], p.to, p.error, p.failedStep],
  };
}
