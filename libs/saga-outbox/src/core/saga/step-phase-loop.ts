/**
 * The attempt/retry loop of one step phase: a step going forward, or its compensation. Both run
 * the same way. Each attempt runs in its own transaction, under the step's per-attempt timeout.
 * What the body throws is a failed attempt: recorded, then retried after a jittered backoff while
 * the retry policy allows, or final. A lost lease or store trouble is not: the saga stops without
 * counting an attempt. A remote phase's command leaves the phase awaiting its reply; resumed with
 * the reply overdue, the silence counts as a failed attempt.
 *
 * What differs between the phases — the body, the retry policy, the attempt budget, the signal
 * that aborts it — comes in a StepPhaseSpec; the events and the store's transitions follow from
 * the phase.
 */
import { LeaseLostError, SagaStoreUnavailableError, StepTimeoutError } from '../errors';
import type { JsonValue } from '../json';
import type { Clock } from '../ports/clock';
import type { SageLogger } from '../ports/logger';
import {
  StepFailure,
  type AwaitReply,
  type Fence,
  type SagaStore,
  type StepPhase,
  type StepRecord,
  type StepTxOptions,
  type StepTxOutcome,
} from '../ports/saga-store';
import { backoffDelay, type RetryPolicy } from './retry-policy';
import type { SagaEventBody } from './saga-events';
import { retryableStepError, stepErrorText } from './step-errors';
import { awaitingReplyStatus, stepPhaseFailed, stepPhaseOpen } from './step-transitions';

/** How a phase ended here. */
export type PhaseResult =
  /** `sagaCompleted`: the phase's transaction also completed the saga (StepPhaseSpec.complete). */
  | { kind: 'done'; result: JsonValue; sagaCompleted?: boolean }
  /** Failed for good at attempt `attempt`. */
  | { kind: 'failed'; error: unknown; attempt: number }
  /** A remote phase's command is out; its reply is awaited. */
  | { kind: 'waiting' }
  /** Stopped before it ended (the saga stopped, timed out, or a sibling failed). */
  | { kind: 'aborted' };

/** How one attempt went (a failure is not judged yet). */
type AttemptResult = Exclude<PhaseResult, { kind: 'failed' }> | { kind: 'failed'; error: unknown };

/** What an attempt's body returns: the phase's result, or (a remote phase) its reply timeout. */
export interface PhaseBodyResult {
  result: JsonValue;
  awaitReply?: AwaitReply;
}

/** One attempt of the phase's user code, in the attempt's transaction `tx`. */
export type PhaseBody<Tx> = (
  tx: Tx,
  signal: AbortSignal,
  attempt: number,
) => Promise<PhaseBodyResult>;

/** One phase of one step, as the runner asks for it. */
export interface StepPhaseSpec<Tx> {
  readonly step: { readonly name: string; readonly timeoutMs: number | null };
  readonly phase: StepPhase;
  /** The step as stored when the phase starts: attempts so far, and whether a command is out. */
  readonly state: StepRecord | undefined;
  /** Which errors are retried, and the backoff between attempts. */
  readonly retry: RetryPolicy;
  /** Attempts allowed, asked after every failure (forward: raised once a pivot completed). */
  readonly maxAttempts: () => number;
  /**
   * Asked when a retryable failure has used up `maxAttempts()`, before it is recorded as the
   * phase's final failure: resolves once the budget can no longer change (forward: no pivot runs
   * beside the step, since one that completes raises it). `maxAttempts()` is asked again after.
   */
  readonly budgetSettled?: () => Promise<void>;
  /** Aborts the phase: the saga stops or times out, or a sibling failed. */
  readonly signal: AbortSignal;
  readonly body: PhaseBody<Tx>;
  /** The saga's last open step: each attempt that completes it also completes the saga. */
  readonly complete?: StepTxOptions<Tx>['complete'];
  /**
   * An attempt that already ran and failed, not recorded yet (SagaOptions.firstStepInStart: attempt
   * 1 ran in start()'s transaction, which rolled back): judged and recorded first, as if it had
   * just failed here.
   */
  readonly failedAttempt?: { readonly attempt: number; readonly error: unknown };
}

/** What the loop needs from the runner driving the saga. */
export interface StepPhaseHost<Tx> {
  readonly store: SagaStore<Tx>;
  readonly fence: Fence;
  readonly sagaName: string;
  readonly clock: Clock;
  readonly logger: SageLogger;
  readonly random: () => number;
  emit(event: SagaEventBody): void;
  /** Stops driving the saga; recovery resumes it. */
  stop(reason: 'lease-lost' | 'store-error'): void;
  /** True once the saga is no longer driven here. */
  stopped(): boolean;
}

/**
 * What the phases report, and how. Compensations report no start and no duration. After an
 * overdue reply a forward step waits its backoff before sending again; a compensation resends at
 * once.
 */
const PHASES = {
  forward: { retrying: 'step.retrying', failed: 'step.failed', backOffAfterNoReply: true },
  compensate: {
    retrying: 'compensation.retrying',
    failed: 'compensation.failed',
    backOffAfterNoReply: false,
  },
} as const satisfies Record<StepPhase, unknown>;

export class StepPhaseLoop<Tx> {
  constructor(private readonly host: StepPhaseHost<Tx>) {}

  /** Runs the phase until it is done, failed for good, awaiting a reply, or aborted. */
  async run(spec: StepPhaseSpec<Tx>): Promise<PhaseResult> {
    let attempt =
      (spec.phase === 'forward' ? spec.state?.attempts : spec.state?.compensationAttempts) ?? 0;
    if (spec.state?.status === awaitingReplyStatus(spec.phase)) {
      const resumed = await this.resumeAwaitingReply(spec, spec.state, attempt);
      if (resumed) return resumed;
    }
    if (spec.failedAttempt) {
      attempt = spec.failedAttempt.attempt;
      const { error } = spec.failedAttempt;
      const final = await this.recordFailure(spec, attempt, error);
      if (final) return final;
      if (!(await this.backOff(spec, attempt, error))) return { kind: 'aborted' };
    }
    for (;;) {
      if (spec.signal.aborted) return { kind: 'aborted' };
      attempt++;
      const began = this.host.clock.now();
      if (spec.phase === 'forward')
        this.host.emit({ type: 'step.started', step: spec.step.name, attempt });
      const outcome = await this.attempt(spec, attempt);
      if (outcome.kind === 'waiting') {
        this.host.emit({ type: 'step.waiting', step: spec.step.name, attempt, phase: spec.phase });
        return outcome;
      }
      if (outcome.kind === 'done') {
        this.emitDone(spec, attempt, began);
        return outcome;
      }
      if (outcome.kind === 'aborted') return outcome;
      const final = await this.recordFailure(spec, attempt, outcome.error);
      if (final) return final;
      if (!(await this.backOff(spec, attempt, outcome.error))) return { kind: 'aborted' };
    }
  }

  /**
   * Resumed with a command out: waits on (`waiting`), or counts the overdue reply as a failed
   * attempt. Undefined: send the command again.
   */
  private async resumeAwaitingReply(
    spec: StepPhaseSpec<Tx>,
    state: StepRecord,
    attempt: number,
  ): Promise<PhaseResult | undefined> {
    const overdue = this.replyOverdue(spec, state, attempt);
    if (!overdue) return { kind: 'waiting' };
    const settled = await this.recordReplyTimeout(spec, attempt, overdue);
    if (settled) return settled;
    if (PHASES[spec.phase].backOffAfterNoReply && !(await this.backOff(spec, attempt, overdue)))
      return { kind: 'aborted' };
    return undefined;
  }

  /** The reply of a resumed remote phase is overdue: the timeout error, or undefined while it is not. */
  private replyOverdue(
    spec: StepPhaseSpec<Tx>,
    state: StepRecord,
    attempt: number,
  ): StepTimeoutError | undefined {
    const due = state.replyDeadline;
    if (due === null || due.getTime() > this.host.clock.now()) return undefined;
    const { name, timeoutMs } = spec.step;
    return new StepTimeoutError(
      this.host.sagaName,
      spec.phase === 'forward' ? name : `${name} (compensation)`,
      timeoutMs ?? 0,
      `no reply to attempt ${attempt}`,
    );
  }

  /**
   * Records a remote attempt whose reply never came. A reply may land at the same moment: the store
   * leaves a step that already moved on untouched, and the step's stored state decides. Returns the
   * settled outcome (the reply's, or the final failure), or undefined to send the command again.
   */
  private async recordReplyTimeout(
    spec: StepPhaseSpec<Tx>,
    attempt: number,
    error: StepTimeoutError,
  ): Promise<PhaseResult | undefined> {
    const { name } = spec.step;
    const final = await this.outOfAttempts(spec, attempt);
    const text = stepErrorText(error);
    // No reply: the participant may or may not have acted, so a final forward timeout is
    // `timed_out` (compensated), not `failed`.
    await this.host.store.recordStepFailure(
      this.host.fence,
      final
        ? StepFailure.unanswered(name, spec.phase, attempt, text)
        : StepFailure.retryable(name, spec.phase, attempt, text),
    );
    const settled = await this.storedOutcome(spec);
    if (settled) return settled.kind === 'failed' ? { ...settled, attempt } : settled;
    if (!final) return undefined;
    this.host.emit({ type: PHASES[spec.phase].failed, step: name, attempt, error: text });
    return { kind: 'failed', error, attempt };
  }

  /** A failed attempt: recorded; the phase's final failure when it may not be retried. */
  private async recordFailure(
    spec: StepPhaseSpec<Tx>,
    attempt: number,
    error: unknown,
  ): Promise<PhaseResult | undefined> {
    const { name } = spec.step;
    const final =
      !retryableStepError(spec.retry, error) || (await this.outOfAttempts(spec, attempt));
    const text = stepErrorText(error);
    await this.host.store.recordStepFailure(
      this.host.fence,
      final
        ? StepFailure.final(name, spec.phase, attempt, text)
        : StepFailure.retryable(name, spec.phase, attempt, text),
    );
    if (!final) return undefined;
    this.host.emit({ type: PHASES[spec.phase].failed, step: name, attempt, error: text });
    return { kind: 'failed', error, attempt };
  }

  /**
   * True when `attempt` used up the budget: asked again once the budget has settled (a pivot beside
   * the step completed or ended), so a step is not failed for good by a budget about to be raised.
   */
  private async outOfAttempts(spec: StepPhaseSpec<Tx>, attempt: number): Promise<boolean> {
    if (attempt < spec.maxAttempts()) return false;
    if (!spec.budgetSettled) return true;
    await spec.budgetSettled();
    // Stopped meanwhile: the attempt is recorded, not judged; whoever resumes the saga judges it.
    if (this.host.stopped()) return false;
    return attempt >= spec.maxAttempts();
  }

  /** Reports the retry and waits its jittered backoff; false when the phase was aborted meanwhile. */
  private async backOff(
    spec: StepPhaseSpec<Tx>,
    attempt: number,
    error: unknown,
  ): Promise<boolean> {
    const delayMs = backoffDelay(spec.retry, attempt, this.host.random);
    this.host.emit({
      type: PHASES[spec.phase].retrying,
      step: spec.step.name,
      attempt,
      delayMs,
      error: stepErrorText(error),
    });
    try {
      await this.host.clock.sleep(delayMs, spec.signal);
      return true;
    } catch {
      return false;
    }
  }

  private emitDone(spec: StepPhaseSpec<Tx>, attempt: number, began: number): void {
    const step = spec.step.name;
    if (spec.phase === 'compensate') {
      this.host.emit({ type: 'compensation.completed', step, attempt });
      return;
    }
    const durationMs = this.host.clock.now() - began;
    this.host.emit({ type: 'step.completed', step, attempt, durationMs });
  }

  /**
   * One attempt of the phase in its own transaction. The per-attempt timeout aborts the body's
   * signal; the transaction ends only after the body settles, and a timed-out attempt is rolled
   * back even if its body finished late, so no write escapes the step's transaction.
   */
  private async attempt(spec: StepPhaseSpec<Tx>, attempt: number): Promise<AttemptResult> {
    const { step, phase, signal: parent } = spec;
    const controller = new AbortController();
    const onParent = (): void => controller.abort(parent.reason);
    if (parent.aborted) return { kind: 'aborted' };
    parent.addEventListener('abort', onParent, { once: true });
    const timeoutMs = step.timeoutMs;
    const timer =
      timeoutMs !== null
        ? setTimeout(
            () => controller.abort(new StepTimeoutError(this.host.sagaName, step.name, timeoutMs)),
            timeoutMs,
          )
        : undefined;
    let bodyFailed = false;
    let outcome: StepTxOutcome<{ result: JsonValue; awaiting: boolean }>;
    try {
      outcome = await this.host.store.runStepTransaction(
        this.host.fence,
        step.name,
        phase,
        attempt,
        async (tx) => {
          try {
            const { result, awaitReply } = await spec.body(tx, controller.signal, attempt);
            if (controller.signal.aborted) throw controller.signal.reason;
            return { result, awaitReply, value: { result, awaiting: awaitReply !== undefined } };
          } catch (error) {
            bodyFailed = true;
            throw error;
          }
        },
        { complete: spec.complete },
      );
    } catch (error) {
      return this.unfinishedAttempt(spec, attempt, error, bodyFailed, controller.signal);
    } finally {
      clearTimeout(timer);
      parent.removeEventListener('abort', onParent);
    }
    if (outcome.kind === 'done') {
      if (outcome.value.awaiting) return { kind: 'waiting' };
      return outcome.sagaCompleted
        ? { kind: 'done', result: outcome.value.result, sagaCompleted: true }
        : { kind: 'done', result: outcome.value.result };
    }
    // Ended earlier (by a previous owner, a COMMIT whose outcome we never heard, or a reply): as
    // stored. A failing load is store trouble and propagates as such to the caller.
    return (await this.storedOutcome(spec)) ?? { kind: 'done', result: null };
  }

  /**
   * An attempt whose transaction threw. Only what the body threw (or its timeout) is a failed
   * attempt. When the store's own bookkeeping fails (SagaStoreUnavailableError) or the lease is
   * lost, the saga stops here without counting an attempt: a database outage must not burn the
   * retry budget and start compensation. Recovery resumes the saga once its lease expires.
   */
  private unfinishedAttempt(
    spec: StepPhaseSpec<Tx>,
    attempt: number,
    error: unknown,
    bodyFailed: boolean,
    signal: AbortSignal,
  ): AttemptResult {
    // Store signals count only from the store: a body that throws one has simply failed.
    if (!bodyFailed && error instanceof LeaseLostError) {
      this.host.stop('lease-lost');
      return { kind: 'aborted' };
    }
    if (!bodyFailed && error instanceof SagaStoreUnavailableError) {
      this.host.stop('store-error');
      this.host.logger.error('saga store failed around a step; recovery will resume the saga', {
        event: 'saga.store_error',
        sagaId: this.host.fence.sagaId,
        step: spec.step.name,
        phase: spec.phase,
        attempt,
        error: stepErrorText(error),
      });
      return { kind: 'aborted' };
    }
    if (this.host.stopped()) return { kind: 'aborted' };
    const reason: unknown = signal.aborted ? signal.reason : undefined;
    if (reason instanceof StepTimeoutError) return { kind: 'failed', error: reason };
    if (spec.signal.aborted) return { kind: 'aborted' };
    return { kind: 'failed', error };
  }

  /** How the phase ended, as stored (after `already-done`, or a reply racing a timeout); undefined while open. */
  private async storedOutcome(spec: StepPhaseSpec<Tx>): Promise<AttemptResult | undefined> {
    const fresh = await this.host.store.load(this.host.fence.sagaId);
    const state = fresh?.steps.find((x) => x.name === spec.step.name);
    if (!state || stepPhaseOpen(spec.phase, state.status)) return undefined;
    if (stepPhaseFailed(spec.phase, state.status)) {
      const fallback = spec.phase === 'forward' ? 'step failed' : 'compensation failed';
      return { kind: 'failed', error: new Error(state.error ?? fallback) };
    }
    return { kind: 'done', result: spec.phase === 'forward' ? state.result : null };
  }
}
