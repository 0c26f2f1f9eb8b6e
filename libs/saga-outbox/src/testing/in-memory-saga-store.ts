import { LeaseLostError, SagaStoreUnavailableError } from '../core/errors';
import type { JsonValue } from '../core/json';
import { systemClock, type Clock } from '../core/ports/clock';
import {
  pendingStepRecord,
  type StepFailure,
  TERMINAL_SAGA_STATUSES,
  type ActiveVersionCount,
  type AppliedReply,
  type ReplyTarget,
  type AwaitReply,
  type Fence,
  type NewSaga,
  type ParkOutcome,
  type SagaCreateOutcome,
  type SagaRecord,
  type SagaStatus,
  type SagaStore,
  type SagaVersionRef,
  type StepPhase,
  type StepRecord,
  type StepTxOptions,
  type StepTxOutcome,
  type WithinTransaction,
} from '../core/ports/saga-store';
import {
  DRIVEN_SAGA_STATUSES,
  LIVE_SAGA_STATUSES,
  SAGA_TRANSITIONS,
  canSagaTransition,
} from '../core/saga/saga-transitions';
import {
  STEP_PHASE_TRANSITIONS,
  STEP_TRANSITIONS,
  awaitingReplyStatus,
  canStepTransition,
  stepFailureTransition,
  stepPhaseOpen,
} from '../core/saga/step-transitions';

/**
 * The transaction handle of the in-memory store. Register effects with `onCommit`: they run only
 * if the step's transaction commits, which lets unit tests count effects exactly as with a database.
 */
export class InMemoryTx {
  private readonly effects: (() => void)[] = [];
  onCommit(effect: () => void): void {
    this.effects.push(effect);
  }
  /** @internal */
  commit(): void {
    for (const e of this.effects) e();
  }
}

/** Where an injected store fault strikes in a step transaction (see `injectStepFault`). */
export type StepFaultStage = 'before-body' | 'before-commit' | 'after-commit';

/**
 * A SagaStore in memory, with the PostgreSQL store's semantics (fencing, leases, step locks). Its
 * status changes follow STEP_TRANSITIONS and SAGA_TRANSITIONS, like the SQL's.
 */
export class InMemorySagaStore implements SagaStore<InMemoryTx> {
  private readonly sagas = new Map<string, SagaRecord>();
  /** Input fingerprints by saga id, as the saga table's `input_fingerprint` column holds them. */
  private readonly fingerprints = new Map<string, string | null>();
  private readonly locks = new Map<string, Promise<void>>();
  private readonly stepFaults: {
    step: string;
    stage: StepFaultStage;
    phase?: StepPhase;
    cause: unknown;
  }[] = [];

  constructor(private readonly clock: Clock = systemClock) {}

  create(
    saga: NewSaga,
    tx?: InMemoryTx,
    within?: WithinTransaction<InMemoryTx>,
  ): Promise<SagaCreateOutcome> {
    const existing = this.byIdempotencyKey(saga);
    if (existing) return Promise.resolve(existing);
    const now = new Date(this.clock.now());
    const record: SagaRecord = {
      id: saga.id,
      name: saga.name,
      version: saga.version,
      status: 'running',
      input: clone(saga.input),
      idempotencyKey: saga.idempotencyKey,
      owner: saga.owner,
      leaseUntil: saga.owner ? new Date(this.clock.now() + saga.leaseMs) : null,
      deadlineAt: saga.timeoutMs !== null ? new Date(this.clock.now() + saga.timeoutMs) : null,
      error: null,
      failedStep: null,
      wakeAt: null,
      wakeSeq: 0,
      createdAt: now,
      updatedAt: now,
      steps: saga.stepNames.map(pendingStepRecord),
    };
    const fingerprint = saga.inputFingerprint ?? null;
    if (within) return this.createWithin(record, fingerprint, tx, within);
    if (tx) tx.onCommit(() => this.insert(record, fingerprint));
    else this.insert(record, fingerprint);
    return Promise.resolve({ id: record.id, created: true });
  }

  private insert(record: SagaRecord, fingerprint: string | null): void {
    this.sagas.set(record.id, record);
    this.fingerprints.set(record.id, fingerprint);
  }

  /** create() with a hook: the saga and the hook's effects commit together, or neither does. */
  private async createWithin(
    record: SagaRecord,
    fingerprint: string | null,
    tx: InMemoryTx | undefined,
    within: WithinTransaction<InMemoryTx>,
  ): Promise<SagaCreateOutcome> {
    if (tx) {
      tx.onCommit(() => this.insert(record, fingerprint));
      await within(tx);
      return { id: record.id, created: true };
    }
    const own = new InMemoryTx();
    await within(own);
    // Another create may have taken the key while the hook ran: then ours rolls back.
    const existing = this.byIdempotencyKey(record);
    if (existing) return existing;
    this.insert(record, fingerprint);
    own.commit();
    return { id: record.id, created: true };
  }

  /** The saga already holding the key of `saga` (same name), as create reports it. */
  private byIdempotencyKey(saga: {
    name: string;
    idempotencyKey: string | null;
  }): SagaCreateOutcome | undefined {
    if (saga.idempotencyKey === null) return undefined;
    for (const s of this.sagas.values()) {
      if (s.name === saga.name && s.idempotencyKey === saga.idempotencyKey)
        return {
          id: s.id,
          created: false,
          inputFingerprint: this.fingerprints.get(s.id) ?? null,
        };
    }
    return undefined;
  }

  load(id: string): Promise<SagaRecord | undefined> {
    const s = this.sagas.get(id);
    return Promise.resolve(s ? clone(s) : undefined);
  }

  loadByIdempotencyKey(name: string, idempotencyKey: string): Promise<SagaRecord | undefined> {
    const held = this.byIdempotencyKey({ name, idempotencyKey });
    return held ? this.load(held.id) : Promise.resolve(undefined);
  }

  async runStepTransaction<T>(
    fence: Fence,
    stepName: string,
    phase: StepPhase,
    attempt: number,
    body: (tx: InMemoryTx) => Promise<{ result: JsonValue; value: T; awaitReply?: AwaitReply }>,
    options: StepTxOptions<InMemoryTx> = {},
  ): Promise<StepTxOutcome<T>> {
    const fault = this.takeFault(stepName, phase);
    const failAt = (stage: StepFaultStage, operation: string): void => {
      if (fault?.stage === stage)
        throw new SagaStoreUnavailableError(fence.sagaId, stepName, phase, operation, fault.cause);
    };
    failAt('before-body', 'BEGIN');
    const { complete } = options;
    return this.withLock(`${fence.sagaId}/${stepName}`, async () => {
      const step = this.step(fence.sagaId, stepName);
      if (!stepPhaseOpen(phase, step.status)) return { kind: 'already-done' };
      const tx = new InMemoryTx();
      const { result, value, awaitReply } = await body(tx);
      failAt('before-commit', 'recording the step');
      this.checkFence(fence);
      const saga = this.sagas.get(fence.sagaId)!;
      const sagaCompleted =
        complete !== undefined &&
        !awaitReply &&
        phase === 'forward' &&
        canSagaTransition('complete', saga.status);
      // Before anything is changed: nothing here rolls back if it throws.
      if (sagaCompleted) await complete.within?.(tx);
      this.recordPhase(step, phase, attempt, result, awaitReply);
      if (sagaCompleted) this.applyTransition(saga, SAGA_TRANSITIONS.complete.to, undefined);
      tx.commit();
      // Committed, but the caller is told the store failed: COMMIT's outcome is unknown to it.
      failAt('after-commit', 'COMMIT');
      return sagaCompleted ? { kind: 'done', value, sagaCompleted } : { kind: 'done', value };
    });
  }

  /** The phase's transaction commits: done, or (a remote phase) awaiting its reply. */
  private recordPhase(
    step: StepRecord,
    phase: StepPhase,
    attempt: number,
    result: JsonValue,
    awaitReply: AwaitReply | undefined,
  ): void {
    const transitions = STEP_PHASE_TRANSITIONS[phase];
    const now = new Date(this.clock.now());
    step.status = STEP_TRANSITIONS[awaitReply ? transitions.awaitReply : transitions.done].to;
    if (phase === 'forward') {
      step.attempts = attempt;
      step.startedAt ??= now;
    } else step.compensationAttempts = attempt;
    if (awaitReply) {
      step.replyDeadline =
        awaitReply.timeoutMs === null ? null : new Date(this.clock.now() + awaitReply.timeoutMs);
    } else if (phase === 'forward') {
      step.result = clone(result);
      step.completedAt = now;
    } else step.compensatedAt = now;
  }

  async recordStepFailure(fence: Fence, failure: StepFailure): Promise<void> {
    this.checkFence(fence);
    const step = this.step(fence.sagaId, failure.step);
    // A step that already moved past this phase (a reply landed) is left as it is.
    if (!stepPhaseOpen(failure.phase, step.status)) return;
    step.error = failure.error;
    step.startedAt ??= new Date(this.clock.now());
    if (failure.phase === 'forward') step.attempts = failure.attempt;
    else step.compensationAttempts = failure.attempt;
    const ends = stepFailureTransition(failure);
    if (ends && canStepTransition(ends, step.status)) {
      step.status = STEP_TRANSITIONS[ends].to;
      step.replyDeadline = null;
    }
    await Promise.resolve();
  }

  park(fence: Fence, seenWakeSeq: number): Promise<ParkOutcome> {
    const s = this.sagas.get(fence.sagaId);
    if (!s || !this.holds(s, fence.owner) || !DRIVEN_SAGA_STATUSES.includes(s.status))
      return Promise.resolve('lost');
    if (s.wakeSeq !== seenWakeSeq) return Promise.resolve('woken');
    // Parking going forward (running → waiting): forward replies and the saga's deadline; a
    // compensating saga keeps its status and waits on its compensation replies.
    const forward = canSagaTransition('park', s.status);
    const awaiting = awaitingReplyStatus(forward ? 'forward' : 'compensate');
    const deadlines = s.steps
      .filter((x) => x.status === awaiting)
      .map((x) => x.replyDeadline?.getTime() ?? Infinity);
    if (forward && s.deadlineAt) deadlines.push(s.deadlineAt.getTime());
    const wake = Math.min(...deadlines);
    if (forward) s.status = SAGA_TRANSITIONS.park.to;
    s.owner = null;
    s.leaseUntil = null;
    s.wakeAt = Number.isFinite(wake) ? new Date(wake) : new Date(Date.UTC(9999, 11, 31));
    s.updatedAt = new Date(this.clock.now());
    return Promise.resolve('parked');
  }

  applyReply(
    tx: InMemoryTx,
    reply: {
      sagaId: string;
      step: string;
      phase: StepPhase;
      attempt?: number;
      outcome: { ok: true; result: JsonValue } | { ok: false; error: string };
    },
  ): Promise<AppliedReply | undefined> {
    const s = this.sagas.get(reply.sagaId);
    const step = s?.steps.find((x) => x.name === reply.step);
    const transitions = STEP_PHASE_TRANSITIONS[reply.phase];
    const applies = reply.outcome.ok ? transitions.replySucceeded : transitions.replyRejected;
    if (!s || !step || !canStepTransition(applies, step.status)) return Promise.resolve(undefined);
    const sent = reply.phase === 'forward' ? step.attempts : step.compensationAttempts;
    if (
      reply.attempt !== undefined &&
      !(Number.isSafeInteger(reply.attempt) && reply.attempt > 0 && reply.attempt <= sent)
    )
      return Promise.resolve(undefined);
    tx.onCommit(() => {
      if (!canStepTransition(applies, step.status)) return;
      const now = new Date(this.clock.now());
      step.status = STEP_TRANSITIONS[applies].to;
      if (!reply.outcome.ok) step.error = reply.outcome.error;
      else if (reply.phase === 'forward') {
        step.result = clone(reply.outcome.result);
        step.completedAt = now;
      } else step.compensatedAt = now;
      step.replyDeadline = null;
      // Parked: claimable at once. Owned: the owner sees wakeSeq move and does not park.
      if (s.owner === null) s.wakeAt = now;
      s.wakeSeq++;
    });
    return Promise.resolve({
      saga: s.name,
      attempt: reply.phase === 'forward' ? step.attempts : step.compensationAttempts,
      startedAt: step.startedAt,
    });
  }

  replyTarget(_tx: InMemoryTx, sagaId: string, step: string): Promise<ReplyTarget | undefined> {
    const s = this.sagas.get(sagaId);
    const row = s?.steps.find((x) => x.name === step);
    return Promise.resolve(
      s && row
        ? {
            saga: s.name,
            status: row.status,
            attempts: row.attempts,
            compensationAttempts: row.compensationAttempts,
          }
        : undefined,
    );
  }

  inputOf(
    _tx: InMemoryTx,
    sagaId: string,
  ): Promise<{ name: string; input: JsonValue } | undefined> {
    const s = this.sagas.get(sagaId);
    return Promise.resolve(s ? { name: s.name, input: clone(s.input) } : undefined);
  }

  transition(
    fence: Fence,
    from: readonly SagaStatus[],
    to: SagaStatus,
    detail?: { error?: string; failedStep?: string },
    within?: WithinTransaction<InMemoryTx>,
  ): Promise<boolean> {
    const s = this.sagas.get(fence.sagaId);
    if (!s || !from.includes(s.status) || !this.holds(s, fence.owner))
      return Promise.resolve(false);
    if (within) return this.transitionWithin(fence, from, to, detail, within);
    this.applyTransition(s, to, detail);
    return Promise.resolve(true);
  }

  /** transition() with a hook: the change and the hook's effects commit together, or neither does. */
  private async transitionWithin(
    fence: Fence,
    from: readonly SagaStatus[],
    to: SagaStatus,
    detail: { error?: string; failedStep?: string } | undefined,
    within: WithinTransaction<InMemoryTx>,
  ): Promise<boolean> {
    const tx = new InMemoryTx();
    await within(tx);
    // Checked again: the saga may have moved while the hook ran (the database holds a row lock).
    const s = this.sagas.get(fence.sagaId);
    if (!s || !from.includes(s.status) || !this.holds(s, fence.owner)) return false;
    this.applyTransition(s, to, detail);
    tx.commit();
    return true;
  }

  private applyTransition(
    s: SagaRecord,
    to: SagaStatus,
    detail: { error?: string; failedStep?: string } | undefined,
  ): void {
    s.status = to;
    if (detail?.error !== undefined) s.error = detail.error;
    if (detail?.failedStep !== undefined) s.failedStep = detail.failedStep;
    s.updatedAt = new Date(this.clock.now());
    if (TERMINAL_SAGA_STATUSES.includes(to)) {
      s.owner = null;
      s.leaseUntil = null;
    }
  }

  renewLeases(owner: string, sagaIds: readonly string[], leaseMs: number): Promise<string[]> {
    const held: string[] = [];
    for (const id of sagaIds) {
      const s = this.sagas.get(id);
      if (s && s.owner === owner && DRIVEN_SAGA_STATUSES.includes(s.status)) {
        s.leaseUntil = new Date(this.clock.now() + leaseMs);
        held.push(id);
      }
    }
    return Promise.resolve(held);
  }

  claimOrphans(
    owner: string,
    versions: readonly SagaVersionRef[],
    limit: number,
    leaseMs: number,
  ): Promise<string[]> {
    const now = this.clock.now();
    const claimed: string[] = [];
    const candidates = [...this.sagas.values()].sort(
      (a, b) => a.createdAt.getTime() - b.createdAt.getTime(),
    );
    for (const s of candidates) {
      if (claimed.length >= limit) break;
      if (!LIVE_SAGA_STATUSES.includes(s.status)) continue;
      if (!versions.some((v) => v.name === s.name && v.version === s.version)) continue;
      if (s.leaseUntil && s.leaseUntil.getTime() >= now) continue;
      if (s.wakeAt && s.wakeAt.getTime() > now) continue;
      if (canSagaTransition('wake', s.status)) s.status = SAGA_TRANSITIONS.wake.to;
      s.wakeAt = null;
      s.owner = owner;
      s.leaseUntil = new Date(now + leaseMs);
      claimed.push(s.id);
    }
    return Promise.resolve(claimed);
  }

  release(owner: string, sagaIds: readonly string[]): Promise<void> {
    for (const id of sagaIds) {
      const s = this.sagas.get(id);
      if (s && s.owner === owner) {
        s.owner = null;
        s.leaseUntil = null;
      }
    }
    return Promise.resolve();
  }

  activeVersions(): Promise<ActiveVersionCount[]> {
    const counts = new Map<string, ActiveVersionCount>();
    for (const s of this.sagas.values()) {
      if (!LIVE_SAGA_STATUSES.includes(s.status)) continue;
      const k = `${s.name}\u0000${s.version}`;
      const c = counts.get(k) ?? { name: s.name, version: s.version, count: 0 };
      c.count++;
      counts.set(k, c);
    }
    return Promise.resolve([...counts.values()]);
  }

  /**
   * Test hook: the next `runStepTransaction` of a step named `step` (in any saga; of `phase` only,
   * when given) fails in the store's own bookkeeping with SagaStoreUnavailableError, as a lost
   * connection or a restarting database would: at `before-body` (BEGIN: the body does not run),
   * `before-commit` (the body ran; nothing commits) or `after-commit` (everything committed, but the
   * caller hears of a failure). Faults queue up, one per transaction.
   */
  injectStepFault(fault: {
    step: string;
    stage: StepFaultStage;
    phase?: StepPhase;
    cause?: unknown;
  }): void {
    this.stepFaults.push({
      ...fault,
      cause: fault.cause ?? new Error('connection reset (injected fault)'),
    });
  }

  private takeFault(
    step: string,
    phase: StepPhase,
  ): { stage: StepFaultStage; cause: unknown } | undefined {
    const i = this.stepFaults.findIndex(
      (f) => f.step === step && (f.phase === undefined || f.phase === phase),
    );
    return i < 0 ? undefined : this.stepFaults.splice(i, 1)[0];
  }

  /** Test hook: expire a saga's lease now, as if its owner had crashed. */
  expireLease(sagaId: string): void {
    const s = this.sagas.get(sagaId);
    if (s) s.leaseUntil = new Date(0);
  }

  private holds(s: SagaRecord, owner: string): boolean {
    return s.owner === owner && s.leaseUntil !== null && s.leaseUntil.getTime() > this.clock.now();
  }

  private checkFence(fence: Fence): void {
    const s = this.sagas.get(fence.sagaId);
    if (!s || !this.holds(s, fence.owner)) throw new LeaseLostError(fence.sagaId, fence.owner);
  }

  private step(sagaId: string, name: string): StepRecord {
    const step = this.sagas.get(sagaId)?.steps.find((s) => s.name === name);
    if (!step) throw new Error(`in-memory store: no step "${name}" in saga ${sagaId}`);
    return step;
  }

  private async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((r) => (release = r));
    const chained = previous.then(() => current);
    this.locks.set(key, chained);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.locks.get(key) === chained) this.locks.delete(key);
    }
  }
}

function clone<T>(v: T): T {
  return structuredClone(v);
}
