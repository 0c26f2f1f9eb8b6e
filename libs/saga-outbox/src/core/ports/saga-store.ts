import type { JsonValue } from '../json';

/**
 * Instance lifecycle. `completed`, `compensated` and `failed` are terminal. `waiting`: parked with
 * no owner until a remote step's reply (or its timeout) wakes it; a compensating saga waiting for a
 * remote compensation's reply stays `compensating` (its step says `compensating`). The transitions
 * are defined once, in SAGA_TRANSITIONS (core/saga/saga-transitions.ts).
 */
export type SagaStatus =
  'running' | 'waiting' | 'compensating' | 'completed' | 'compensated' | 'failed';
export const TERMINAL_SAGA_STATUSES: readonly SagaStatus[] = ['completed', 'compensated', 'failed'];

/**
 * Step lifecycle. Forward: `pending → completed` (or `failed` once retries are exhausted). A remote
 * step goes `pending → waiting` (command sent) `→ completed | failed` (the reply) or `timed_out`
 * (no reply within its attempts: outcome unknown, so it is compensated like a completed step).
 * Backward: `completed | timed_out → compensated` (or `compensation_failed`); a remote compensation
 * passes through `compensating` (command sent, awaiting the reply). The transitions are defined once,
 * in STEP_TRANSITIONS (core/saga/step-transitions.ts).
 */
export type StepStatus =
  | 'pending'
  | 'waiting'
  | 'completed'
  | 'failed'
  | 'timed_out'
  | 'compensating'
  | 'compensated'
  | 'compensation_failed';

export type StepPhase = 'forward' | 'compensate';

export interface StepRecord {
  name: string;
  status: StepStatus;
  attempts: number;
  compensationAttempts: number;
  result: JsonValue | null;
  error: string | null;
  startedAt: Date | null;
  completedAt: Date | null;
  compensatedAt: Date | null;
  /** While `waiting` / `compensating`: when the current attempt's reply is due (database clock). */
  replyDeadline: Date | null;
}

/** A step as `create` stores it: pending, never attempted. */
export function pendingStepRecord(name: string): StepRecord {
  return {
    name,
    status: 'pending',
    attempts: 0,
    compensationAttempts: 0,
    result: null,
    error: null,
    startedAt: null,
    completedAt: null,
    compensatedAt: null,
    replyDeadline: null,
  };
}

export interface SagaRecord {
  id: string;
  name: string;
  version: string;
  status: SagaStatus;
  input: JsonValue;
  idempotencyKey: string | null;
  owner: string | null;
  leaseUntil: Date | null;
  deadlineAt: Date | null;
  error: string | null;
  failedStep: string | null;
  /** Parked (`waiting`, or compensating on a reply): when recovery may claim it again on its own. */
  wakeAt: Date | null;
  /** Bumped by every applied reply; parking is refused when it moved (see `park`). */
  wakeSeq: number;
  createdAt: Date;
  updatedAt: Date;
  steps: StepRecord[];
}

export interface NewSaga {
  id: string;
  name: string;
  version: string;
  input: JsonValue;
  idempotencyKey: string | null;
  /**
   * Stored with the idempotency key (sagaInputFingerprint of the name and input), so a later start
   * with the same key can tell the same request from a different one. Absent or null: none.
   */
  inputFingerprint?: string | null;
  stepNames: readonly string[];
  /** Owner that runs it right away, or null to leave it for the recovery loop. */
  owner: string | null;
  leaseMs: number;
  /** Saga-level timeout, counted from creation on the database clock. */
  timeoutMs: number | null;
}

/** Who may write to a saga: the owner named in its row, while its lease holds. */
export interface Fence {
  sagaId: string;
  owner: string;
}

/** A saga definition identity, used to claim only instances this process can run. */
export interface SagaVersionRef {
  name: string;
  version: string;
}

export interface ActiveVersionCount extends SagaVersionRef {
  count: number;
}

/**
 * `already-done`: the phase had already ended (by an earlier attempt, another owner, or a reply);
 * nothing ran. The caller reads how it ended from the stored step.
 */
export type StepTxOutcome<T> =
  /** `sagaCompleted`: the transaction also ended the saga as `completed` (see StepTxOptions.complete). */
  { kind: 'done'; value: T; sagaCompleted?: boolean } | { kind: 'already-done' };

/** What else a step transaction does, so a saga does not commit once more at its end. */
export interface StepTxOptions<Tx> {
  /**
   * This forward phase is the saga's last open step: after recording it done (not when it awaits a
   * reply), end the saga `running → completed` in the same transaction, as `transition` would,
   * fenced, running `within` after the change. `sagaCompleted` in the outcome says whether it did.
   */
  readonly complete?: { readonly within?: WithinTransaction<Tx> };
}

/** The first step's attempt that `createWithFirstStep` runs in the creating transaction. */
export interface FirstStepInStart<T, Tx> {
  readonly step: string;
  /** The attempt's body (its result is recorded as the step's, like runStepTransaction's). */
  readonly body: (tx: Tx) => Promise<{ result: JsonValue; value: T }>;
  /** The saga's only step: complete the saga in the same transaction (StepTxOptions.complete). */
  readonly complete?: StepTxOptions<Tx>['complete'];
}

/** What `createWithFirstStep` did. */
export type FirstStepStartOutcome<T> =
  /** Stored, with the first step completed by attempt 1 (and, with `complete`, the saga too). */
  | { kind: 'done'; id: string; value: T; sagaCompleted: boolean }
  /** The key already names a saga: nothing written, nothing run (see SagaCreateOutcome). */
  | { kind: 'exists'; id: string; inputFingerprint: string | null }
  /**
   * The attempt failed (its body threw, or the database refused its writes at COMMIT): the whole
   * transaction rolled back, so nothing was stored. The caller stores the saga the normal way.
   */
  | { kind: 'step-failed'; error: unknown };

/**
 * A failed attempt of one step phase, as `recordStepFailure` records it. Made with the named
 * constructors, so a call reads as what happened:
 * `store.recordStepFailure(fence, StepFailure.retryable('charge', 'forward', 1, 'card service down'))`.
 */
export interface StepFailure {
  readonly step: string;
  readonly phase: StepPhase;
  /** The attempt (forward) or compensation attempt that failed, 1-based. */
  readonly attempt: number;
  readonly error: string;
  /** The phase ends: no attempts left, or an error retrying cannot fix. */
  readonly final: boolean;
  /** Forward only: whether the attempt took effect is unknown (its reply never came). */
  readonly outcomeUnknown: boolean;
}

export const StepFailure = {
  /** The attempt failed and another follows: the phase stays open (the status is unchanged). */
  retryable(step: string, phase: StepPhase, attempt: number, error: string): StepFailure {
    return { step, phase, attempt, error, final: false, outcomeUnknown: false };
  },
  /** The last attempt failed, or with an error retrying cannot fix: `failed` / `compensation_failed`. */
  final(step: string, phase: StepPhase, attempt: number, error: string): StepFailure {
    return { step, phase, attempt, error, final: true, outcomeUnknown: false };
  },
  /**
   * The last send of a remote phase got no reply. Forward: `timed_out`, since the participant may
   * have acted (so the step is compensated); compensation: `compensation_failed`.
   */
  unanswered(step: string, phase: StepPhase, attempt: number, error: string): StepFailure {
    return { step, phase, attempt, error, final: true, outcomeUnknown: phase === 'forward' };
  },
} as const;

/** A remote phase: instead of completing, the step is recorded as awaiting its reply. */
export interface AwaitReply {
  /** Reply timeout of this attempt; null waits for ever. */
  timeoutMs: number | null;
}

/** What applying a reply changed (for events: which attempt it answered, since when it ran). */
export interface AppliedReply {
  saga: string;
  /** The attempt (forward) or compensation attempt the step was on. */
  attempt: number;
  /** When the step first started (database clock); null if never recorded. */
  startedAt: Date | null;
  /**
   * The reply also completed the saga (SAGA_TRANSITIONS.completeByReply), in the same
   * transaction: how long the saga took since it was created (database clock).
   */
  sagaCompleted?: { durationMs: number };
}

/** What `replyTarget` reads of the step a reply names. */
export interface ReplyTarget {
  /** The saga's name (its definition says whether the step is remote). */
  saga: string;
  status: StepStatus;
  /** Forward attempts sent so far. */
  attempts: number;
  /** Compensation attempts sent so far. */
  compensationAttempts: number;
}

/** How `park` went. */
export type ParkOutcome =
  /** Parked: no owner until a reply or `wakeAt`. */
  | 'parked'
  /** A reply arrived since the runner loaded the saga (wakeSeq moved): keep driving it. */
  | 'woken'
  /** The fence did not hold (lease lost). */
  | 'lost';

/**
 * What `create` did: inserted the saga, or found the one already holding the idempotency key (and
 * wrote nothing), with the input fingerprint stored with it: null when it has none (started
 * without one, e.g. before fingerprints were stored), which callers take as matching.
 */
export type SagaCreateOutcome =
  { id: string; created: true } | { id: string; created: false; inputFingerprint: string | null };

/**
 * Work that must commit with a state change (e.g. the outbox row announcing it): run by the store
 * inside the transaction that makes the change, after the change. If it throws, the change rolls
 * back and the error propagates.
 */
export type WithinTransaction<Tx> = (tx: Tx) => Promise<void>;

/**
 * Durable saga state. Implementations: PostgreSQL (persistence/postgres) and in-memory (testing).
 * `Tx` is the transaction handle a local step receives (a TypeORM EntityManager for PostgreSQL).
 */
export interface SagaStore<Tx = unknown> {
  /**
   * Inserts the instance (with its `inputFingerprint`) and one `pending` row per step. With an
   * idempotency key already used for this saga name, inserts nothing and returns the existing id
   * with `created: false` and the fingerprint stored with it; comparing it is the caller's part.
   * With `tx`, the insert joins the caller's transaction.
   * `within` runs in the same transaction after the insert, only when the saga was created (not on
   * an idempotency-key hit); if it throws, nothing is created (with `tx`: the error reaches the
   * caller, whose transaction then rolls back).
   */
  create(saga: NewSaga, tx?: Tx, within?: WithinTransaction<Tx>): Promise<SagaCreateOutcome>;

  /**
   * Optional (SagaOptions.firstStepInStart; without it the engine starts such sagas as usual).
   * In ONE new transaction: inserts the saga as `create` does (`saga.owner` set), runs `within`,
   * then attempt 1 of `first.step` (the body, then the step recorded `completed` with its result
   * and attempts = 1, fenced like runStepTransaction), then commits. On an idempotency-key hit
   * nothing runs (`exists`). If the body throws, or COMMIT is refused for the transaction's writes,
   * everything rolls back (`step-failed`): no saga was stored. Any other failure (connecting, the
   * insert, a COMMIT that broke off) propagates: whether the saga was stored is then unknown, as
   * with a failing `create`.
   */
  createWithFirstStep?<T>(
    saga: NewSaga,
    within: WithinTransaction<Tx> | undefined,
    first: FirstStepInStart<T, Tx>,
  ): Promise<FirstStepStartOutcome<T>>;

  load(id: string): Promise<SagaRecord | undefined>;

  /**
   * The saga of saga name `name` created with `idempotencyKey` (the key is unique per name, so at
   * most one), as `load` returns it; undefined when there is none, or its creation has not committed.
   */
  loadByIdempotencyKey(name: string, idempotencyKey: string): Promise<SagaRecord | undefined>;

  /**
   * Runs `body` in a new transaction for one step phase. Inside the same transaction:
   * locks the step row, returns `already-done` (running nothing) when the phase already completed,
   * and after `body` resolves records the phase as done with `result`, checking the fence
   * (throws LeaseLostError and rolls back when another owner holds the saga).
   * If `body` throws, the transaction rolls back and the error propagates unchanged: a failed attempt.
   * When the store's own bookkeeping fails (connecting, BEGIN, the step lock, recording the phase,
   * COMMIT: a lost connection, a restarting database), it throws SagaStoreUnavailableError with the
   * cause: not a failed attempt. After a failed COMMIT the phase may have committed; running it again
   * is then `already-done`. A database refusing the transaction's writes at COMMIT (e.g. a deferred
   * constraint the body broke) is the step's failure, not the store's: that error propagates as is.
   *
   * The phase counts as already ended when the step is past it: forward — `completed`, `failed`,
   * `timed_out` or any compensation status; compensate — `compensated` or `compensation_failed`.
   * When the body returns `awaitReply` (a remote phase whose body wrote the command), the step is
   * recorded as `waiting` (forward) or `compensating` (compensate) with its reply deadline, instead
   * of done.
   */
  runStepTransaction<T>(
    fence: Fence,
    step: string,
    phase: StepPhase,
    attempt: number,
    body: (tx: Tx) => Promise<{ result: JsonValue; value: T; awaitReply?: AwaitReply }>,
    options?: StepTxOptions<Tx>,
  ): Promise<StepTxOutcome<T>>;

  /**
   * Records a failed attempt: its number and error, and, when `final`, the status that ends the
   * phase: `failed` / `compensation_failed`, or `timed_out` for a final forward failure with
   * `outcomeUnknown` (a remote step whose reply never came). Fenced: throws LeaseLostError when
   * another owner holds the saga. A step already past the phase (a reply landed first) is left as
   * it is.
   */
  recordStepFailure(fence: Fence, failure: StepFailure): Promise<void>;

  /**
   * Parks a saga whose remaining work is awaiting replies: gives up ownership, `running → waiting`
   * (a compensating saga stays `compensating`), `wakeAt` = the earliest reply deadline of its
   * awaiting steps (and, forward, the saga deadline), or never. Refused (`woken`) when `wakeSeq`
   * is no longer `seenWakeSeq`: a reply arrived that the runner has not seen.
   */
  park(fence: Fence, seenWakeSeq: number): Promise<ParkOutcome>;

  /**
   * Applies a participant's reply in the caller's transaction `tx` (the inbox transaction that
   * deduplicates it): a `waiting` step (forward reply) becomes `completed` with the result or
   * `failed`; a `compensating` step (compensation reply) becomes `compensated` or
   * `compensation_failed`; the saga is woken (`wakeAt` = now, `wakeSeq` + 1). A store may instead
   * complete the saga there (SAGA_TRANSITIONS.completeByReply, returning `sagaCompleted`) when the
   * reply is a success reply to a forward step, the saga is parked (`waiting`, no owner), every
   * step is now `completed`, and its deadline has not passed; the caller then writes what must
   * commit with the completion (lifecycle event) in `tx`. Any other state (a
   * late reply after a timeout, a duplicate) changes nothing: undefined. With `attempt`, only a
   * step whose attempts of the phase so far include it (attempt at most the step's current attempt, so
   * the command was sent) is changed: a reply to an attempt never sent changes nothing.
   */
  applyReply(
    tx: Tx,
    reply: {
      sagaId: string;
      step: string;
      phase: StepPhase;
      attempt?: number;
      outcome: { ok: true; result: JsonValue } | { ok: false; error: string };
    },
  ): Promise<AppliedReply | undefined>;

  /**
   * For a reply `applyReply` did not apply, read in the same transaction `tx` (a second
   * connection could wait on it: embedded PGlite has one session): the saga's name and the step's
   * status and attempts so far, or undefined when the saga or the step does not exist. The engine
   * tells a late reply (ignored) from one that answers no command sent (refused) with it.
   */
  replyTarget(tx: Tx, sagaId: string, step: string): Promise<ReplyTarget | undefined>;

  /**
   * Optional. The saga's name and input as stored (encrypted fields still sealed), read in `tx`
   * (a step's or a reply's transaction: embedded PGlite has one session, so never on a second
   * connection); undefined when the saga does not exist. Data protection reads the data subject of
   * a step's result there when it has not seen the saga's input yet.
   */
  inputOf?(tx: Tx, sagaId: string): Promise<{ name: string; input: JsonValue } | undefined>;

  /**
   * Conditional status change: only from one of `from`, only by the fence owner. Terminal
   * statuses also clear the owner and lease. Returns false when the row was not in `from` or the
   * fence did not hold. `within` runs in the same transaction after the change, only when the row
   * moved; if it throws, the change rolls back and the error propagates.
   */
  transition(
    fence: Fence,
    from: readonly SagaStatus[],
    to: SagaStatus,
    detail?: { error?: string; failedStep?: string },
    within?: WithinTransaction<Tx>,
  ): Promise<boolean>;

  /** Extends the leases of the given sagas; returns the ids this owner still holds. */
  renewLeases(owner: string, sagaIds: readonly string[], leaseMs: number): Promise<string[]>;

  /**
   * Claims up to `limit` non-terminal sagas whose lease has expired (or that never had an owner),
   * and parked sagas whose `wakeAt` has come, of the given versions only, skipping rows other
   * workers are claiming. A `waiting` saga claimed becomes `running`. Returns their ids.
   */
  claimOrphans(
    owner: string,
    versions: readonly SagaVersionRef[],
    limit: number,
    leaseMs: number,
  ): Promise<string[]>;

  /** Gives up ownership now (graceful shutdown) so another worker can resume at once. */
  release(owner: string, sagaIds: readonly string[]): Promise<void>;

  /** Non-terminal instances per (name, version): reports definitions changed under running sagas. */
  activeVersions(): Promise<ActiveVersionCount[]>;
}
