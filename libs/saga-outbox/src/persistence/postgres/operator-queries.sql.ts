/**
 * The read-only statements behind the operator CLI (`sage status`, `sage sagas list`): what an
 * on-call engineer asks of Sage's tables that no store port answers. One statement per export.
 *
 * Unlike observability-queries.sql.ts (run on every scrape, so restricted to the partial indexes of
 * the live rows), these run when a person types a command: a few may scan a whole table (said so
 * where they do), and none takes a lock beyond the snapshot of its own implicit transaction.
 * Values travel as parameters; the only spliced text is identifiers from SagaSchema / OutboxTables /
 * InboxTables (validated and quoted once, schema-name.ts). Ages use `clock_timestamp()`, the
 * database clock the rows were written with, so an operator's laptop clock never skews them.
 */
import type { InboxTables } from './inbox-tables';
import type { OutboxTables } from './outbox-tables';
import type { Statement } from './saga-queries.sql';
import type { SagaSchema } from './schema-name';
import { TERMINAL_SAGA_STATUSES } from '../../core/ports/saga-store';
import { LIVE_SAGA_STATUSES as LIVE_STATUSES } from '../../core/saga/saga-transitions';

/** The statuses a saga can still leave (the claim index's predicate, saga_instance_claim_idx). */
/** The live statuses as an SQL list, from the saga transition table. */
const LIVE_SAGA_STATUSES = `(${LIVE_STATUSES.map((s) => `'${s}'`).join(', ')})`;
/** The statuses a saga ends in (saga_instance_ended_created_idx's predicate). */
const ENDED_SAGA_STATUSES = `(${TERMINAL_SAGA_STATUSES.map((s) => `'${s}'`).join(', ')})`;

/**
 * "Nobody is driving this saga although it is due", for longer than the grace `$param` (seconds):
 * parked with a wake time that has passed (waiting), lease expired (its owner died), or unowned since
 * its last change (started or released for the recovery loop). The claim index's condition (see
 * claimOrphans in saga-queries.sql.ts), except that an unowned saga counts from `updated_at` rather
 * than from the beginning of time, so a saga handed to the recovery loop a second ago is not
 * "stalled". A healthy recovery loop claims such a saga within its poll interval; one that stays
 * past the grace means no worker runs that saga name and version (down, or a deploy changed the
 * definition).
 */
const stalledSince = (param: string): string =>
  `coalesce(i.wake_at, i.lease_until, i.updated_at)
     < clock_timestamp() - (${param}::double precision * interval '1 second')`;

// ---------------------------------------------------------------------------------------------
// Sagas
// ---------------------------------------------------------------------------------------------

export interface SagaStatusCountRow {
  status: string;
  /** bigint as text. */
  count: string;
}

/**
 * Instances per status, terminal ones included. Scans the whole of saga_instance (no index holds
 * the terminal rows): fine for a command run by hand, which is why it is not a metric.
 */
export function selectSagaStatusCounts(s: SagaSchema): Statement<SagaStatusCountRow> {
  return {
    text: `SELECT status, count(*) AS count FROM ${s.sagaInstance} GROUP BY status`,
    values: [],
  };
}

export interface LiveSagaGroupRow {
  name: string;
  version: string;
  status: string;
  /** bigint as text. */
  count: string;
  /** bigint as text: how many of them are stalled (see `stalledSince`). */
  stalled: string;
  oldest_age_seconds: number;
}

/**
 * Live (non-terminal) instances per saga name, definition version and status, with how many are
 * stalled. Reads only the live rows (saga_instance_claim_idx's predicate); versions side by side
 * are what a deploy that changed a definition leaves behind.
 */
export function selectLiveSagaGroups(
  s: SagaSchema,
  p: { stalledAfterSeconds: number },
): Statement<LiveSagaGroupRow> {
  return {
    text: `
      SELECT i.name, i.version, i.status, count(*) AS count,
             count(*) FILTER (WHERE ${stalledSince('$1')}) AS stalled,
             extract(epoch FROM clock_timestamp() - min(i.created_at))::double precision
               AS oldest_age_seconds
      FROM ${s.sagaInstance} i
      WHERE i.status IN ${LIVE_SAGA_STATUSES}
      GROUP BY i.name, i.version, i.status
      ORDER BY i.name, i.version, i.status`,
    values: [p.stalledAfterSeconds],
  };
}

export interface SagaSummaryRow {
  id: string;
  name: string;
  version: string;
  status: string;
  owner: string | null;
  lease_until: Date | null;
  wake_at: Date | null;
  deadline_at: Date | null;
  error: string | null;
  failed_step: string | null;
  created_at: Date;
  updated_at: Date;
  age_seconds: number;
  /** `created_at` in microseconds since the epoch, bigint as text: the keyset cursor (SagaListCursor). */
  created_at_micros: string;
  stalled: boolean;
  /** Steps awaiting a reply (`waiting` forward, `compensating` backward), in step order. */
  awaiting_steps: string[];
  /** The earliest reply deadline among them; null when none awaits or none has a deadline. */
  reply_deadline: Date | null;
}

/**
 * One line per saga, for listings: the instance columns an operator scans (no input, no results,
 * which can be large) plus the steps awaiting a reply, from one correlated probe of saga_step's
 * primary key per saga listed.
 */
const SUMMARY_COLUMNS = `
  i.id, i.name, i.version, i.status, i.owner, i.lease_until, i.wake_at, i.deadline_at, i.error,
  i.failed_step, i.created_at, i.updated_at,
  extract(epoch FROM clock_timestamp() - i.created_at)::double precision AS age_seconds,
  (extract(epoch FROM i.created_at) * 1000000)::bigint::text AS created_at_micros,
  (i.status IN ${LIVE_SAGA_STATUSES} AND ${stalledSince('$1')}) AS stalled,
  coalesce(a.steps, '{}'::text[]) AS awaiting_steps,
  a.reply_deadline`;
const AWAITING_JOIN = (s: SagaSchema): string => `
  LEFT JOIN LATERAL (
    SELECT array_agg(st.name ORDER BY st.position) AS steps, min(st.reply_deadline) AS reply_deadline
    FROM ${s.sagaStep} st
    WHERE st.saga_id = i.id AND st.status IN ('waiting', 'compensating')
  ) a ON true`;

/** The instance columns a listing shows, selected in each branch of selectSagaList. */
const LISTED_COLUMNS = `i.id, i.name, i.version, i.status, i.owner, i.lease_until, i.wake_at,
  i.deadline_at, i.error, i.failed_step, i.created_at, i.updated_at`;

/**
 * The newest sagas, optionally of one status and/or one saga name (NULL: any), ordered by
 * (created_at, id) descending. Two branches, each newest first and cut at `limit`, merged:
 * - live sagas, few by nature (the claim index's predicate): sorted in memory;
 * - ended sagas, nearly all of the table: read backwards along `saga_instance_ended_created_idx`,
 *   stopping after `limit` matching rows (a rare status or name reads further back).
 * Not one index over every saga by creation: the recovery claim and selectOldestLiveSagas order
 * live sagas by `created_at` too, and given such an index the planner walked it from the oldest
 * saga, filtering out every ended one, instead of reading the few live ones (on a million sagas,
 * hot-statement-plans.int-spec.ts).
 */
export function selectSagaList(
  s: SagaSchema,
  p: {
    status: string | null;
    name: string | null;
    limit: number;
    stalledAfterSeconds: number;
    /** Keyset paging: only sagas strictly older than this (created_at, id), the previous page's last. */
    before?: SagaListCursor | null;
    /** Only the saga started with this idempotency key (with `name`: a probe of its unique index). */
    idempotencyKey?: string | null;
    /** Only sagas started at least this many seconds ago. */
    olderThanSeconds?: number | null;
  },
): Statement<SagaSummaryRow> {
  const values: unknown[] = [p.stalledAfterSeconds, p.status, p.name, p.limit];
  const param = (value: unknown): string => `$${values.push(value)}`;
  // Optional conditions are added only when given (their values stay parameters), so each one is an
  // index condition of its branch's (created_at, id) scan, not a filter the planner cannot fold.
  const extra: string[] = [];
  if (p.before)
    extra.push(
      `(i.created_at, i.id) < (timestamptz 'epoch' + ${param(p.before.createdAtMicros)}::bigint * interval '1 microsecond', ${param(p.before.id)}::uuid)`,
    );
  if (p.idempotencyKey != null) extra.push(`i.idempotency_key = ${param(p.idempotencyKey)}`);
  // statement_timestamp(), not clock_timestamp(): stable within the statement, so the bound is an
  // index condition.
  if (p.olderThanSeconds != null)
    extra.push(
      `i.created_at <= statement_timestamp() - ${param(p.olderThanSeconds)}::double precision * interval '1 second'`,
    );
  const more = extra.map((c) => `\n          AND ${c}`).join('');
  const branch = (statuses: string): string => `(
        SELECT ${LISTED_COLUMNS}
        FROM ${s.sagaInstance} i
        WHERE i.status IN ${statuses}
          AND ($2::text IS NULL OR i.status = $2)
          AND ($3::text IS NULL OR i.name = $3)${more}
        ORDER BY i.created_at DESC, i.id DESC
        LIMIT $4)`;
  // A status filter names one side (the status itself stays a parameter): the planner cannot tell
  // that `status IN (live) AND status = 'failed'` matches nothing, and would read the other side's
  // whole index looking for it.
  const branches =
    p.status !== null && (LIVE_STATUSES as readonly string[]).includes(p.status)
      ? [branch(LIVE_SAGA_STATUSES)]
      : p.status !== null && (TERMINAL_SAGA_STATUSES as readonly string[]).includes(p.status)
        ? [branch(ENDED_SAGA_STATUSES)]
        : [branch(LIVE_SAGA_STATUSES), branch(ENDED_SAGA_STATUSES)];
  return {
    text: `
      SELECT ${SUMMARY_COLUMNS}
      FROM (${branches.join('\n        UNION ALL ')}) i ${AWAITING_JOIN(s)}
      ORDER BY i.created_at DESC, i.id DESC
      LIMIT $4`,
    values,
  };
}

/**
 * Where a page of selectSagaList ended: the last saga's `created_at` in microseconds since the epoch
 * (exact: a JavaScript Date keeps only milliseconds, and a cursor rounded to them would skip or
 * repeat sagas) and its id.
 */
export interface SagaListCursor {
  /** bigint as text. */
  createdAtMicros: string;
  id: string;
}

/**
 * The oldest live sagas first: the ones most likely stuck. Reads only live rows (the claim
 * index's predicate), so it stays cheap however many sagas have ended.
 */
export function selectOldestLiveSagas(
  s: SagaSchema,
  p: { limit: number; stalledAfterSeconds: number },
): Statement<SagaSummaryRow> {
  return {
    text: `
      SELECT ${SUMMARY_COLUMNS}
      FROM ${s.sagaInstance} i ${AWAITING_JOIN(s)}
      WHERE i.status IN ${LIVE_SAGA_STATUSES}
      ORDER BY i.created_at, i.id
      LIMIT $2`,
    values: [p.stalledAfterSeconds, p.limit],
  };
}

// ---------------------------------------------------------------------------------------------
// Outbox
// ---------------------------------------------------------------------------------------------

export interface OutboxPendingBreakdownRow {
  /** bigint as text: pending and due now (what a relay claims next, key order permitting). */
  due: string;
  /** bigint as text: pending with a failed attempt behind them, waiting out their backoff. */
  backing_off: string;
  /** bigint as text: pending rows behind an earlier unsent message of their key. */
  behind_key: string;
  /** bigint as text: claimed rows whose lease ran out (their relay died; the reaper returns them). */
  expired_claims: string;
}

/**
 * Why pending messages are not moving, in one pass over the unsent rows (the partial indexes
 * `outbox_message_claimable_idx` / `outbox_message_lease_idx` cover them; sent rows are not read):
 * - backing off: `next_attempt_at` in the future after a failed publish (broker errors);
 * - behind their key: an earlier message of the same key is still pending (backing off, say) or
 *   claimed, the relay's head-of-key test (outbox-queries.sql.ts claimEligible): one stuck message
 *   holds back its own key only;
 * - expired claims: a relay claimed them and stopped (crash, stall); if they pile up, nothing
 *   runs the reaper either.
 */
export function selectOutboxPendingBreakdown(
  t: OutboxTables,
): Statement<OutboxPendingBreakdownRow> {
  return {
    text: `
      SELECT
        count(*) FILTER (WHERE status = 'pending' AND next_attempt_at <= clock_timestamp()) AS due,
        count(*) FILTER (WHERE status = 'pending' AND next_attempt_at > clock_timestamp()) AS backing_off,
        count(*) FILTER (WHERE status = 'pending' AND key IS NOT NULL AND EXISTS (
          SELECT 1 FROM ${t.outboxMessage} e
          WHERE e.key = m.key AND e.status IN ('pending', 'claimed') AND e.seq < m.seq))
          AS behind_key,
        count(*) FILTER (WHERE status = 'claimed' AND lease_until < clock_timestamp()) AS expired_claims
      FROM ${t.outboxMessage} m
      -- Two equalities, not IN (...): the planner matches each arm of an OR to the partial index
      -- whose predicate it implies (a BitmapOr of both); an IN list matches neither, and on a
      -- million-row table it scanned every sent row (hot-statement-plans.int-spec.ts).
      WHERE status = 'pending' OR status = 'claimed'`,
    values: [],
  };
}

export interface OutboxDeadLetterGroupRow {
  destination: string;
  type: string;
  /** bigint as text. */
  count: string;
  oldest_created_at: Date;
  newest_created_at: Date;
  /** The last error of the newest dead letter of the group: usually the reason for all of them. */
  last_error: string | null;
}

/**
 * Dead letters per (destination, type), biggest groups first, at most `limit` groups: which
 * consumer or broker destination is refusing messages. Reads the dead-letter partial index's rows
 * only (`outbox_message_dead_letter_idx`), which stay few while operators keep up.
 */
export function selectOutboxDeadLetterGroups(
  t: OutboxTables,
  p: { limit: number },
): Statement<OutboxDeadLetterGroupRow> {
  return {
    text: `
      SELECT destination, type, count(*) AS count,
             min(created_at) AS oldest_created_at, max(created_at) AS newest_created_at,
             (array_agg(last_error ORDER BY created_at DESC, id DESC))[1] AS last_error
      FROM ${t.outboxMessage}
      WHERE status = 'dead_letter'
      GROUP BY destination, type
      ORDER BY count(*) DESC, destination, type
      LIMIT $1`,
    values: [p.limit],
  };
}

// ---------------------------------------------------------------------------------------------
// Inbox
// ---------------------------------------------------------------------------------------------

export interface InboxDeadLetterGroupRow {
  consumer: string;
  /** bigint as text. */
  count: string;
  /** When the oldest / newest of them was dead-lettered (`processed_at` records that moment). */
  oldest_at: Date;
  newest_at: Date;
}

/**
 * Inbox dead letters per consumer. Reads `inbox_message_dead_letter_idx` (partial on dead letters,
 * leading column `consumer`), so the processed majority of the inbox is never touched.
 */
export function selectInboxDeadLetterGroups(t: InboxTables): Statement<InboxDeadLetterGroupRow> {
  return {
    text: `
      SELECT consumer, count(*) AS count, min(processed_at) AS oldest_at, max(processed_at) AS newest_at
      FROM ${t.inboxMessage}
      WHERE status = 'dead_letter'
      GROUP BY consumer
      ORDER BY consumer`,
    values: [],
  };
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/**
 * The database clock now: every age an operator sees is computed against it (rows are stamped
 * with it), so a laptop with a skewed clock still reads "3m ago" correctly.
 */
export function selectDatabaseNow(): Statement<{ now: Date }> {
  return { text: 'SELECT clock_timestamp() AS now', values: [] };
}

export interface OldestTransactionRow {
  pid: number;
  database: string | null;
  application_name: string | null;
  state: string | null;
  age_seconds: number;
}

/**
 * The oldest transaction on the whole server that holds an xid or a snapshot: what holds the
 * outbox commit watermark (and vacuum) back. pg_stat_activity shows other roles' sessions without
 * `state` / `xact_start` unless the role has pg_read_all_stats, so this sees at least our own role's.
 * Excludes this very session.
 */
export function selectOldestTransaction(): Statement<OldestTransactionRow> {
  return {
    text: `
      SELECT pid, datname AS database, application_name, state,
             extract(epoch FROM clock_timestamp() - xact_start)::double precision AS age_seconds
      FROM pg_catalog.pg_stat_activity
      WHERE xact_start IS NOT NULL
        AND (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL)
        AND pid <> pg_backend_pid()
      ORDER BY xact_start
      LIMIT 1`,
    values: [],
  };
}
