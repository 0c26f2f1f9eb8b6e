import {
  InvalidOptionsError,
  LeaseLostError,
  NotSerializableError,
  SagaOutboxError,
  SagaStoreUnavailableError,
  SagaTimeoutError,
  StepTimeoutError,
} from '../errors';
import { assertJsonSerializable, type JsonValue } from '../json';
import type { Clock } from '../ports/clock';
import type { SageLogger } from '../ports/logger';
import type {
  AwaitReply,
  Fence,
  SagaRecord,
  SagaStore,
  StepPhase,
  StepRecord,
  StepTxOutcome,
} from '../ports/saga-store';
import { assertSagaCommand, SAGA_HEADERS, type SagaCommand } from './saga-command';
import { backoffDelay, isRetryable, type RetryPolicy } from './retry-policy';
import type { OutboxPublisher } from '../outbox/outbox-publisher';
import type { SagaDefinition, SagaMessage, StepDefinition } from './saga-definition';
import type { SagaEvent } from './saga-events';
import { SAGA_LIFECYCLE_EVENT_TYPES, type SagaLifecycleEvents } from './saga-lifecycle-events';

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

type StepResult =
  | { kind: 'done'; result: JsonValue }
  | { kind: 'failed'; error: unknown }
  /** A remote phase's command is out; its reply is awaited. */
  | { kind: 'waiting' }
  | { kind: 'aborted' };

type ForwardOutcome =
  | { kind: 'completed' }
  | { kind: 'compensate'; reason: string; step?: string }
  | { kind: 'failed'; reason: string; step?: string }
  /** Nothing left to run here: every unfinished step awaits a reply. */
  | { kind: 'park'; steps: string[] }
  | { kind: 'interrupted' };

/**
 * Drives one saga instance from its stored state to a terminal status: forward over the DAG
 * (independent steps concurrently), then, on failure before a pivot, compensation of completed
 * steps in reverse topological order. Every decision is checkpointed through the store, so a new
 * owner can resume from any point; completed steps are never re-run.
 */
export class SagaRunner<TInput, Tx> {
  /** Aborted when this process must stop driving the saga (lease lost, shutdown). */
  private readonly stopController = new AbortController();
  private stopReason: StopReason | undefined;
  private readonly fence: Fence;
  private readonly random: () => number;

  constructor(
    private readonly def: SagaDefinition<TInput, Tx>,
    private record: SagaRecord,
    owner: string,
    private readonly deps: SagaRunnerDeps<Tx>,
  ) {
    this.fence = { sagaId: record.id, owner };
    this.random = deps.random ?? Math.random;
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

  async run(): Promise<RunOutcome> {
    const startedAt = this.deps.clock.now();
    try {
      // A saga claimed while parked (`waiting`) was made `running` by the claim; as loaded it may
      // still say `waiting`.
      if (this.record.status === 'waiting') this.record = { ...this.record, status: 'running' };
      if (this.record.status === 'running') {
        let forward = await this.forward();
        while (forward.kind === 'park') {
          const parked = await this.park(forward.steps);
          if (parked !== 'woken') return parked;
          forward = await this.forward();
        }
        if (forward.kind === 'interrupted') return this.interrupted();
        if (forward.kind === 'completed') {
          return (await this.finish('running', 'completed', startedAt))
            ? 'completed'
            : this.interrupted();
        }
        if (forward.kind === 'failed') {
          return (await this.finish('running', 'failed', startedAt, forward.reason, forward.step))
            ? 'failed'
            : this.interrupted();
        }
        const moved = await this.deps.store.transition(this.fence, ['running'], 'compensating', {
          error: forward.reason,
          failedStep: forward.step,
        });
        if (!moved) return this.interrupted();
        this.record = {
          ...this.record,
          status: 'compensating',
          error: forward.reason,
          failedStep: forward.step ?? null,
        };
        this.emit({ type: 'saga.compensating', reason: forward.reason });
      }
      while (this.record.status === 'compensating') {
        // Compensation works from the durable step states, not from what forward() saw in memory.
        const fresh = await this.deps.store.load(this.record.id);
        if (!fresh) return this.interrupted();
        this.record = fresh;
        const outcome = await this.compensate(startedAt);
        if (outcome !== 'park') return outcome;
        const parked = await this.park(
          this.record.steps.filter((s) => s.status === 'compensating').map((s) => s.name),
        );
        if (parked !== 'woken') return parked;
      }
      return this.record.status as RunOutcome;
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
      this.record = { ...fresh, status: fresh.status === 'waiting' ? 'running' : fresh.status };
      return 'woken';
    }
    this.emit({ type: 'saga.waiting', steps });
    return 'waiting';
  }

  // ---------------------------------------------------------------- forward

  private async forward(): Promise<ForwardOutcome> {
    const { def } = this;
    const stepState = new Map(this.record.steps.map((s) => [s.name, s]));
    const completed = new Set<string>();
    /** Remote steps whose command is out and whose reply is not due yet. */
    const waiting = new Set<string>();
    const results: Record<string, JsonValue> = {};
    let failure: { step: string; error: unknown } | undefined;
    for (const s of this.record.steps) {
      if (s.status === 'completed') {
        completed.add(s.name);
        results[s.name] = s.result;
      } else if ((s.status === 'failed' || s.status === 'timed_out') && !failure) {
        // The final failure was recorded (or a participant replied with one) but not acted on yet.
        failure = { step: s.name, error: new Error(s.error ?? 'step failed') };
      }
    }
    const pivotDone = (): boolean => [...completed].some((n) => def.steps.get(n)!.pivot);

    // Aborts running steps on saga timeout or a sibling's failure (per strategy), and on stop.
    const forwardController = new AbortController();
    const onStop = (): void => forwardController.abort(this.stopController.signal.reason);
    this.stopController.signal.addEventListener('abort', onStop, { once: true });
    let timedOut = false;
    let deadlineTimer: NodeJS.Timeout | undefined;
    let graceTimer: NodeJS.Timeout | undefined;
    if (this.record.deadlineAt) {
      const left = this.record.deadlineAt.getTime() - this.deps.clock.now();
      const onDeadline = (): void => {
        timedOut = true;
        forwardController.abort(new SagaTimeoutError(def.name, this.record.id));
      };
      if (left <= 0) onDeadline();
      else deadlineTimer = setTimeout(onDeadline, left);
    }

    const inFlight = new Map<string, Promise<void>>();
    const launch = (step: StepDefinition<TInput, Tx>): void => {
      const task = this.runForwardStep(
        step,
        stepState.get(step.name),
        results,
        forwardController.signal,
        pivotDone,
      )
        .catch((error: unknown): StepResult => {
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
          inFlight.delete(step.name);
          if (r.kind === 'done') {
            completed.add(step.name);
            results[step.name] = r.result;
          } else if (r.kind === 'waiting') {
            waiting.add(step.name);
          } else if (r.kind === 'failed' && !failure) {
            failure = { step: step.name, error: r.error };
            if (def.failureStrategy === 'FAIL_FAST')
              forwardController.abort(new SiblingFailed(step.name));
            else if (def.failureStrategy === 'FAIL_FAST_WITH_GRACE') {
              graceTimer = setTimeout(
                () => forwardController.abort(new SiblingFailed(step.name)),
                def.graceMs,
              );
            }
          }
        });
      inFlight.set(step.name, task);
    };

    try {
      for (;;) {
        if (!failure && !forwardController.signal.aborted) {
          for (const name of def.order) {
            if (completed.has(name) || inFlight.has(name) || waiting.has(name)) continue;
            const step = def.steps.get(name)!;
            if (step.dependsOn.every((d) => completed.has(d))) launch(step);
          }
        }
        if (inFlight.size === 0) break;
        await Promise.race(inFlight.values());
      }
    } finally {
      clearTimeout(deadlineTimer);
      clearTimeout(graceTimer);
      this.stopController.signal.removeEventListener('abort', onStop);
    }

    if (this.stopReason) return { kind: 'interrupted' };
    if (failure) {
      const reason = `step "${failure.step}" failed: ${describe(failure.error)}`;
      if (pivotDone()) {
        return {
          kind: 'failed',
          step: failure.step,
          reason: `${reason}; the saga is past its pivot, so it cannot be compensated: fix the cause and resume it manually`,
        };
      }
      return { kind: 'compensate', step: failure.step, reason };
    }
    if (timedOut) {
      const reason = `saga timed out after ${def.timeoutMs ?? 0} ms`;
      if (pivotDone())
        return { kind: 'failed', reason: `${reason} past its pivot; it cannot be compensated` };
      return { kind: 'compensate', reason };
    }
    if (waiting.size) return { kind: 'park', steps: [...waiting] };
    return { kind: 'completed' };
  }

  private async runForwardStep(
    step: StepDefinition<TInput, Tx>,
    state: StepRecord | undefined,
    results: Readonly<Record<string, JsonValue>>,
    forwardSignal: AbortSignal,
    pivotDone: () => boolean,
  ): Promise<StepResult> {
    let attempt = state?.attempts ?? 0;
    // Past the point of no return a failing step is retried forward, never compensated. That
    // includes a pivot that follows (or runs beside) a completed pivot: nothing can be undone.
    const maxAttempts = (): number =>
      step.afterPivot || pivotDone()
        ? Math.max(step.retry.maxAttempts, this.def.afterPivotMaxAttempts)
        : step.retry.maxAttempts;
    if (state?.status === 'waiting') {
      // Resumed with a command out: wait on, or treat the overdue reply as a timed-out attempt.
      const overdue = this.replyOverdue(step, state, 'forward', attempt);
      if (!overdue) return { kind: 'waiting' };
      const settled = await this.recordReplyTimeout(
        step,
        'forward',
        attempt,
        overdue,
        attempt >= maxAttempts(),
      );
      if (settled) return settled;
      if (!(await this.backOff(step, attempt, overdue, forwardSignal))) return { kind: 'aborted' };
    }
    for (;;) {
      if (forwardSignal.aborted) return { kind: 'aborted' };
      attempt++;
      const began = this.deps.clock.now();
      this.emit({ type: 'step.started', step: step.name, attempt });
      const attemptResult = await this.attempt(
        step,
        'forward',
        attempt,
        forwardSignal,
        async (tx, signal) => {
          const ctx = {
            sagaId: this.record.id,
            sagaName: this.def.name,
            stepName: step.name,
            // Copies: a step mutating what it was given must not change what other steps see.
            input: structuredClone(this.record.input) as TInput,
            results: structuredClone(results),
            idempotencyKey: `${this.record.id}:${step.name}`,
            attempt,
            signal,
            manager: tx,
            emit: (messages: SagaMessage | readonly SagaMessage[]) =>
              this.emitMessages(tx, step.name, `${this.record.id}:${step.name}`, messages),
          };
          const value = await step.run(ctx);
          if (step.kind === 'remote') {
            const command = assertSagaCommand(
              value,
              `Remote step "${step.name}" of saga "${this.def.name}"`,
            );
            await this.sendCommand(tx, step, 'forward', attempt, command);
            return { result: null, awaitReply: { timeoutMs: step.timeoutMs } };
          }
          const result = value === undefined ? null : value;
          assertJsonSerializable(
            result,
            `Result of step "${step.name}" of saga "${this.def.name}"`,
          );
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
        },
      );
      if (attemptResult.kind === 'waiting') {
        this.emit({ type: 'step.waiting', step: step.name, attempt, phase: 'forward' });
        return attemptResult;
      }
      if (attemptResult.kind === 'done') {
        this.emit({
          type: 'step.completed',
          step: step.name,
          attempt,
          durationMs: this.deps.clock.now() - began,
        });
        return attemptResult;
      }
      if (attemptResult.kind === 'aborted') return attemptResult;
      const error = attemptResult.error;
      const final = !retryableError(step.retry, error) || attempt >= maxAttempts();
      await this.deps.store.recordStepFailure(
        this.fence,
        step.name,
        'forward',
        attempt,
        describe(error),
        final,
      );
      if (final) {
        this.emit({ type: 'step.failed', step: step.name, attempt, error: describe(error) });
        return { kind: 'failed', error };
      }
      if (!(await this.backOff(step, attempt, error, forwardSignal))) return { kind: 'aborted' };
    }
  }

  /** Reports the retry of a forward step and waits its backoff; false when `signal` aborted the wait. */
  private async backOff(
    step: StepDefinition<TInput, Tx>,
    attempt: number,
    error: unknown,
    signal: AbortSignal,
  ): Promise<boolean> {
    const delayMs = backoffDelay(step.retry, attempt, this.random);
    this.emit({ type: 'step.retrying', step: step.name, attempt, delayMs, error: describe(error) });
    try {
      await this.deps.clock.sleep(delayMs, signal);
      return true;
    } catch {
      return false;
    }
  }

  // ----------------------------------------------------------- compensation

  /**
   * Undoes the steps that took effect (or may have: a remote step whose reply never came), in
   * reverse topological order, one at a time. Returns `park` when a remote compensation's reply is
   * awaited.
   */
  private async compensate(startedAt: number): Promise<RunOutcome | 'park'> {
    const reason = this.record.error ?? 'saga is compensating';
    const byName = new Map(this.record.steps.map((s) => [s.name, s]));
    const results: Record<string, JsonValue> = {};
    for (const s of this.record.steps) if (s.result !== null) results[s.name] = s.result;

    // Reverse topological order over completed steps only; sequential, so the order is exact.
    for (const name of [...this.def.order].reverse()) {
      const step = this.def.steps.get(name)!;
      const state = byName.get(name);
      if (!state) continue;
      if (state.status === 'compensation_failed') {
        return this.failCompensation(step.name, state.error ?? 'compensation failed', startedAt);
      }
      if (!needsCompensation(state) || !step.compensatable || !step.compensate) continue;
      const compensate = step.compensate;
      let attempt = state.compensationAttempts;
      if (state.status === 'compensating') {
        // Resumed with a compensation command out.
        const overdue = this.replyOverdue(step, state, 'compensate', attempt);
        if (!overdue) return 'park';
        const final = attempt >= step.compensationRetry.maxAttempts;
        const settled = await this.recordReplyTimeout(step, 'compensate', attempt, overdue, final);
        if (settled?.kind === 'failed')
          return this.failCompensation(step.name, describe(settled.error), startedAt, attempt);
        if (settled?.kind === 'done') continue;
      }
      for (;;) {
        if (this.stopReason) return this.interrupted();
        attempt++;
        const r = await this.attempt(
          step,
          'compensate',
          attempt,
          this.stopController.signal,
          async (tx, signal) => {
            const value = await compensate({
              sagaId: this.record.id,
              sagaName: this.def.name,
              stepName: step.name,
              input: this.record.input as TInput,
              results: { ...results },
              result: state.result,
              reason,
              idempotencyKey: `${this.record.id}:${step.name}:compensate`,
              attempt,
              signal,
              manager: tx,
              emit: (messages) =>
                this.emitMessages(
                  tx,
                  step.name,
                  `${this.record.id}:${step.name}:compensate`,
                  messages,
                ),
            });
            // A remote step's compensation may send a command (awaited like the step's own) or
            // return nothing (its undo was local).
            if (step.kind === 'remote' && value !== undefined && value !== null) {
              const command = assertSagaCommand(
                value,
                `Compensation of remote step "${step.name}" of saga "${this.def.name}"`,
              );
              await this.sendCommand(tx, step, 'compensate', attempt, command);
              return { result: null, awaitReply: { timeoutMs: step.timeoutMs } };
            }
            return { result: null };
          },
        );
        if (r.kind === 'waiting') {
          this.emit({ type: 'step.waiting', step: step.name, attempt, phase: 'compensate' });
          return 'park';
        }
        if (r.kind === 'done') {
          this.emit({ type: 'compensation.completed', step: step.name, attempt });
          break;
        }
        if (r.kind === 'aborted') return this.interrupted();
        const final =
          !retryableError(step.compensationRetry, r.error) ||
          attempt >= step.compensationRetry.maxAttempts;
        await this.deps.store.recordStepFailure(
          this.fence,
          step.name,
          'compensate',
          attempt,
          describe(r.error),
          final,
        );
        if (final) {
          this.emit({
            type: 'compensation.failed',
            step: step.name,
            attempt,
            error: describe(r.error),
          });
          return this.failCompensation(step.name, describe(r.error), startedAt, attempt);
        }
        const delayMs = backoffDelay(step.compensationRetry, attempt, this.random);
        this.emit({
          type: 'compensation.retrying',
          step: step.name,
          attempt,
          delayMs,
          error: describe(r.error),
        });
        try {
          await this.deps.clock.sleep(delayMs, this.stopController.signal);
        } catch {
          return this.interrupted();
        }
      }
    }
    return (await this.finish('compensating', 'compensated', startedAt))
      ? 'compensated'
      : this.interrupted();
  }

  private async failCompensation(
    step: string,
    error: string,
    startedAt: number,
    attempts?: number,
  ): Promise<RunOutcome> {
    const reason =
      `compensation of step "${step}" failed${attempts ? ` after ${attempts} attempts` : ''}: ${error}. ` +
      `Earlier failure: ${this.record.error ?? 'unknown'}. The saga is parked as failed; undo the step by hand.`;
    return (await this.finish('compensating', 'failed', startedAt, reason, step))
      ? 'failed'
      : this.interrupted();
  }

  // ------------------------------------------------------------ remote steps

  /** The reply of a resumed remote phase is overdue: the timeout error, or undefined while it is not. */
  private replyOverdue(
    step: StepDefinition<TInput, Tx>,
    state: StepRecord,
    phase: StepPhase,
    attempt: number,
  ): StepTimeoutError | undefined {
    const due = state.replyDeadline;
    if (due === null || due.getTime() > this.deps.clock.now()) return undefined;
    return new StepTimeoutError(
      this.def.name,
      phase === 'forward' ? step.name : `${step.name} (compensation)`,
      step.timeoutMs ?? 0,
      `no reply to attempt ${attempt}`,
    );
  }

  /**
   * Records a remote attempt whose reply never came. A reply may land at the same moment: the store
   * leaves a step that already moved on untouched, and the step's stored state decides. Returns the
   * settled outcome (the reply's, or the final failure), or undefined to send the command again.
   */
  private async recordReplyTimeout(
    step: StepDefinition<TInput, Tx>,
    phase: StepPhase,
    attempt: number,
    error: StepTimeoutError,
    final: boolean,
  ): Promise<StepResult | undefined> {
    await this.deps.store.recordStepFailure(
      this.fence,
      step.name,
      phase,
      attempt,
      describe(error),
      final,
      // No reply: the participant may or may not have acted, so a final timeout is compensated.
      phase === 'forward',
    );
    const settled = await this.storedOutcome(step.name, phase);
    if (settled) return settled;
    if (!final) return undefined;
    this.emit({
      type: phase === 'forward' ? 'step.failed' : 'compensation.failed',
      step: step.name,
      attempt,
      error: describe(error),
    });
    return { kind: 'failed', error };
  }

  /** How a phase ended, as stored (after `already-done`, or a reply racing a timeout); undefined while open. */
  private async storedOutcome(step: string, phase: StepPhase): Promise<StepResult | undefined> {
    const fresh = await this.deps.store.load(this.record.id);
    const state = fresh?.steps.find((x) => x.name === step);
    if (!state) return undefined;
    if (phase === 'forward') {
      if (state.status === 'pending' || state.status === 'waiting') return undefined;
      if (state.status === 'failed' || state.status === 'timed_out')
        return { kind: 'failed', error: new Error(state.error ?? 'step failed') };
      return { kind: 'done', result: state.result };
    }
    if (state.status === 'compensated') return { kind: 'done', result: null };
    if (state.status === 'compensation_failed')
      return { kind: 'failed', error: new Error(state.error ?? 'compensation failed') };
    return undefined;
  }

  /** A remote phase's command, written to the outbox in the step's transaction. */
  private async sendCommand(
    tx: Tx,
    step: StepDefinition<TInput, Tx>,
    phase: StepPhase,
    attempt: number,
    command: SagaCommand,
  ): Promise<void> {
    const { outbox, replyTo } = this.deps;
    if (!outbox || !replyTo) {
      throw new InvalidOptionsError(
        'replyTo',
        `remote step "${step.name}" of saga "${this.def.name}" needs an outbox and a reply destination (saga.replyTo)`,
      );
    }
    const idempotencyKey = `${this.record.id}:${step.name}${phase === 'compensate' ? ':compensate' : ''}`;
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
            [SAGA_HEADERS.step]: step.name,
            [SAGA_HEADERS.phase]: phase,
            [SAGA_HEADERS.attempt]: String(attempt),
            [SAGA_HEADERS.idempotencyKey]: idempotencyKey,
            [SAGA_HEADERS.replyTo]: replyTo,
          },
        },
      ],
      { manager: tx },
    );
  }

  // ------------------------------------------------------------------ shared

  /**
   * One attempt of one phase in its own transaction. The per-attempt timeout aborts `signal`; the
   * transaction ends only after the body settles, and a timed-out attempt is rolled back even if
   * its body finished late, so no write escapes the step's transaction.
   *
   * Only what the body throws (or its timeout) is a failed attempt. When the store's own
   * bookkeeping fails (SagaStoreUnavailableError) or the lease is lost, the saga stops here without
   * counting an attempt: a database outage must not burn the retry budget and start compensation.
   * Recovery resumes the saga once its lease expires.
   */
  private async attempt(
    step: StepDefinition<TInput, Tx>,
    phase: StepPhase,
    attempt: number,
    parent: AbortSignal,
    body: (tx: Tx, signal: AbortSignal) => Promise<{ result: JsonValue; awaitReply?: AwaitReply }>,
  ): Promise<StepResult> {
    const controller = new AbortController();
    const onParent = (): void => controller.abort(parent.reason);
    if (parent.aborted) return { kind: 'aborted' };
    parent.addEventListener('abort', onParent, { once: true });
    const timer =
      step.timeoutMs !== null
        ? setTimeout(
            () => controller.abort(new StepTimeoutError(this.def.name, step.name, step.timeoutMs!)),
            step.timeoutMs,
          )
        : undefined;
    let bodyFailed = false;
    let outcome: StepTxOutcome<{ result: JsonValue; awaiting: boolean }>;
    try {
      outcome = await this.deps.store.runStepTransaction(
        this.fence,
        step.name,
        phase,
        attempt,
        async (tx) => {
          try {
            const { result, awaitReply } = await body(tx, controller.signal);
            if (controller.signal.aborted) throw controller.signal.reason;
            return { result, awaitReply, value: { result, awaiting: awaitReply !== undefined } };
          } catch (error) {
            bodyFailed = true;
            throw error;
          }
        },
      );
    } catch (error) {
      // Store signals count only from the store: a body that throws one has simply failed.
      if (!bodyFailed && error instanceof LeaseLostError) {
        this.stop('lease-lost');
        return { kind: 'aborted' };
      }
      if (!bodyFailed && error instanceof SagaStoreUnavailableError) {
        this.stop('store-error');
        this.deps.logger.error('saga store failed around a step; recovery will resume the saga', {
          event: 'saga.store_error',
          sagaId: this.record.id,
          step: step.name,
          phase,
          attempt,
          error: describe(error),
        });
        return { kind: 'aborted' };
      }
      if (this.stopReason) return { kind: 'aborted' };
      const reason: unknown = controller.signal.aborted ? controller.signal.reason : undefined;
      if (reason instanceof StepTimeoutError) return { kind: 'failed', error: reason };
      if (parent.aborted) return { kind: 'aborted' };
      return { kind: 'failed', error };
    } finally {
      clearTimeout(timer);
      parent.removeEventListener('abort', onParent);
    }
    if (outcome.kind === 'done') {
      return outcome.value.awaiting
        ? { kind: 'waiting' }
        : { kind: 'done', result: outcome.value.result };
    }
    // Ended earlier (by a previous owner, a COMMIT whose outcome we never heard, or a reply): as
    // stored. A failing load is store trouble and propagates as such to the caller.
    return (await this.storedOutcome(step.name, phase)) ?? { kind: 'done', result: null };
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

  private async finish(
    from: 'running' | 'compensating',
    to: 'completed' | 'compensated' | 'failed',
    startedAt: number,
    reason?: string,
    step?: string,
  ): Promise<boolean> {
    const moved = await this.deps.store.transition(
      this.fence,
      [from],
      to,
      reason ? { error: reason, failedStep: step } : undefined,
      // Compensated: the failure that started compensation is the reason.
      this.deps.lifecycle?.within(SAGA_LIFECYCLE_EVENT_TYPES[to], {
        sagaId: this.record.id,
        saga: this.def.name,
        status: to,
        step: step ?? (to === 'compensated' ? this.record.failedStep : null),
        error: reason ?? (to === 'compensated' ? this.record.error : null),
      }),
    );
    if (!moved) return false;
    const durationMs = this.deps.clock.now() - startedAt;
    if (to === 'failed') {
      this.deps.logger.error(`saga ${this.def.name} failed`, {
        event: 'saga.failed',
        sagaId: this.record.id,
        reason,
      });
      this.emit({ type: 'saga.failed', reason: reason ?? 'failed', durationMs });
    } else if (to === 'completed') this.emit({ type: 'saga.completed', durationMs });
    else this.emit({ type: 'saga.compensated', durationMs });
    return true;
  }

  private interrupted(): RunOutcome {
    this.emit({ type: 'saga.interrupted', reason: this.stopReason ?? 'lease-lost' });
    return 'interrupted';
  }

  private emit(event: DistributiveOmit<SagaEvent, 'sagaId' | 'saga' | 'at'>): void {
    this.deps.emit({
      ...event,
      sagaId: this.record.id,
      saga: this.def.name,
      at: this.deps.clock.now(),
    });
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

class SagaInterrupted extends Error {
  constructor(readonly reason: StopReason) {
    super(`saga run interrupted: ${reason}`);
  }
}

class SiblingFailed extends Error {
  constructor(readonly step: string) {
    super(`aborted because step "${step}" failed`);
  }
}

/** A step that took effect, or may have (a remote step whose reply never came, or is still out). */
function needsCompensation(state: StepRecord): boolean {
  return (
    state.status === 'completed' ||
    state.status === 'timed_out' ||
    state.status === 'waiting' ||
    state.status === 'compensating'
  );
}

/** Codes of errors retrying cannot fix. */
const PERMANENT_CODES = new Set(['SAGA_DEFINITION_INVALID', 'SAGA_COMMAND_INVALID']);

function retryableError(policy: RetryPolicy, error: unknown): boolean {
  // Retrying cannot make a result serialisable or a definition valid.
  if (error instanceof NotSerializableError) return false;
  if (error instanceof SagaOutboxError && !(error instanceof StepTimeoutError))
    return isRetryable(policy, error) && !PERMANENT_CODES.has(error.code);
  return isRetryable(policy, error);
}

function describe(error: unknown): string {
  if (error instanceof Error)
    return `${error.name === 'Error' ? '' : `${error.name}: `}${error.message}`;
  return String(error);
}
