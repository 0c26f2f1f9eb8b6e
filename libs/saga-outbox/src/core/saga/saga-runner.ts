import { InvalidOptionsError, LeaseLostError, SagaTimeoutError, StepTimeoutError } from '../errors';
import { assertJsonSerializable, type JsonValue } from '../json';
import type { Clock } from '../ports/clock';
import type { SageLogger } from '../ports/logger';
import type { Fence, SagaRecord, SagaStore, StepPhase, StepRecord } from '../ports/saga-store';
import { assertSagaCommand, SAGA_HEADERS, type SagaCommand } from './saga-command';
import type { OutboxPublisher } from '../outbox/outbox-publisher';
import {
  stepIdempotencyKey,
  type SagaDefinition,
  type SagaMessage,
  type StepContext,
  type StepDefinition,
} from './saga-definition';
import type { SagaEvent, SagaEventBody } from './saga-events';
import { SAGA_LIFECYCLE_EVENT_TYPES, type SagaLifecycleEvents } from './saga-lifecycle-events';
import { SAGA_TRANSITIONS, canSagaTransition } from './saga-transitions';
import { stepErrorText as describe } from './step-errors';
import { StepPhaseLoop, type PhaseBody, type PhaseResult } from './step-phase-loop';
import { STEP_STATUSES_TO_COMPENSATE, awaitingReplyStatus } from './step-transitions';

export interface SagaRunnerDeps<Tx> {
  store: SagaStore<Tx>;
  /** Where ctx.emit writes (and remote steps' commands); without it ctx.emit throws. */
  outbox?: OutboxPublisher<Tx>;
  /** Where participants send replies to remote steps' commands (the `sage-reply-to` header). */
  replyTo?: string;
  /** Opt-in lifecycle events, written in the transaction of each change. */
  lifecycle?: SagaLifecycleEvents<Tx>;
  clock: Clock;
  logger: SageLogger;
  emit: (event: SagaEvent) => void;
  random?: () => number;
}

/** `waiting`: parked until a remote step's reply (or its timeout); no longer driven here. */
export type RunOutcome = 'completed' | 'compensated' | 'failed' | 'waiting' | 'interrupted';
type StopReason = 'lease-lost' | 'shutdown' | 'store-error';

/** Why the saga failed, and at which step (none: the whole saga, e.g. its timeout). */
interface Failure {
  reason: string;
  step?: string;
}

type ForwardOutcome =
  /** `recorded`: the last step's transaction completed the saga already. */
  | { kind: 'completed'; recorded?: boolean }
  | ({ kind: 'compensate' } & Failure)
  | ({ kind: 'failed' } & Failure)
  /** Nothing left to run here: every unfinished step awaits a reply. */
  | { kind: 'park'; steps: string[] }
  /** Steps were stopped for a failure that did not stand (a pivot completed meanwhile): go on. */
  | { kind: 'again' }
  | { kind: 'interrupted' };

/** The saga transitions that end it. */
type Ending = 'complete' | 'fail' | 'compensated' | 'failCompensation';

/** One forward pass over the DAG: what is done, running and awaited, and what went wrong. */
interface ForwardPass {
  /** The steps as stored when the pass began. */
  readonly stored: ReadonlyMap<string, StepRecord>;
  readonly completed: Set<string>;
  /** Remote steps whose command is out and whose reply is not due yet. */
  readonly waiting: Set<string>;
  readonly results: Record<string, JsonValue>;
  readonly inFlight: Map<string, Promise<void>>;
  /** Aborts running steps on saga timeout or a sibling's failure (per strategy), and on stop. */
  readonly controller: AbortController;
  failure?: { step: string; error: unknown };
  /** The last step's transaction completed the saga (StepPhaseSpec.complete). */
  sagaCompleted?: boolean;
  /**
   * Steps out of attempts while a pivot runs beside them: their verdict waits for the pivot (see
   * awaitPivotVerdict). Nothing new starts meanwhile, as after a failure.
   */
  readonly undecided: Set<string>;
  /** Wakes whoever waits for the pass to change (a step settled, a verdict began or ended). */
  readonly changes: PassChanges;
  timedOut: boolean;
  graceTimer?: NodeJS.Timeout;
}

/**
 * Drives one saga instance from its stored state to a terminal status: forward over the DAG
 * (independent steps concurrently), then, on failure before a pivot, compensation of completed
 * steps in reverse topological order. Every decision is checkpointed through the store, so a new
 * owner can resume from any point; completed steps are never re-run. Each step phase (attempts,
 * retries, timeouts, remote replies) runs in the StepPhaseLoop; the saga's own status changes are
 * SAGA_TRANSITIONS.
 */
export class SagaRunner<TInput, Tx> {
  /** Aborted when this process must stop driving the saga (lease lost, shutdown). */
  private readonly stopController = new AbortController();
  private stopReason: StopReason | undefined;
  private readonly fence: Fence;
  private readonly phases: StepPhaseLoop<Tx>;
  /** When `run` began: saga durations count from it. */
  private startedAt = 0;
  /** SagaOptions.firstStepInStart: attempt 1 of the first step failed in start()'s transaction. */
  private firstAttemptFailed: { step: string; error: unknown } | undefined;

  constructor(
    private readonly def: SagaDefinition<TInput, Tx>,
    private record: SagaRecord,
    owner: string,
    private readonly deps: SagaRunnerDeps<Tx>,
  ) {
    this.fence = { sagaId: record.id, owner };
    this.phases = new StepPhaseLoop<Tx>({
      store: deps.store,
      fence: this.fence,
      sagaName: def.name,
      clock: deps.clock,
      logger: deps.logger,
      random: deps.random ?? Math.random,
      emit: (event) => this.emit(event),
      stop: (reason) => this.stop(reason),
      stopped: () => this.stopReason !== undefined,
    });
  }

  get sagaId(): string {
    return this.record.id;
  }

  /** Stops driving the saga: running steps see an aborted signal; their transactions roll back. */
  stop(reason: StopReason): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.stopController.abort(new SagaInterrupted(reason));
  }

  /**
   * SagaOptions.firstStepInStart: attempt 1 of the saga's first step, for the transaction that
   * stores the saga, as the phase loop would run it (the same body, its per-attempt timeout; a
   * body that finishes after its timeout still fails). No retry here: a failure is handed back
   * to `firstAttemptEnded`.
   */
  firstStepAttempt(): {
    step: string;
    body: (tx: Tx) => Promise<{ result: JsonValue; value: JsonValue }>;
  } {
    const step = this.def.steps.get(this.def.order[0]!)!;
    const run = this.forwardBody(step, {});
    return {
      step: step.name,
      body: async (tx) => {
        const controller = new AbortController();
        const timeoutMs = step.timeoutMs;
        const timer =
          timeoutMs === null
            ? undefined
            : setTimeout(
                () => controller.abort(new StepTimeoutError(this.def.name, step.name, timeoutMs)),
                timeoutMs,
              );
        try {
          const { result } = await run(tx, controller.signal, 1);
          if (controller.signal.aborted) throw controller.signal.reason;
          return { result, value: result };
        } finally {
          clearTimeout(timer);
        }
      },
    };
  }

  /**
   * How start()'s attempt of the first step ended, once its transaction did: reported as the phase
   * loop reports an attempt. Done: the step is completed in the state `run` starts from. Failed:
   * `run` records the failure as attempt 1 and retries per the step's policy.
   */
  firstAttemptEnded(
    outcome: { ok: true; result: JsonValue; durationMs: number } | { ok: false; error: unknown },
  ): void {
    const step = this.def.order[0]!;
    this.emit({ type: 'step.started', step, attempt: 1 });
    if (!outcome.ok) {
      this.firstAttemptFailed = { step, error: outcome.error };
      return;
    }
    this.emit({ type: 'step.completed', step, attempt: 1, durationMs: outcome.durationMs });
    this.record = {
      ...this.record,
      steps: this.record.steps.map((s) =>
        s.name === step ? { ...s, status: 'completed', attempts: 1, result: outcome.result } : s,
      ),
    };
  }

  async run(): Promise<RunOutcome> {
    this.startedAt = this.deps.clock.now();
    try {
      this.record = claimed(this.record);
      if (this.record.status === 'running') {
        const ended = await this.driveForward();
        if (ended) return ended;
      }
      return await this.driveCompensation();
    } catch (error) {
      if (error instanceof LeaseLostError) this.stop('lease-lost');
      if (this.stopReason) return this.interrupted();
      this.stop('store-error');
      this.deps.logger.error('saga run failed; recovery will resume it', {
        event: 'saga.store_error',
        sagaId: this.record.id,
        error: describe(error),
      });
      return this.interrupted();
    }
  }

  /**
   * Runs the DAG forward, parking while replies are awaited, to its end: completed, failed past a
   * pivot, parked, or interrupted. Undefined when the saga moved to `compensating`.
   */
  private async driveForward(): Promise<RunOutcome | undefined> {
    let forward = await this.forward();
    while (forward.kind === 'park' || forward.kind === 'again') {
      if (forward.kind === 'park') {
        const parked = await this.park(forward.steps);
        if (parked !== 'woken') return parked;
      }
      forward = await this.forward();
    }
    if (forward.kind === 'interrupted') return this.interrupted();
    if (forward.kind === 'completed') {
      return (await this.finish('complete', undefined, forward.recorded))
        ? 'completed'
        : this.interrupted();
    }
    if (forward.kind === 'failed') {
      return (await this.finish('fail', forward)) ? 'failed' : this.interrupted();
    }
    const { from, to } = SAGA_TRANSITIONS.compensate;
    const moved = await this.deps.store.transition(this.fence, from, to, {
      error: forward.reason,
      failedStep: forward.step,
    });
    if (!moved) return this.interrupted();
    this.record = {
      ...this.record,
      status: to,
      error: forward.reason,
      failedStep: forward.step ?? null,
    };
    this.emit({ type: 'saga.compensating', reason: forward.reason });
    return undefined;
  }

  /** Compensates while the saga is `compensating`, parking while compensation replies are awaited. */
  private async driveCompensation(): Promise<RunOutcome> {
    while (this.record.status === 'compensating') {
      // Compensation works from the durable step states, not from what forward() saw in memory.
      const fresh = await this.deps.store.load(this.record.id);
      if (!fresh) return this.interrupted();
      this.record = fresh;
      const outcome = await this.compensate();
      if (outcome !== 'park') return outcome;
      const awaiting = awaitingReplyStatus('compensate');
      const parked = await this.park(
        this.record.steps.filter((s) => s.status === awaiting).map((s) => s.name),
      );
      if (parked !== 'woken') return parked;
    }
    return this.record.status as RunOutcome;
  }

  /**
   * Gives the saga up until a reply wakes it. Refused when a reply arrived since the saga was
   * loaded (`woken`): the saga is reloaded and driven on.
   */
  private async park(steps: string[]): Promise<RunOutcome | 'woken'> {
    const outcome = await this.deps.store.park(this.fence, this.record.wakeSeq);
    if (outcome === 'lost') {
      this.stop('lease-lost');
      return this.interrupted();
    }
    if (outcome === 'woken') {
      const fresh = await this.deps.store.load(this.record.id);
      if (!fresh) return this.interrupted();
      this.record = claimed(fresh);
      return 'woken';
    }
    this.emit({ type: 'saga.waiting', steps });
    return 'waiting';
  }

  // ---------------------------------------------------------------- forward

  /** One pass over the DAG: launches every step whose dependencies completed, until none is left. */
  private async forward(): Promise<ForwardOutcome> {
    const pass = this.newForwardPass();
    const onStop = (): void => pass.controller.abort(this.stopController.signal.reason);
    this.stopController.signal.addEventListener('abort', onStop, { once: true });
    const deadlineTimer = this.armDeadline(pass);
    try {
      for (;;) {
        if (!pass.failure && !pass.undecided.size && !pass.controller.signal.aborted)
          this.launchReady(pass);
        if (pass.inFlight.size === 0) break;
        await Promise.race([...pass.inFlight.values(), pass.changes.next()]);
      }
    } finally {
      clearTimeout(deadlineTimer);
      clearTimeout(pass.graceTimer);
      this.stopController.signal.removeEventListener('abort', onStop);
    }
    return this.forwardOutcome(pass);
  }

  private newForwardPass(): ForwardPass {
    const pass: ForwardPass = {
      stored: new Map(this.record.steps.map((s) => [s.name, s])),
      completed: new Set(),
      waiting: new Set(),
      results: {},
      inFlight: new Map(),
      controller: new AbortController(),
      undecided: new Set(),
      changes: new PassChanges(),
      timedOut: false,
    };
    for (const s of this.record.steps) {
      if (s.status === 'completed') {
        pass.completed.add(s.name);
        pass.results[s.name] = s.result;
      } else if ((s.status === 'failed' || s.status === 'timed_out') && !pass.failure) {
        // The final failure was recorded (or a participant replied with one) but not acted on yet.
        pass.failure = { step: s.name, error: new Error(s.error ?? 'step failed') };
      }
    }
    return pass;
  }

  /** Aborts the pass at the saga's deadline; returns the timer to clear. */
  private armDeadline(pass: ForwardPass): NodeJS.Timeout | undefined {
    if (!this.record.deadlineAt) return undefined;
    const onDeadline = (): void => {
      pass.timedOut = true;
      pass.controller.abort(new SagaTimeoutError(this.def.name, this.record.id));
    };
    const left = this.record.deadlineAt.getTime() - this.deps.clock.now();
    if (left > 0) return setTimeout(onDeadline, left);
    onDeadline();
    return undefined;
  }

  private launchReady(pass: ForwardPass): void {
    for (const name of this.def.order) {
      if (pass.completed.has(name) || pass.inFlight.has(name) || pass.waiting.has(name)) continue;
      const step = this.def.steps.get(name)!;
      if (step.dependsOn.every((d) => pass.completed.has(d))) this.launch(pass, step);
    }
  }

  private launch(pass: ForwardPass, step: StepDefinition<TInput, Tx>): void {
    const task = this.runForwardStep(pass, step)
      .catch((error: unknown): PhaseResult => {
        // The store failed to record an outcome: stop driving the saga; recovery resumes it.
        this.stop(error instanceof LeaseLostError ? 'lease-lost' : 'store-error');
        this.deps.logger.error('saga step bookkeeping failed', {
          event: 'saga.store_error',
          sagaId: this.record.id,
          step: step.name,
          error: describe(error),
        });
        return { kind: 'aborted' };
      })
      .then((r) => {
        pass.inFlight.delete(step.name);
        this.settle(pass, step.name, r);
        pass.changes.notify();
      });
    pass.inFlight.set(step.name, task);
  }

  private runForwardStep(
    pass: ForwardPass,
    step: StepDefinition<TInput, Tx>,
  ): Promise<PhaseResult> {
    const failed =
      this.firstAttemptFailed?.step === step.name ? this.firstAttemptFailed : undefined;
    if (failed) this.firstAttemptFailed = undefined;
    return this.phases.run({
      failedAttempt: failed && { attempt: 1, error: failed.error },
      step,
      phase: 'forward',
      state: pass.stored.get(step.name),
      retry: step.retry,
      complete: this.completesSaga(pass, step.name)
        ? {
            within: this.deps.lifecycle?.within(SAGA_LIFECYCLE_EVENT_TYPES.completed, {
              sagaId: this.record.id,
              saga: this.def.name,
              status: 'completed',
              step: null,
              error: null,
            }),
          }
        : undefined,
      // Past the point of no return a failing step is retried forward, never compensated. That
      // includes a pivot that follows (or runs beside) a completed pivot: nothing can be undone.
      maxAttempts: () =>
        step.afterPivot || this.pivotDone(pass)
          ? Math.max(step.retry.maxAttempts, this.def.afterPivotMaxAttempts)
          : step.retry.maxAttempts,
      budgetSettled: step.afterPivot ? undefined : () => this.awaitPivotVerdict(pass, step.name),
      signal: pass.controller.signal,
      body: this.forwardBody(step, pass.results),
    });
  }

  /**
   * Whether `step`, launched now, is the saga's last open step: every other one completed, nothing
   * else running or awaited. Its transaction then completes the saga too (one commit fewer).
   */
  private completesSaga(pass: ForwardPass, step: string): boolean {
    return (
      !pass.failure &&
      pass.inFlight.size === 0 &&
      pass.waiting.size === 0 &&
      this.def.order.every((name) => name === step || pass.completed.has(name))
    );
  }

  /** Takes in how a step's phase ended; the first failure aborts its siblings per the strategy. */
  private settle(pass: ForwardPass, step: string, r: PhaseResult): void {
    if (r.kind === 'done') {
      pass.completed.add(step);
      pass.results[step] = r.result;
      if (r.sagaCompleted) pass.sagaCompleted = true;
    } else if (r.kind === 'waiting') {
      pass.waiting.add(step);
    } else if (r.kind === 'failed' && !pass.failure) {
      pass.failure = { step, error: r.error };
      this.stopSiblings(pass, step);
    }
  }

  /** What a failure does to the steps running beside it, per the saga's failure strategy. */
  private stopSiblings(pass: ForwardPass, step: string): void {
    if (this.def.failureStrategy === 'FAIL_FAST') pass.controller.abort(new SiblingFailed(step));
    else if (this.def.failureStrategy === 'FAIL_FAST_WITH_GRACE' && !pass.graceTimer) {
      pass.graceTimer = setTimeout(
        () => pass.controller.abort(new SiblingFailed(step)),
        this.def.graceMs,
      );
    }
  }

  /**
   * A step before the pivot has used up its attempts while a pivot runs beside it (WAIT_ALL, or
   * within the grace, lets the pivot go on). If the pivot completes, the saga is past its point of
   * no return: nothing is compensated and the step is retried forward, so its verdict waits for the
   * pivot. Meanwhile it counts as a failure for its siblings (FAIL_FAST stops them, the pivot
   * included; the grace starts) and nothing new starts. Resolves once no pivot runs beside it.
   */
  private async awaitPivotVerdict(pass: ForwardPass, step: string): Promise<void> {
    const pivotsRunning = (): string[] =>
      [...pass.inFlight.keys()].filter(
        (n) => n !== step && !pass.undecided.has(n) && this.def.steps.get(n)!.pivot,
      );
    if (this.pivotDone(pass) || !pivotsRunning().length) return;
    this.deps.logger.info(
      `step "${step}" of saga ${this.def.name} used up its attempts while a pivot runs beside it: its verdict waits for the pivot`,
      {
        event: 'saga.step.awaiting_pivot',
        sagaId: this.record.id,
        step,
        pivots: pivotsRunning(),
      },
    );
    pass.undecided.add(step);
    this.stopSiblings(pass, step);
    pass.changes.notify();
    try {
      while (!this.pivotDone(pass) && pivotsRunning().length) await pass.changes.next();
    } finally {
      pass.undecided.delete(step);
      // The pivot completed: the failure does not stand, so neither does its grace.
      if (this.pivotDone(pass) && !pass.failure && !pass.undecided.size) {
        clearTimeout(pass.graceTimer);
        pass.graceTimer = undefined;
      }
      pass.changes.notify();
    }
  }

  private pivotDone(pass: ForwardPass): boolean {
    return [...pass.completed].some((n) => this.def.steps.get(n)!.pivot);
  }

  /** What the pass comes to: compensate before a pivot, fail past one, park, or complete. */
  private forwardOutcome(pass: ForwardPass): ForwardOutcome {
    // Committed: the saga is completed whatever happened since (a stop, its deadline passing).
    if (pass.sagaCompleted) return { kind: 'completed', recorded: true };
    if (this.stopReason) return { kind: 'interrupted' };
    if (pass.failure) {
      const { step } = pass.failure;
      const reason = `step "${step}" failed: ${describe(pass.failure.error)}`;
      if (this.pivotDone(pass)) {
        return {
          kind: 'failed',
          step,
          reason: `${reason}; the saga is past its pivot, so it cannot be compensated: fix the cause and resume it manually`,
        };
      }
      return { kind: 'compensate', step, reason };
    }
    if (pass.timedOut) {
      const reason = `saga timed out after ${this.def.timeoutMs ?? 0} ms`;
      if (this.pivotDone(pass))
        return { kind: 'failed', reason: `${reason} past its pivot; it cannot be compensated` };
      return { kind: 'compensate', reason };
    }
    if (pass.waiting.size) return { kind: 'park', steps: [...pass.waiting] };
    // Stopped for a step whose failure then did not stand (a pivot beside it completed, see
    // awaitPivotVerdict): the stopped steps, that one included, run on in a new pass.
    if (pass.controller.signal.reason instanceof SiblingFailed) return { kind: 'again' };
    return { kind: 'completed' };
  }

  /** A forward attempt: the step's action, then its result (local) or its command (remote). */
  private forwardBody(
    step: StepDefinition<TInput, Tx>,
    results: Readonly<Record<string, JsonValue>>,
  ): PhaseBody<Tx> {
    return async (tx, signal, attempt) => {
      const idempotencyKey = stepIdempotencyKey(this.record.id, step.name, 'forward');
      const ctx: StepContext<TInput, Tx> = {
        sagaId: this.record.id,
        sagaName: this.def.name,
        stepName: step.name,
        // Copies: a step mutating what it was given must not change what other steps see.
        input: structuredClone(this.record.input) as TInput,
        results: structuredClone(results),
        idempotencyKey,
        attempt,
        signal,
        manager: tx,
        emit: (messages) => this.emitMessages(tx, step.name, idempotencyKey, messages),
      };
      const value = await step.run(ctx);
      if (step.kind === 'remote') {
        const command = assertSagaCommand(
          value,
          `Remote step "${step.name}" of saga "${this.def.name}"`,
        );
        await this.sendCommand(tx, command, { step: step.name, phase: 'forward', attempt });
        return { result: null, awaitReply: { timeoutMs: step.timeoutMs } };
      }
      const result = value === undefined ? null : value;
      assertJsonSerializable(result, `Result of step "${step.name}" of saga "${this.def.name}"`);
      // In the step's transaction: the event commits with the step's completion, or not at all.
      await this.deps.lifecycle?.write(tx, SAGA_LIFECYCLE_EVENT_TYPES.stepCompleted, {
        sagaId: this.record.id,
        saga: this.def.name,
        step: step.name,
        status: 'running',
      });
      // What later steps see is what the store keeps (and what a resumed run would load):
      // a detached JSON copy, without `undefined` fields.
      return { result: JSON.parse(JSON.stringify(result)) as JsonValue };
    };
  }

  // ----------------------------------------------------------- compensation

  /**
   * Undoes the steps that took effect (or may have: a remote step whose reply never came), in
   * reverse topological order, one at a time. Returns `park` when a remote compensation's reply is
   * awaited.
   */
  private async compensate(): Promise<RunOutcome | 'park'> {
    const reason = this.record.error ?? 'saga is compensating';
    const byName = new Map(this.record.steps.map((s) => [s.name, s]));
    const results: Record<string, JsonValue> = {};
    for (const s of this.record.steps) if (s.result !== null) results[s.name] = s.result;

    // Past a pivot nothing is undone. The engine never compensates there on its own; an operator's
    // `sage sagas compensate` (which reads only the database) may have asked to: refuse it here.
    const pivot = this.record.steps.find(
      (s) => s.status === 'completed' && this.def.steps.get(s.name)?.pivot === true,
    );
    if (pivot) {
      const why = `compensation refused: pivot step "${pivot.name}" completed, and past a pivot nothing is undone. Earlier: ${reason}. The saga is parked as failed; fix the cause and run sage sagas retry.`;
      return (await this.finish('failCompensation', { reason: why, step: pivot.name }))
        ? 'failed'
        : this.interrupted();
    }

    // Reverse topological order over completed steps only; sequential, so the order is exact.
    for (const name of [...this.def.order].reverse()) {
      const step = this.def.steps.get(name)!;
      const state = byName.get(name);
      if (!state) continue;
      if (state.status === 'compensation_failed') {
        return this.failCompensation(step.name, state.error ?? 'compensation failed');
      }
      if (!STEP_STATUSES_TO_COMPENSATE.includes(state.status) || !step.compensatable) continue;
      const body = this.compensationBody(step, state, reason, results);
      if (!body) continue;
      const r = await this.phases.run({
        step,
        phase: 'compensate',
        state,
        retry: step.compensationRetry,
        maxAttempts: () => step.compensationRetry.maxAttempts,
        signal: this.stopController.signal,
        body,
      });
      if (r.kind === 'waiting') return 'park';
      if (r.kind === 'aborted') return this.interrupted();
      if (r.kind === 'failed')
        return this.failCompensation(step.name, describe(r.error), r.attempt);
    }
    return (await this.finish('compensated')) ? 'compensated' : this.interrupted();
  }

  /**
   * A compensation attempt: the step's compensation, which for a remote step may return a command
   * (awaited like the step's own) or nothing (its undo was local). Undefined: nothing to undo with.
   */
  private compensationBody(
    step: StepDefinition<TInput, Tx>,
    state: StepRecord,
    reason: string,
    results: Readonly<Record<string, JsonValue>>,
  ): PhaseBody<Tx> | undefined {
    const compensate = step.compensate;
    if (!compensate) return undefined;
    return async (tx, signal, attempt) => {
      const idempotencyKey = stepIdempotencyKey(this.record.id, step.name, 'compensate');
      const value = await compensate({
        sagaId: this.record.id,
        sagaName: this.def.name,
        stepName: step.name,
        input: this.record.input as TInput,
        results: { ...results },
        result: state.result,
        reason,
        idempotencyKey,
        forwardIdempotencyKey: stepIdempotencyKey(this.record.id, step.name, 'forward'),
        attempt,
        signal,
        manager: tx,
        emit: (messages) => this.emitMessages(tx, step.name, idempotencyKey, messages),
      });
      if (step.kind === 'remote' && value !== undefined && value !== null) {
        const command = assertSagaCommand(
          value,
          `Compensation of remote step "${step.name}" of saga "${this.def.name}"`,
        );
        await this.sendCommand(tx, command, { step: step.name, phase: 'compensate', attempt });
        return { result: null, awaitReply: { timeoutMs: step.timeoutMs } };
      }
      return { result: null };
    };
  }

  private async failCompensation(
    step: string,
    error: string,
    attempts?: number,
  ): Promise<RunOutcome> {
    const reason =
      `compensation of step "${step}" failed${attempts ? ` after ${attempts} attempts` : ''}: ${error}. ` +
      `Earlier failure: ${this.record.error ?? 'unknown'}. The saga is parked as failed; undo the step by hand.`;
    return (await this.finish('failCompensation', { reason, step }))
      ? 'failed'
      : this.interrupted();
  }

  // ------------------------------------------------------------------ shared

  /** A remote phase's command, written to the outbox in the step's transaction. */
  private async sendCommand(
    tx: Tx,
    command: SagaCommand,
    from: { step: string; phase: StepPhase; attempt: number },
  ): Promise<void> {
    const { outbox, replyTo } = this.deps;
    if (!outbox || !replyTo) {
      throw new InvalidOptionsError(
        'replyTo',
        `remote step "${from.step}" of saga "${this.def.name}" needs an outbox and a reply destination (saga.replyTo)`,
      );
    }
    await outbox.publish(
      [
        {
          destination: command.destination,
          type: command.type,
          payload: command.payload,
          // The saga's key by default: a step's command, its resend and its compensation arrive in order.
          key: command.key === undefined ? this.record.id : command.key,
          sagaId: this.record.id,
          headers: {
            ...command.headers,
            [SAGA_HEADERS.sagaId]: this.record.id,
            [SAGA_HEADERS.saga]: this.def.name,
            [SAGA_HEADERS.step]: from.step,
            [SAGA_HEADERS.phase]: from.phase,
            [SAGA_HEADERS.attempt]: String(from.attempt),
            [SAGA_HEADERS.idempotencyKey]: stepIdempotencyKey(
              this.record.id,
              from.step,
              from.phase,
            ),
            [SAGA_HEADERS.replyTo]: replyTo,
          },
        },
      ],
      { manager: tx },
    );
  }

  /** ctx.emit: outbox rows in the step's own transaction. */
  private async emitMessages(
    tx: Tx,
    step: string,
    idempotencyKey: string,
    messages: SagaMessage | readonly SagaMessage[],
  ): Promise<string[]> {
    const outbox = this.deps.outbox;
    if (!outbox) {
      throw new InvalidOptionsError(
        'outbox',
        `step "${step}" of saga "${this.def.name}" emitted a message, but no outbox is configured for the saga engine`,
      );
    }
    const list: readonly SagaMessage[] = Array.isArray(messages)
      ? messages
      : [messages as SagaMessage];
    return outbox.publish(
      list.map((m) => ({
        ...m,
        key: m.key === undefined ? this.record.id : m.key,
        sagaId: this.record.id,
        headers: {
          ...m.headers,
          'sage-saga-id': this.record.id,
          'sage-step': step,
          'sage-idempotency-key': idempotencyKey,
        },
      })),
      { manager: tx },
    );
  }

  /**
   * Ends the saga with `name`, and the lifecycle event of it in the same transaction; `recorded`:
   * the last step's transaction made the change (and wrote the event) already.
   */
  private async finish(name: Ending, failure?: Failure, recorded = false): Promise<boolean> {
    const { from, to } = SAGA_TRANSITIONS[name];
    const moved =
      recorded ||
      (await this.deps.store.transition(
        this.fence,
        from,
        to,
        failure ? { error: failure.reason, failedStep: failure.step } : undefined,
        // Compensated: the failure that started compensation is the reason.
        this.deps.lifecycle?.within(SAGA_LIFECYCLE_EVENT_TYPES[to], {
          sagaId: this.record.id,
          saga: this.def.name,
          status: to,
          step: failure?.step ?? (to === 'compensated' ? this.record.failedStep : null),
          error: failure?.reason ?? (to === 'compensated' ? this.record.error : null),
        }),
      ));
    if (!moved) return false;
    const durationMs = this.deps.clock.now() - this.startedAt;
    // The saga's end with its reason, logged here once (ids, names and error text only).
    const saga = `saga ${this.def.name} ${this.record.id}`;
    const ids = { sagaId: this.record.id, saga: this.def.name };
    if (to === 'failed') {
      const reason = failure?.reason ?? 'failed';
      this.deps.logger.error(`${saga} failed: ${reason}`, {
        ...ids,
        step: failure?.step,
        reason,
        durationMs,
        event: 'saga.failed',
      });
      this.emit({ type: 'saga.failed', reason, durationMs });
    } else if (to === 'completed') this.emit({ type: 'saga.completed', durationMs });
    else {
      const cause = this.record.error;
      this.deps.logger.warn(
        `${saga} compensated${!cause ? '' : cause.startsWith('step ') ? ` after ${cause}` : `: ${cause}`}`,
        {
          ...ids,
          step: this.record.failedStep ?? undefined,
          reason: cause ?? undefined,
          durationMs,
          event: 'saga.compensated',
        },
      );
      this.emit({ type: 'saga.compensated', durationMs });
    }
    return true;
  }

  private interrupted(): RunOutcome {
    this.emit({ type: 'saga.interrupted', reason: this.stopReason ?? 'lease-lost' });
    return 'interrupted';
  }

  private emit(event: SagaEventBody): void {
    this.deps.emit({
      ...event,
      sagaId: this.record.id,
      saga: this.def.name,
      at: this.deps.clock.now(),
    });
  }
}

/**
 * A saga claimed while parked was made `running` by the claim (SAGA_TRANSITIONS.wake); as loaded
 * it may still say `waiting`.
 */
function claimed(record: SagaRecord): SagaRecord {
  return canSagaTransition('wake', record.status)
    ? { ...record, status: SAGA_TRANSITIONS.wake.to }
    : record;
}

class SagaInterrupted extends Error {
  constructor(readonly reason: StopReason) {
    super(`saga run interrupted: ${reason}`);
  }
}

/** Wakes whoever waits for a forward pass to change. */
class PassChanges {
  private waiters: (() => void)[] = [];

  next(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

class SiblingFailed extends Error {
  constructor(readonly step: string) {
    super(`aborted because step "${step}" failed`);
  }
}
