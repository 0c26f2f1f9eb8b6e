/**
 * Every statement the PostgreSQL outbox runs, one per export, each saying why it is shaped the way
 * it is. Values travel as parameters; the only spliced text is identifiers from OutboxTables
 * (validated and quoted once) and the status lists of OUTBOX_TRANSITIONS (constants), so the SQL
 * enforces exactly the transitions core/outbox/outbox-transitions.ts defines.
 *
 * Time: leases, backoff and retention use `clock_timestamp()` (the database clock now), never the
 * app's clock, so relays on hosts with skewed clocks agree on who holds what.
 */
import {
  OUTBOX_TRANSITIONS,
  type OutboxTransitionName,
} from '../../core/outbox/outbox-transitions';
import type { DeadLetterFilter } from '../../core/ports/outbox-store';
import { OUTBOX_MAINTENANCE_LOCK_KEY, type OutboxTables } from './outbox-tables';
import type { Statement } from './saga-queries.sql';

export type { Statement } from './saga-queries.sql';

const msInterval = (param: string): string =>
  `(${param}::double precision * interval '1 millisecond')`;

/** `status IN ('a', 'b')` for a transition's `from` list (constants, not input). */
const fromStatus = (name: OutboxTransitionName, alias = ''): string =>
  `${alias}status IN (${OUTBOX_TRANSITIONS[name].from.map((s) => `'${s}'`).join(', ')})`;
const toStatus = (name: OutboxTransitionName): string => `'${OUTBOX_TRANSITIONS[name].to}'`;

const MESSAGE_COLUMNS = `id, destination, key, type, payload, headers, saga_id, status, attempts,
  next_attempt_at, created_at, sent_at, last_error, txid::text AS txid, seq::text AS seq`;

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

// ---------------------------------------------------------------------------------------------
// write path
// ---------------------------------------------------------------------------------------------

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
 * Takes the transaction-scoped advisory lock of every distinct non-null key in `keysParam` (a
 * text[]), in lock-key order (so two calls never wait on each other in a cycle); the lock space is
 * the outbox table's name (`tableParam`). Evaluates to the number of keys locked.
 */
const keyLocks = (keysParam: string, tableParam: string): string =>
  `SELECT count(pg_advisory_xact_lock(hashtext(${tableParam}::text), l.h))
        FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest(${keysParam}::text[]) AS k
              WHERE k IS NOT NULL ORDER BY 1) l`;

/** The first seven parameters of both inserts, in their order. */
const insertValues = (p: InsertOutboxParams): unknown[] => [
  p.ids,
  p.destinations,
  p.keys,
  p.types,
  p.payloads,
  p.headers,
  p.sagaIds,
];

/**
 * All of one publish() call in one round trip, in the caller's transaction. `txid` defaults to the
 * caller's transaction id; `seq` is assigned in array order (ORDER BY ordinality), so messages of
 * one transaction publish in the order they were given. The statement-level trigger sends the
 * NOTIFY hint.
 *
 * Per-key commit order: before any row is formed (so before `seq` is drawn), the one-time filter
 * takes a transaction-scoped advisory lock per distinct key (two-int form: the outbox table's hash,
 * the key's hash; in hash order, so two calls never wait on each other in a cycle). A second
 * writer of the key waits here until the first commits or rolls back, so per key `seq` order is
 * commit order, and a committed row's earlier keyed rows are committed too (locks are released
 * after the commit is visible). The relay therefore needs no commit watermark: the head-of-key
 * test alone keeps the order (claimEligible). Keyless rows take no lock.
 */
export function insertOutboxMessages(t: OutboxTables, p: InsertOutboxParams): Statement<never> {
  return {
    text: `
      INSERT INTO ${t.outboxMessage} (id, destination, key, type, payload, headers, saga_id)
      SELECT m.id, m.destination, m.key, m.type, m.payload::jsonb, m.headers::jsonb, m.saga_id
      FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::uuid[])
        WITH ORDINALITY AS m (id, destination, key, type, payload, headers, saga_id, ord)
      WHERE (${keyLocks('$3', '$8')}) >= 0
      ORDER BY m.ord`,
    values: [...insertValues(p), t.outboxMessage],
  };
}

/** The per-key lock of insertOutboxMessages, taken on its own (see insertOutboxMessagesClaimed). */
export function lockOutboxKeys(
  t: OutboxTables,
  p: { keys: (string | null)[] },
): Statement<{ n: number }> {
  return {
    text: `
      SELECT (${keyLocks('$1', '$2')})::int AS n`,
    values: [p.keys, t.outboxMessage],
  };
}

/**
 * insertOutboxMessages for an optimistic sender that claims at write: rows in `claimIds` that will
 * head their key are written already `claimed` (the sender's token, a lease on the database
 * clock), so right after the commit the process publishes them with no claim round trip. Returns
 * those rows. A row heads its key when it is the call's first row of that key and no row of the
 * key is pending or claimed (the relay's head-of-key test); keyless rows always do. The caller
 * must have taken the keys' locks with lockOutboxKeys in an earlier statement: under READ
 * COMMITTED this statement's snapshot then includes every commit of those keys, so the test cannot
 * miss an earlier row. Under REPEATABLE READ or SERIALIZABLE the snapshot may predate the lock,
 * so nothing is claimed there (the rows are written pending, as by insertOutboxMessages).
 */
export function insertOutboxMessagesClaimed(
  t: OutboxTables,
  p: InsertOutboxParams & { claimIds: string[]; claimToken: string; leaseMs: number },
): Statement<OutboxMessageRow> {
  return {
    text: `
      WITH input AS (
        SELECT m.*,
               m.id = ANY($8::uuid[])
               AND current_setting('transaction_isolation') = 'read committed'
               AND (m.key IS NULL OR (
                 row_number() OVER (PARTITION BY m.key ORDER BY m.ord) = 1
                 AND NOT EXISTS (
                   SELECT 1 FROM ${t.outboxMessage} e
                   WHERE e.key = m.key AND e.status IN ('pending', 'claimed')))) AS claim
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::uuid[])
          WITH ORDINALITY AS m (id, destination, key, type, payload, headers, saga_id, ord)
      ), written AS (
        INSERT INTO ${t.outboxMessage}
          (id, destination, key, type, payload, headers, saga_id, status, claim_token, lease_until)
        SELECT i.id, i.destination, i.key, i.type, i.payload::jsonb, i.headers::jsonb, i.saga_id,
               CASE WHEN i.claim THEN 'claimed' ELSE 'pending' END,
               CASE WHEN i.claim THEN $9::uuid END,
               CASE WHEN i.claim THEN clock_timestamp() + ${msInterval('$10')} END
        FROM input i
        ORDER BY i.ord
        RETURNING ${MESSAGE_COLUMNS}
      )
      SELECT * FROM written WHERE status = 'claimed'`,
    values: [...insertValues(p), p.claimIds, p.claimToken, p.leaseMs],
  };
}

// ---------------------------------------------------------------------------------------------
// relay
// ---------------------------------------------------------------------------------------------

/**
 * Claim eligibility, shared by claimOutboxMessages (the relay) and claimOutboxMessagesByIds (the
 * optimistic sender) so that both take rows under one rule, text for text. A row (alias `m`)
 * is eligible when it is:
 * - pending and due (`next_attempt_at` passed on the database clock);
 * - the head of its key: no message of the same key with a lower `seq` is pending (e.g. backing
 *   off) or claimed (in flight elsewhere). So at most one message per key is in flight across all
 *   relays and optimistic senders, a retrying message holds back only its own key, and a dead
 *   letter stops blocking. Per key, `seq` is commit order: insertOutboxMessages serialises the
 *   writers of a key on an advisory lock taken before `seq` is drawn, so when a keyed row is
 *   visible every earlier row of its key is visible too, and none can commit "before" it later.
 *
 * No commit watermark (`txid < pg_snapshot_xmin`, until 0.3): it made every row wait for the
 * oldest transaction open anywhere on the server, so one long transaction stalled every relay and
 * the optimistic sender waited on unrelated writers. Keyless rows have no order to keep.
 */
const claimEligible = (t: OutboxTables): string => `m.${fromStatus('claim')}
          AND m.next_attempt_at <= clock_timestamp()
          AND (m.key IS NULL OR NOT EXISTS (
            SELECT 1 FROM ${t.outboxMessage} e
            WHERE e.key = m.key
              AND e.status IN ('pending', 'claimed')
              AND e.seq < m.seq))`;

/** The claim transition itself (same for both claims): token, and a lease on the database clock. */
const claimSet = (leaseParam: string): string =>
  `status = ${toStatus('claim')}, claim_token = $1, lease_until = clock_timestamp() + ${msInterval(leaseParam)}`;

const CLAIMED_COLUMNS = `m.id, m.destination, m.key, m.type, m.payload, m.headers, m.saga_id, m.status, m.attempts,
                m.next_attempt_at, m.created_at, m.sent_at, m.last_error, m.txid::text AS txid, m.seq::text AS seq`;

/**
 * The relay's claim, in one statement: up to `limit` eligible rows (claimEligible), oldest commit
 * first. FOR UPDATE SKIP LOCKED lets concurrent relays take disjoint rows without waiting; a row
 * another relay claimed after our snapshot is re-checked against `status = 'pending'` and dropped.
 * RETURNING order is unspecified: callers sort by (txid, seq).
 */
export function claimOutboxMessages(
  t: OutboxTables,
  p: { claimToken: string; limit: number; leaseMs: number },
): Statement<OutboxMessageRow> {
  return {
    text: `
      WITH candidate AS (
        SELECT m.id
        FROM ${t.outboxMessage} m
        WHERE ${claimEligible(t)}
        ORDER BY m.txid, m.seq
        LIMIT $2
        FOR UPDATE OF m SKIP LOCKED
      )
      UPDATE ${t.outboxMessage} m
      SET ${claimSet('$3')}
      FROM candidate
      WHERE m.id = candidate.id
      RETURNING ${CLAIMED_COLUMNS}`,
    values: [p.claimToken, p.limit, p.leaseMs],
  };
}

/**
 * claimOutboxMessages over a bounded window: only the `window` oldest due pending rows are tested
 * for eligibility. On a deep backlog most pending rows wait behind a key whose head is in flight;
 * the unbounded claim tests every one of them before it finds `limit` eligible rows (a 100,000-row
 * backlog over 1,000 keys, 4 relays: each claim read ~99,000 rows to find the few heads, and 4
 * relays drained at 0.09 of one relay on a small backlog). The window reads at most `window` index
 * entries, and no more than it needs: no ORDER BY above the window, so the plan streams (ordered
 * index scan → primary-key probe → eligibility → lock) and stops at `limit` rows; the rows come
 * in window order in practice, and callers sort what they claimed anyway. It can come back empty while eligible rows exist further on (the window full of rows
 * behind backing-off heads): the store then runs the unbounded claim (PostgresOutboxStore.claim),
 * so a key holding back its own rows never holds back the others.
 */
export function claimOutboxMessagesWindowed(
  t: OutboxTables,
  p: { claimToken: string; limit: number; leaseMs: number; window: number },
): Statement<OutboxMessageRow> {
  return {
    text: `
      WITH candidate AS (
        SELECT m.id
        FROM (
          SELECT w.id
          FROM ${t.outboxMessage} w
          WHERE w.status = 'pending' AND w.next_attempt_at <= clock_timestamp()
          ORDER BY w.txid, w.seq
          LIMIT $4
        ) s
        JOIN ${t.outboxMessage} m ON m.id = s.id
        WHERE ${claimEligible(t)}
        LIMIT $2
        FOR UPDATE OF m SKIP LOCKED
      )
      UPDATE ${t.outboxMessage} m
      SET ${claimSet('$3')}
      FROM candidate
      WHERE m.id = candidate.id
      RETURNING ${CLAIMED_COLUMNS}`,
    values: [p.claimToken, p.limit, p.leaseMs, p.window],
  };
}

/** A claimed row, or (id NULL) the one row that only carries `waiting`. */
export type ClaimByIdsRow = Omit<OutboxMessageRow, 'id'> & {
  id: string | null;
  waiting: string[] | null;
};

/**
 * The optimistic sender's claim: claimOutboxMessages restricted to `id = ANY($2)`, the rows the
 * calling process just committed (primary-key lookups, no scan). Same eligibility and transition,
 * so the relay and the optimistic sender can race on a row and exactly one of them gets it (the
 * row lock + `status = 'pending'` re-check), and the optimistic path can never overtake an earlier
 * message of the same key or a transaction that commits late (the watermark).
 *
 * Also reports in the same round trip which ids are still pending but were not claimable
 * (`waiting`: above the watermark, behind their key's head, or locked by a concurrent claim), so
 * the caller retries only those, and stops at once for rows a relay already took. The `waiting`
 * subquery sees the statement's snapshot (before the UPDATE), hence the NOT IN over what the
 * UPDATE claimed. The outer LEFT JOIN returns one row (id NULL) when nothing was claimed.
 */
export function claimOutboxMessagesByIds(
  t: OutboxTables,
  p: { claimToken: string; ids: readonly string[]; leaseMs: number },
): Statement<ClaimByIdsRow> {
  return {
    text: `
      WITH candidate AS (
        SELECT m.id
        FROM ${t.outboxMessage} m
        WHERE m.id = ANY($2::uuid[])
          AND ${claimEligible(t)}
        ORDER BY m.txid, m.seq
        FOR UPDATE OF m SKIP LOCKED
      ), claimed AS (
        UPDATE ${t.outboxMessage} m
        SET ${claimSet('$3')}
        FROM candidate
        WHERE m.id = candidate.id
        RETURNING ${CLAIMED_COLUMNS}
      ), waiting AS (
        SELECT array_agg(w.id::text) AS waiting
        FROM ${t.outboxMessage} w
        WHERE w.id = ANY($2::uuid[])
          AND w.${fromStatus('claim')}
          AND w.id NOT IN (SELECT id FROM claimed)
      )
      SELECT waiting.waiting, claimed.*
      FROM waiting LEFT JOIN claimed ON true`,
    values: [p.claimToken, [...p.ids], p.leaseMs],
  };
}

/**
 * Broker acks, in one statement per batch. Fenced: only rows still claimed under this token change,
 * so a relay whose lease expired (rows reaped and maybe claimed again) marks nothing; RETURNING says
 * which ids it did mark. The lease is deliberately NOT checked: a publish that did succeed is best
 * recorded even after the lease ran out, as long as nobody took the row over.
 */
export function markOutboxSent(
  t: OutboxTables,
  p: { claimToken: string; ids: readonly string[] },
): Statement<{ id: string }> {
  return {
    text: `
      UPDATE ${t.outboxMessage}
      SET status = ${toStatus('markSent')}, sent_at = clock_timestamp(), claim_token = NULL, lease_until = NULL
      WHERE id = ANY($2::uuid[]) AND claim_token = $1 AND ${fromStatus('markSent')}
      RETURNING id`,
    values: [p.claimToken, [...p.ids]],
  };
}

/**
 * Failed publishes, fenced like markOutboxSent. Per row: a delay → back to pending, due after the
 * delay (retry); no delay → dead_letter with the error as the reason. attempts + 1 either way.
 */
export function markOutboxFailed(
  t: OutboxTables,
  p: {
    claimToken: string;
    ids: string[];
    errors: string[];
    delaysMs: (number | null)[];
    /** false: the broker was unreachable, the attempt is not counted. */
    counted: boolean[];
  },
): Statement<{ id: string }> {
  return {
    text: `
      UPDATE ${t.outboxMessage} m
      SET status = CASE WHEN f.delay_ms IS NULL THEN ${toStatus('deadLetter')} ELSE ${toStatus('retry')} END,
          attempts = m.attempts + CASE WHEN f.counted THEN 1 ELSE 0 END,
          next_attempt_at = CASE WHEN f.delay_ms IS NULL THEN m.next_attempt_at
                                 ELSE clock_timestamp() + ${msInterval('f.delay_ms')} END,
          last_error = f.error,
          -- When it became a dead letter: the optional dead-letter TTL counts from here.
          dead_lettered_at = CASE WHEN f.delay_ms IS NULL THEN clock_timestamp() ELSE NULL END,
          claim_token = NULL,
          lease_until = NULL
      FROM unnest($2::uuid[], $3::text[], $4::double precision[], $5::boolean[])
           AS f (id, error, delay_ms, counted)
      WHERE m.id = f.id AND m.claim_token = $1 AND m.${fromStatus('retry')}
      RETURNING m.id`,
    values: [p.claimToken, p.ids, p.errors, p.delaysMs, p.counted],
  };
}

/**
 * Claims handed back as they were (attempts unchanged, due now), fenced: the relay's unstarted
 * claims at shutdown, and an optimistic publish that failed or timed out (the relay takes over at
 * once; the one optimistic try is not counted as an attempt, so it never eats into max attempts).
 */
export function releaseOutboxClaims(
  t: OutboxTables,
  p: { claimToken: string; ids: readonly string[] },
): Statement<{ id: string }> {
  return {
    text: `
      UPDATE ${t.outboxMessage}
      SET status = ${toStatus('release')}, claim_token = NULL, lease_until = NULL
      WHERE id = ANY($2::uuid[]) AND claim_token = $1 AND ${fromStatus('release')}
      RETURNING id`,
    values: [p.claimToken, [...p.ids]],
  };
}

/**
 * The reaper: claims whose lease ran out on the database clock go back to pending (attempts
 * unchanged: a crashed relay is not the message's fault). SKIP LOCKED so reapers on several relays
 * never wait on each other or on a relay marking the same rows right now.
 */
export function reapExpiredClaims(
  t: OutboxTables,
  p: { limit: number },
): Statement<{ id: string }> {
  return {
    text: `
      WITH expired AS (
        SELECT id FROM ${t.outboxMessage}
        WHERE ${fromStatus('reap')} AND lease_until < clock_timestamp()
        ORDER BY lease_until
        LIMIT $1
        FOR UPDATE SKIP LOCKED
      )
      UPDATE ${t.outboxMessage} m
      SET status = ${toStatus('reap')}, claim_token = NULL, lease_until = NULL,
          last_error = 'claim lease expired (relay stopped or stalled); released by the reaper'
      FROM expired
      WHERE m.id = expired.id
      RETURNING m.id`,
    values: [p.limit],
  };
}

/** The wake-up hint for relays (replay makes rows due without an INSERT, so no trigger fires). */
export function notifyOutbox(t: OutboxTables): Statement<never> {
  return { text: `SELECT pg_notify($1, '')`, values: [t.channel] };
}

// ---------------------------------------------------------------------------------------------
// inspection / dead letters
// ---------------------------------------------------------------------------------------------

export function selectOutboxMessage(
  t: OutboxTables,
  p: { id: string },
): Statement<OutboxMessageRow> {
  return {
    text: `SELECT ${MESSAGE_COLUMNS} FROM ${t.outboxMessage} WHERE id = $1`,
    values: [p.id],
  };
}

/** Filter columns as parameters; a NULL parameter means "any". */
function deadLetterWhere(
  filter: DeadLetterFilter,
  first: number,
): { sql: string; values: unknown[] } {
  const n = (i: number): string => `$${first + i}`;
  return {
    sql: `status = 'dead_letter'
      AND (${n(0)}::text IS NULL OR destination = ${n(0)})
      AND (${n(1)}::text IS NULL OR type = ${n(1)})
      AND (${n(2)}::text IS NULL OR key = ${n(2)})
      AND (${n(3)}::uuid IS NULL OR saga_id = ${n(3)})
      AND (${n(4)}::timestamptz IS NULL OR created_at < ${n(4)})`,
    values: [
      filter.destination ?? null,
      filter.type ?? null,
      filter.key ?? null,
      filter.sagaId ?? null,
      filter.createdBefore ?? null,
    ],
  };
}

/** A page of dead letters in id (≈ creation) order, keyset-paged on the dead-letter partial index. */
export function selectDeadLetters(
  t: OutboxTables,
  p: { filter: DeadLetterFilter; limit: number; after: string | null },
): Statement<OutboxMessageRow> {
  const where = deadLetterWhere(p.filter, 3);
  return {
    text: `
      SELECT ${MESSAGE_COLUMNS} FROM ${t.outboxMessage}
      WHERE ${where.sql} AND ($1::uuid IS NULL OR id > $1)
      ORDER BY id
      LIMIT $2`,
    values: [p.after, p.limit, ...where.values],
  };
}

/** Selector → the dead-letter ids to act on: explicit ids, or up to `limit` matching a filter. Locked (SKIP LOCKED) for the statement. */
function deadLetterTarget(
  t: OutboxTables,
  selector: { ids: readonly string[] } | { filter: DeadLetterFilter; limit: number },
): { cte: string; values: unknown[] } {
  if ('ids' in selector) {
    return {
      cte: `SELECT id FROM ${t.outboxMessage} WHERE status = 'dead_letter' AND id = ANY($1::uuid[]) FOR UPDATE SKIP LOCKED`,
      values: [[...selector.ids]],
    };
  }
  const where = deadLetterWhere(selector.filter, 2);
  return {
    cte: `SELECT id FROM ${t.outboxMessage} WHERE ${where.sql} ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
    values: [selector.limit, ...where.values],
  };
}

/**
 * Operator replay: dead_letter → pending, attempts from zero, due now. The row keeps its txid and
 * seq, so it becomes the head of its key again and later unsent messages of that key wait for it.
 */
export function replayDeadLetters(
  t: OutboxTables,
  selector: { ids: readonly string[] } | { filter: DeadLetterFilter; limit: number },
): Statement<{ id: string }> {
  const target = deadLetterTarget(t, selector);
  return {
    text: `
      WITH target AS (${target.cte})
      UPDATE ${t.outboxMessage} m
      SET status = ${toStatus('replay')}, attempts = 0, next_attempt_at = clock_timestamp()
      FROM target
      WHERE m.id = target.id AND m.${fromStatus('replay')}
      RETURNING m.id`,
    values: target.values,
  };
}

/** Operator discard: deletes dead letters (only dead letters, whatever the selector says). */
export function discardDeadLetters(
  t: OutboxTables,
  selector: { ids: readonly string[] } | { filter: DeadLetterFilter; limit: number },
): Statement<{ id: string }> {
  const target = deadLetterTarget(t, selector);
  return {
    text: `
      WITH target AS (${target.cte})
      DELETE FROM ${t.outboxMessage} m
      USING target
      WHERE m.id = target.id AND m.status = 'dead_letter'
      RETURNING m.id`,
    values: target.values,
  };
}

// ---------------------------------------------------------------------------------------------
// retention / stats
// ---------------------------------------------------------------------------------------------

/**
 * Leader-only retention batch, in one statement (its own transaction). `pg_try_advisory_xact_lock`
 * never waits: the process that gets it deletes, the others get `leader = false` and do nothing.
 * The lock is held until this statement's transaction ends, so it can never be left behind by a
 * crash. Oldest sent rows first, bounded by `limit`, SKIP LOCKED (never waits on anything).
 */
export function deleteSentBatch(
  t: OutboxTables,
  p: { olderThanMs: number; limit: number },
): Statement<{ leader: boolean; deleted: number }> {
  return {
    text: `
      WITH leader AS (
        SELECT pg_try_advisory_xact_lock(${OUTBOX_MAINTENANCE_LOCK_KEY}) AS ok
      ), doomed AS (
        SELECT id FROM ${t.outboxMessage}
        WHERE status = 'sent' AND sent_at < clock_timestamp() - ${msInterval('$1')}
          AND (SELECT ok FROM leader)
        ORDER BY sent_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
      ), deleted AS (
        DELETE FROM ${t.outboxMessage} m USING doomed WHERE m.id = doomed.id RETURNING 1
      )
      SELECT (SELECT ok FROM leader) AS leader, (SELECT count(*) FROM deleted)::int AS deleted`,
    values: [p.olderThanMs, p.limit],
  };
}

/**
 * Space reclaim after retention deleted many rows. Sent-row updates are not HOT (indexed status),
 * so the table churns a dead tuple per message; autovacuum wakes once a minute at best, and a
 * measured 2,000 msg/s run grew the table to 93 MB with autovacuum alone vs 26 MB vacuuming every
 * 10 s (docs/benchmarks.md, retention). Plain VACUUM (no FULL): no exclusive lock, concurrent
 * claims and inserts go on. Must run outside a transaction block: it is sent on its own.
 */
export function vacuumOutbox(t: OutboxTables): Statement<never> {
  return { text: `VACUUM (ANALYZE) ${t.outboxMessage}`, values: [] };
}

export function selectOutboxStats(t: OutboxTables): Statement<{
  pending: number;
  claimed: number;
  sent: number;
  dead_letter: number;
  oldest_pending_age_seconds: number;
}> {
  return {
    text: `
      SELECT count(*) FILTER (WHERE status = 'pending')::int AS pending,
             count(*) FILTER (WHERE status = 'claimed')::int AS claimed,
             count(*) FILTER (WHERE status = 'sent')::int AS sent,
             count(*) FILTER (WHERE status = 'dead_letter')::int AS dead_letter,
             coalesce(extract(epoch FROM clock_timestamp() - min(created_at) FILTER (WHERE status = 'pending')), 0)::float8
               AS oldest_pending_age_seconds
      FROM ${t.outboxMessage}`,
    values: [],
  };
}
