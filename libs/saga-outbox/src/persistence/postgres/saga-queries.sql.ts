/**
 * Every statement the PostgreSQL saga store runs, one per export, each saying why it is shaped the
 * way it is. Values always travel as parameters; the only spliced text is the table identifiers
 * from `SagaSchema` (validated and quoted once, in schema-name.ts) and status constants from
 * STEP_TRANSITIONS and SAGA_TRANSITIONS, so the SQL enforces exactly the transitions
 * core/saga/step-transitions.ts and core/saga/saga-transitions.ts define.
 *
 * Time: leases and fences use `clock_timestamp()` (the database clock *now*), never `now()` (the
 * start of the transaction, which may be long past inside a step) and never the app's clock.
 */
import { TERMINAL_SAGA_STATUSES, type StepFailure } from '../../core/ports/saga-store';
import {
  DRIVEN_SAGA_STATUSES,
  LIVE_SAGA_STATUSES,
  SAGA_TRANSITIONS,
  type SagaTransitionName,
} from '../../core/saga/saga-transitions';
import {
  STEP_PHASE_OPEN,
  STEP_PHASE_TRANSITIONS,
  STEP_TRANSITIONS,
  awaitingReplyStatus,
  stepFailureTransition,
  type StepTransitionName,
} from '../../core/saga/step-transitions';
import type { SagaSchema } from './schema-name';

/** A statement ready to run: SQL text, its positional parameters, and (for typing) its row shape. */
export interface Statement<Row> {
  readonly text: string;
  readonly values: readonly unknown[];
  /** Phantom: never set, only carries the row type. */
  readonly row?: Row;
}

/** `leaseMs` as an interval, computed in SQL so lease arithmetic stays on the database clock. */
const msInterval = (param: string): string =>
  `(${param}::double precision * interval '1 millisecond')`;

/** `('a', 'b')`: status constants from the transition tables (never input). */
const statuses = (list: readonly string[]): string => `(${list.map((s) => `'${s}'`).join(', ')})`;
/** A step transition's `from` statuses and its `to` status, as SQL. */
const stepFrom = (name: StepTransitionName): string => statuses(STEP_TRANSITIONS[name].from);
const stepTo = (name: StepTransitionName): string => `'${STEP_TRANSITIONS[name].to}'`;
/** The same for a saga transition. */
const sagaFrom = (name: SagaTransitionName): string => statuses(SAGA_TRANSITIONS[name].from);
const sagaTo = (name: SagaTransitionName): string => `'${SAGA_TRANSITIONS[name].to}'`;

// ---------------------------------------------------------------------------------------------
// Rows as PostgreSQL returns them (pg parses jsonb, timestamptz → Date, int4 → number).
// ---------------------------------------------------------------------------------------------

export interface SagaInstanceRow {
  id: string;
  name: string;
  version: string;
  status: string;
  input: unknown;
  idempotency_key: string | null;
  owner: string | null;
  lease_until: Date | null;
  deadline_at: Date | null;
  error: string | null;
  failed_step: string | null;
  wake_at: Date | null;
  /** bigint: pg returns it as text. */
  wake_seq: string;
  created_at: Date;
  updated_at: Date;
  /** json_agg of the steps, ordered by position; timestamps arrive as ISO strings inside JSON. */
  steps: SagaStepJson[];
}

export interface SagaStepJson {
  name: string;
  status: string;
  attempts: number;
  compensation_attempts: number;
  result: unknown;
  error: string | null;
  started_at: string | null;
  completed_at: string | null;
  compensated_at: string | null;
  reply_deadline: string | null;
}

// ---------------------------------------------------------------------------------------------
// create
// ---------------------------------------------------------------------------------------------

export interface CreateSagaParams {
  id: string;
  name: string;
  version: string;
  input: unknown;
  idempotencyKey: string | null;
  /** Stored with the key, to tell a repeated start from a different one reusing the key. */
  inputFingerprint: string | null;
  owner: string | null;
  leaseMs: number;
  timeoutMs: number | null;
  /** One `pending` row each; the array index is the row's `position` (declaration order, for display). */
  stepNames: readonly string[];
}

/**
 * The instance and all its step rows in ONE statement, so a create outside a caller's transaction
 * needs no BEGIN/COMMIT: a statement is atomic on its own, and the steps' foreign key is checked at
 * its end, when the instance row exists. The steps are inserted only for an instance row that was
 * inserted, so an idempotency-key hit writes nothing at all.
 *
 * ON CONFLICT DO NOTHING waits for a concurrent insert of the same key to commit or roll back, so two
 * racing creates resolve to exactly one saga; the loser gets no row back and reads the winner's id
 * with selectSagaByIdempotencyKey, in a new statement (this one's snapshot predates the winner's
 * commit, so the lookup cannot be folded in here). The lease starts on the database clock; the
 * deadline counts from `now()`, the same instant as `created_at`.
 */
export function createSaga(t: SagaSchema, p: CreateSagaParams): Statement<{ id: string }> {
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

/**
 * The saga that already holds an idempotency key, and the input fingerprint stored with it (NULL
 * for a saga created before fingerprints were stored), for the caller to compare with its own. A
 * fresh statement, so its snapshot sees the winner's commit.
 */
export function selectSagaByIdempotencyKey(
  t: SagaSchema,
  p: { name: string; idempotencyKey: string },
): Statement<{ id: string; input_fingerprint: string | null }> {
  return {
    text: `SELECT id, input_fingerprint FROM ${t.sagaInstance} WHERE name = $1 AND idempotency_key = $2`,
    values: [p.name, p.idempotencyKey],
  };
}

// ---------------------------------------------------------------------------------------------
// load / activeVersions
// ---------------------------------------------------------------------------------------------

/**
 * The instance and its steps in ONE statement, so both come from the same snapshot (two SELECTs
 * could see a step completed by a transaction that committed between them).
 */
export function selectSaga(t: SagaSchema, p: { id: string }): Statement<SagaInstanceRow> {
  return { text: `${sagaWithSteps(t)} WHERE i.id = $1`, values: [p.id] };
}

/**
 * The saga holding an idempotency key, with its steps, as selectSaga returns it: served by the
 * unique (name, idempotency_key) index, so it reads one row.
 */
export function selectSagaByKey(
  t: SagaSchema,
  p: { name: string; idempotencyKey: string },
): Statement<SagaInstanceRow> {
  return {
    text: `${sagaWithSteps(t)} WHERE i.name = $1 AND i.idempotency_key = $2`,
    values: [p.name, p.idempotencyKey],
  };
}

/** An instance row (alias `i`) with its steps aggregated in the same statement; the caller adds WHERE. */
function sagaWithSteps(t: SagaSchema): string {
  return `
      SELECT i.id, i.name, i.version, i.status, i.input, i.idempotency_key, i.owner, i.lease_until,
             i.deadline_at, i.error, i.failed_step, i.wake_at, i.wake_seq, i.created_at, i.updated_at,
             coalesce(
               (SELECT json_agg(json_build_object(
                         'name', s.name, 'status', s.status, 'attempts', s.attempts,
                         'compensation_attempts', s.compensation_attempts, 'result', s.result,
                         'error', s.error, 'started_at', s.started_at,
                         'completed_at', s.completed_at, 'compensated_at', s.compensated_at,
                         'reply_deadline', s.reply_deadline)
                       ORDER BY s.position, s.name)
                FROM ${t.sagaStep} s
                WHERE s.saga_id = i.id),
               '[]'::json) AS steps
      FROM ${t.sagaInstance} i`;
}

/** Live instances per definition version; served by the partial recovery index's predicate. */
export function selectActiveVersions(
  t: SagaSchema,
): Statement<{ name: string; version: string; count: number }> {
  return {
    text: `
      SELECT name, version, count(*)::int AS count
      FROM ${t.sagaInstance}
      WHERE status IN ${statuses(LIVE_SAGA_STATUSES)}
      GROUP BY name, version
      ORDER BY name, version`,
    values: [],
  };
}

// ---------------------------------------------------------------------------------------------
// runStepTransaction — run in this order inside one transaction (BEGIN … COMMIT)
// ---------------------------------------------------------------------------------------------

/**
 * 1. Locks the step row FOR UPDATE: a second worker running the same step waits here until the
 *    first commits, then sees the phase done and runs nothing. Only this step's row is locked, so
 *    parallel steps of the same saga proceed independently.
 */
export function lockStep(
  t: SagaSchema,
  p: { sagaId: string; step: string },
): Statement<{ status: string }> {
  return {
    text: `SELECT status FROM ${t.sagaStep} WHERE saga_id = $1 AND name = $2 FOR UPDATE`,
    values: [p.sagaId, p.step],
  };
}

/** What recording a phase done found: whether the fence held, and whether the step row was updated. */
export interface RecordedStep {
  fenced: number;
  recorded: number;
}

/**
 * 2. Records the phase done and checks the fence in ONE statement, the last before COMMIT. The
 * fence: the caller still owns the saga and its lease has not run out on the database clock. FOR SHARE
 * holds the instance row until commit, so no claimer (FOR UPDATE SKIP LOCKED) or lease change slips
 * in between this check and the commit, while parallel steps of the same saga (all FOR SHARE) do not
 * block each other. Taken last so the lock is held for the commit only, never across a step body
 * (that would stall renewals). The step row is updated only when the fence held; both counts are
 * returned, so the caller can tell a lost lease from an unknown step.
 */
const fencedStepUpdate = (t: SagaSchema, set: string): string => `
      WITH fence AS (
        SELECT id FROM ${t.sagaInstance}
        WHERE id = $1 AND owner = $2 AND lease_until > clock_timestamp()
        FOR SHARE
      ), recorded AS (
        UPDATE ${t.sagaStep} s
        SET ${set}
        FROM fence
        WHERE s.saga_id = fence.id AND s.name = $3
        RETURNING s.name
      )
      SELECT (SELECT count(*) FROM fence)::int AS fenced,
             (SELECT count(*) FROM recorded)::int AS recorded`;

/**
 * 2a. Records the forward phase done, after the body ran in the same transaction. `started_at`
 *     (when still unset) is `now()`, the transaction start, i.e. when this attempt began.
 */
export function completeStep(
  t: SagaSchema,
  p: { sagaId: string; owner: string; step: string; result: unknown; attempt: number },
): Statement<RecordedStep> {
  return {
    text: fencedStepUpdate(
      t,
      `status = ${stepTo('complete')}, result = $4::jsonb, attempts = $5,
            started_at = coalesce(s.started_at, now()), completed_at = clock_timestamp()`,
    ),
    values: [
      p.sagaId,
      p.owner,
      p.step,
      p.result === undefined ? null : JSON.stringify(p.result),
      p.attempt,
    ],
  };
}

/**
 * 2c. A remote phase sent its command (in this transaction): the step awaits the reply, due at
 *     `reply_deadline` on the database clock (NULL: no timeout). Forward → `waiting`, compensate →
 *     `compensating`.
 */
export function awaitStepReply(
  t: SagaSchema,
  p: {
    sagaId: string;
    owner: string;
    step: string;
    phase: 'forward' | 'compensate';
    attempt: number;
    timeoutMs: number | null;
  },
): Statement<RecordedStep> {
  const deadline = `CASE WHEN $5::double precision IS NULL THEN NULL ELSE clock_timestamp() + ${msInterval('$5')} END`;
  return {
    text: fencedStepUpdate(
      t,
      p.phase === 'forward'
        ? `status = ${stepTo('awaitReply')}, attempts = $4, started_at = coalesce(s.started_at, now()),
            reply_deadline = ${deadline}`
        : `status = ${stepTo('awaitCompensationReply')}, compensation_attempts = $4, reply_deadline = ${deadline}`,
    ),
    values: [p.sagaId, p.owner, p.step, p.attempt, p.timeoutMs],
  };
}

/** 2b. Records the compensation done; the forward `result` is kept (compensations read it). */
export function compensateStep(
  t: SagaSchema,
  p: { sagaId: string; owner: string; step: string; attempt: number },
): Statement<RecordedStep> {
  return {
    text: fencedStepUpdate(
      t,
      `status = ${stepTo('compensate')}, compensation_attempts = $4, compensated_at = clock_timestamp()`,
    ),
    values: [p.sagaId, p.owner, p.step, p.attempt],
  };
}

// ---------------------------------------------------------------------------------------------
// recordStepFailure
// ---------------------------------------------------------------------------------------------

/**
 * Records a failed attempt, fenced in the same statement: the fence CTE locks the instance FOR
 * SHARE (same reasoning as fencedStepUpdate) and the step is only updated when the fence held. Returns
 * both facts so the caller can tell a lost lease from an unknown step. A final failure also makes
 * its transition (stepFailureTransition: `failed`, `timed_out` or `compensation_failed`).
 */
export function recordStepFailure(
  t: SagaSchema,
  p: { sagaId: string; owner: string } & StepFailure,
): Statement<{ fenced: number; updated: number }> {
  // A step already past this phase (a participant's reply landed first) is left as it is: the
  // guard is in the SET, not the WHERE, so `updated` still tells an unknown step apart.
  const open = `s.status IN ${statuses(STEP_PHASE_OPEN[p.phase])}`;
  const counter = p.phase === 'forward' ? 'attempts' : 'compensation_attempts';
  const ends = stepFailureTransition(p);
  const set = [
    `${counter} = CASE WHEN ${open} THEN $4 ELSE s.${counter} END`,
    ...(ends
      ? [
          `status = CASE WHEN s.status IN ${stepFrom(ends)} THEN ${stepTo(ends)} ELSE s.status END`,
          `reply_deadline = CASE WHEN s.status IN ${stepFrom(ends)} THEN NULL ELSE s.reply_deadline END`,
        ]
      : []),
    `error = CASE WHEN ${open} THEN $5 ELSE s.error END`,
    'started_at = coalesce(s.started_at, clock_timestamp())',
  ].join(',\n            ');
  return {
    text: `
      WITH fence AS (
        SELECT id FROM ${t.sagaInstance}
        WHERE id = $1 AND owner = $2 AND lease_until > clock_timestamp()
        FOR SHARE
      ), updated AS (
        UPDATE ${t.sagaStep} s
        SET ${set}
        FROM fence
        WHERE s.saga_id = fence.id AND s.name = $3
        RETURNING s.name
      )
      SELECT (SELECT count(*) FROM fence)::int AS fenced, (SELECT count(*) FROM updated)::int AS updated`,
    values: [p.sagaId, p.owner, p.step, p.attempt, p.error],
  };
}

// ---------------------------------------------------------------------------------------------
// transition / leases
// ---------------------------------------------------------------------------------------------

/**
 * The one way a saga changes status: a single conditional UPDATE, so the check (expected status,
 * owner, live lease) and the write are atomic. Terminal statuses release ownership in the same
 * write. `error` / `failed_step` keep their previous value unless a new one is given.
 */
export function transitionSaga(
  t: SagaSchema,
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
          owner = CASE WHEN $4 IN ${statuses(TERMINAL_SAGA_STATUSES)} THEN NULL ELSE owner END,
          lease_until = CASE WHEN $4 IN ${statuses(TERMINAL_SAGA_STATUSES)} THEN NULL ELSE lease_until END
      WHERE id = $1 AND owner = $2 AND status = ANY($3::text[]) AND lease_until > clock_timestamp()
      RETURNING id`,
    values: [p.sagaId, p.owner, [...p.from], p.to, p.error, p.failedStep],
  };
}

/**
 * Heartbeat: extends the leases this owner still holds, on the database clock. A lease that ran out
 * but was not claimed by anyone is still this owner's and is extended too. Does not touch
 * `updated_at` (that records progress, not heartbeats).
 */
export function renewLeases(
  t: SagaSchema,
  p: { owner: string; sagaIds: readonly string[]; leaseMs: number },
): Statement<{ id: string }> {
  return {
    text: `
      UPDATE ${t.sagaInstance}
      SET lease_until = clock_timestamp() + ${msInterval('$3')}
      WHERE owner = $1 AND id = ANY($2::uuid[]) AND status IN ${statuses(DRIVEN_SAGA_STATUSES)}
      RETURNING id`,
    values: [p.owner, [...p.sagaIds], p.leaseMs],
  };
}

/**
 * Recovery claim in one statement. The CTE picks live, unleased (or lease-expired) sagas of the
 * versions this process can run — `(name, version)` pairs arrive as two parallel arrays — oldest
 * first, and locks them FOR UPDATE SKIP LOCKED so concurrent claimers take disjoint sets without
 * waiting on each other. A row another claimer updated meanwhile is re-checked by PostgreSQL
 * against the WHERE clause (its new lease is in the future), so it is never claimed twice.
 */
export function claimOrphans(
  t: SagaSchema,
  p: {
    owner: string;
    names: readonly string[];
    versions: readonly string[];
    limit: number;
    leaseMs: number;
  },
): Statement<{ id: string }> {
  return {
    text: `
      WITH orphan AS (
        SELECT i.id
        FROM ${t.sagaInstance} i
        WHERE i.status IN ${statuses(LIVE_SAGA_STATUSES)}
          -- Unowned, lease expired, or parked and due. The claim index's expression, verbatim.
          AND coalesce(i.wake_at, i.lease_until, '-infinity'::timestamptz) < clock_timestamp()
          AND (i.name, i.version) IN (SELECT v.name, v.version FROM unnest($2::text[], $3::text[]) AS v (name, version))
        ORDER BY i.created_at, i.id
        LIMIT $4
        FOR UPDATE OF i SKIP LOCKED
      )
      UPDATE ${t.sagaInstance} i
      SET owner = $1, lease_until = clock_timestamp() + ${msInterval('$5')}, updated_at = clock_timestamp(),
          status = CASE WHEN i.status IN ${sagaFrom('wake')} THEN ${sagaTo('wake')} ELSE i.status END,
          wake_at = NULL
      FROM orphan
      WHERE i.id = orphan.id
      RETURNING i.id`,
    values: [p.owner, [...p.names], [...p.versions], p.limit, p.leaseMs],
  };
}

/** Graceful hand-over: clears owner and lease together so any worker may claim the saga at once. */
export function releaseSagas(
  t: SagaSchema,
  p: { owner: string; sagaIds: readonly string[] },
): Statement<{ id: string }> {
  return {
    text: `
      UPDATE ${t.sagaInstance}
      SET owner = NULL, lease_until = NULL, updated_at = clock_timestamp()
      WHERE owner = $1 AND id = ANY($2::uuid[])
      RETURNING id`,
    values: [p.owner, [...p.sagaIds]],
  };
}

// ---------------------------------------------------------------------------------------------
// remote steps: park / apply a reply
// ---------------------------------------------------------------------------------------------

/**
 * Parks a saga whose remaining work awaits replies, in one statement: gives up ownership and sets
 * `wake_at` to the earliest reply deadline of its awaiting steps (forward: also the saga deadline;
 * none: never). Guarded by the fence (owner, live lease) and by `wake_seq`: a reply applied since
 * the runner loaded the saga bumped it, and the runner must see that reply rather than park over
 * it. The reply's transaction takes this row's lock too (applyReplyWake), so the two serialise and
 * the loser re-checks its condition against the winner's row. Returns one row, saying which guard
 * failed, or none when the saga does not exist.
 */
export function parkSaga(
  t: SagaSchema,
  p: { sagaId: string; owner: string; seenWakeSeq: number },
): Statement<{ fenced: boolean; parked: boolean }> {
  // A saga that parks going forward (running → waiting) waits on its forward replies and its own
  // deadline; a compensating one on its compensation replies only.
  const forward = sagaFrom('park');
  return {
    text: `
      WITH saga AS (
        SELECT id, status, deadline_at,
               owner = $2 AND lease_until > clock_timestamp()
                 AND status IN ${statuses(DRIVEN_SAGA_STATUSES)} AS fenced
        FROM ${t.sagaInstance}
        WHERE id = $1
        FOR UPDATE
      ), parked AS (
        UPDATE ${t.sagaInstance} i
        SET status = CASE WHEN i.status IN ${sagaFrom('park')} THEN ${sagaTo('park')} ELSE i.status END,
            owner = NULL, lease_until = NULL, updated_at = clock_timestamp(),
            wake_at = coalesce(
              (SELECT least(min(st.reply_deadline),
                            CASE WHEN saga.status IN ${forward} THEN saga.deadline_at END)
               FROM ${t.sagaStep} st
               WHERE st.saga_id = i.id
                 AND st.status = CASE WHEN saga.status IN ${forward}
                                      THEN '${awaitingReplyStatus('forward')}'
                                      ELSE '${awaitingReplyStatus('compensate')}' END),
              -- No deadline: never on its own (a far date, not 'infinity', which pg reads back as a number).
              '9999-12-31T00:00:00Z'::timestamptz)
        FROM saga
        WHERE i.id = saga.id AND saga.fenced AND i.wake_seq = $3
        RETURNING i.id
      )
      SELECT saga.fenced, EXISTS (SELECT 1 FROM parked) AS parked FROM saga`,
    values: [p.sagaId, p.owner, p.seenWakeSeq],
  };
}

/**
 * A participant's reply, in the inbox transaction that deduplicates it: moves the step out of its
 * awaiting state only if it is still in it (`waiting` for a forward reply, `compensating` for a
 * compensation reply), so a late reply (after a timeout) or a duplicate changes nothing. The step
 * row lock orders it against a runner resending the command (which locks the step first too).
 */
export function applyStepReply(
  t: SagaSchema,
  p: {
    sagaId: string;
    step: string;
    phase: 'forward' | 'compensate';
    /** The attempt the reply answers; null: any. A reply to an attempt never sent matches no row. */
    attempt: number | null;
    ok: boolean;
    result: unknown;
    error: string | null;
  },
): Statement<{ attempt: number; started_at: Date | null }> {
  // Both replies of a phase leave the same awaiting status (step-transitions.spec holds the table
  // to it); which one applies is $3.
  const reply = STEP_PHASE_TRANSITIONS[p.phase];
  const status = `CASE WHEN $3::boolean THEN ${stepTo(reply.replySucceeded)} ELSE ${stepTo(reply.replyRejected)} END`;
  const awaiting = `s.status IN ${stepFrom(reply.replySucceeded)}`;
  if (p.phase === 'compensate') {
    return {
      text: `
      UPDATE ${t.sagaStep} s
      SET status = ${status},
          error = CASE WHEN $3::boolean THEN s.error ELSE $4::text END,
          compensated_at = CASE WHEN $3::boolean THEN clock_timestamp() ELSE s.compensated_at END,
          reply_deadline = NULL
      WHERE s.saga_id = $1 AND s.name = $2 AND ${awaiting}
        AND ($5::int IS NULL OR $5::int <= s.compensation_attempts)
      RETURNING s.compensation_attempts AS attempt, s.started_at`,
      values: [p.sagaId, p.step, p.ok, p.error, p.attempt],
    };
  }
  return {
    text: `
      UPDATE ${t.sagaStep} s
      SET status = ${status},
          result = CASE WHEN $3::boolean THEN $4::jsonb ELSE s.result END,
          error = CASE WHEN $3::boolean THEN NULL ELSE $5::text END,
          completed_at = CASE WHEN $3::boolean THEN clock_timestamp() ELSE s.completed_at END,
          reply_deadline = NULL
      WHERE s.saga_id = $1 AND s.name = $2 AND ${awaiting}
        AND ($6::int IS NULL OR $6::int <= s.attempts)
      RETURNING s.attempts AS attempt, s.started_at`,
    values: [
      p.sagaId,
      p.step,
      p.ok,
      p.ok ? JSON.stringify(p.result ?? null) : null,
      p.error,
      p.attempt,
    ],
  };
}

/**
 * The step a reply names, with its saga's name, for a reply that applied to nothing (same
 * transaction as the inbox row: telling a late reply from one that answers no command sent).
 * A plain read: attempts only grow, so what it says about an attempt sent stays true.
 */
export function selectReplyTarget(
  t: SagaSchema,
  p: { sagaId: string; step: string },
): Statement<{ saga: string; status: string; attempts: number; compensation_attempts: number }> {
  return {
    text: `
      SELECT i.name AS saga, s.status, s.attempts, s.compensation_attempts
      FROM ${t.sagaStep} s JOIN ${t.sagaInstance} i ON i.id = s.saga_id
      WHERE s.saga_id = $1 AND s.name = $2`,
    values: [p.sagaId, p.step],
  };
}

/**
 * A saga's name and stored input (encrypted fields still sealed), in the caller's transaction (a
 * step's or a reply's: data protection reads the data subject of a step result there). A plain
 * read by primary key: the input never changes after the insert.
 */
export function selectSagaInput(
  t: SagaSchema,
  p: { sagaId: string },
): Statement<{ name: string; input: unknown }> {
  return {
    text: `SELECT name, input FROM ${t.sagaInstance} WHERE id = $1`,
    values: [p.sagaId],
  };
}

/**
 * After a success reply to a forward step was applied (same transaction): completes the saga when
 * that was its last open step, else wakes it as wakeSaga does. Completes only a parked saga
 * (`waiting`, no owner: SAGA_TRANSITIONS.completeByReply) whose every step is now `completed`,
 * before its deadline (past it the woken runner compensates for the timeout, as before). The
 * status and owner are read from the row being updated, so a recovery claim that took the saga
 * meanwhile (the row lock orders us after it; READ COMMITTED re-reads the row) makes this a wake,
 * and the claimer completes it. The step check reads the statement's snapshot: a step completed by
 * a concurrent reply not yet committed looks open, so two last replies at once both wake (the
 * runner completes the saga), never both complete.
 */
export function completeOrWakeSaga(
  t: SagaSchema,
  p: { sagaId: string },
): Statement<{ name: string; completed: boolean; duration_ms: number }> {
  const { from, to } = SAGA_TRANSITIONS.completeByReply;
  const done = `(i.status IN ${statuses(from)} AND i.owner IS NULL
          AND (i.deadline_at IS NULL OR i.deadline_at > clock_timestamp())
          AND NOT EXISTS (SELECT 1 FROM ${t.sagaStep} s
                          WHERE s.saga_id = i.id AND s.status <> ${stepTo('complete')}))`;
  return {
    text: `
      UPDATE ${t.sagaInstance} i
      SET status = CASE WHEN ${done} THEN '${to}' ELSE i.status END,
          wake_at = CASE WHEN ${done} THEN NULL
                         WHEN i.owner IS NULL THEN clock_timestamp() ELSE i.wake_at END,
          updated_at = CASE WHEN ${done} THEN clock_timestamp() ELSE i.updated_at END,
          lease_until = CASE WHEN ${done} THEN NULL ELSE i.lease_until END,
          wake_seq = i.wake_seq + 1
      WHERE i.id = $1 AND i.status IN ${statuses(LIVE_SAGA_STATUSES)}
      RETURNING i.name, i.status = '${to}' AS completed,
                (extract(epoch FROM clock_timestamp() - i.created_at) * 1000)::float8 AS duration_ms`,
    values: [p.sagaId],
  };
}

/**
 * After a reply was applied (same transaction): wakes the saga. `wake_seq` tells a runner still
 * driving it not to park over the reply (parkSaga); `wake_at` = now makes a parked saga claimable at
 * once. Non-terminal sagas only.
 */
export function wakeSaga(t: SagaSchema, p: { sagaId: string }): Statement<{ name: string }> {
  return {
    text: `
      UPDATE ${t.sagaInstance}
      SET wake_seq = wake_seq + 1,
          wake_at = CASE WHEN owner IS NULL THEN clock_timestamp() ELSE wake_at END
      WHERE id = $1 AND status IN ${statuses(LIVE_SAGA_STATUSES)}
      RETURNING name`,
    values: [p.sagaId],
  };
}
