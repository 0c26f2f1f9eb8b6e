/**
 * What an operator may do to one saga by hand (`sage sagas retry|compensate`, the console's
 * buttons), decided once here over the stored saga, and the transitions those decisions make.
 * The stores apply a plan in one transaction, with the saga row locked, after planning again on
 * what they read under the lock (so a saga that changed meanwhile is judged as it is now).
 *
 * - retry: a saga that ended `failed` going forward (a step used up its attempts, or the saga timed
 *   out, past its pivot; or it could not be read) runs forward again: its `failed` / `timed_out`
 *   steps go back to `pending` with no attempts, and the recovery loop claims it. A saga whose
 *   compensation failed is not retried (a step is half undone: an operator undoes it by hand).
 * - compensate: a live saga going forward (`running`, or `waiting` for a reply) that no pivot got
 *   past is moved to `compensating`: the recovery loop undoes its completed steps in reverse order.
 *   Past a pivot nothing is undone (DESIGN.md §3), and the runner enforces it too (a saga moved to
 *   `compensating` past a pivot ends `failed`, naming the pivot).
 */
import { SagaOutboxError } from '../errors';
import type { SagaRecord, SagaStatus, StepStatus } from '../ports/saga-store';

/** An operator's action on a saga. */
export type SagaOperatorAction = 'retry' | 'compensate';

/** A saga-level transition an operator makes (never the engine on its own). */
export interface OperatorSagaTransition {
  readonly from: readonly SagaStatus[];
  readonly to: SagaStatus;
  readonly label: string;
}

/** The saga transitions of each operator action; the SQL takes its statuses from here. */
export const OPERATOR_SAGA_TRANSITIONS = {
  retry: {
    from: ['failed'],
    to: 'running',
    label: 'operator: sage sagas retry (failed going forward, cause fixed)',
  },
  compensate: {
    from: ['running', 'waiting'],
    to: 'compensating',
    label: 'operator: sage sagas compensate (stuck, no pivot completed)',
  },
} as const satisfies Record<SagaOperatorAction, OperatorSagaTransition>;

/** What retry does to the steps that failed going forward: run them again from no attempts. */
export const OPERATOR_STEP_RETRY = {
  from: ['failed', 'timed_out'] as readonly StepStatus[],
  to: 'pending' as StepStatus,
};

/** Step statuses that show compensation started (a saga with one failed while compensating). */
const COMPENSATION_STEP_STATUSES: readonly StepStatus[] = [
  'compensating',
  'compensated',
  'compensation_failed',
];

/** What an action will change, as planned from the stored saga. */
export interface SagaOperatorPlan {
  readonly action: SagaOperatorAction;
  readonly sagaId: string;
  readonly from: SagaStatus;
  readonly to: SagaStatus;
  /** The saga's `updated_at` the plan was made on (the store refuses when it moved). */
  readonly seenUpdatedAt: Date;
  /** retry: the steps put back to `pending` with no attempts. */
  readonly retrySteps: readonly string[];
  /** compensate: the steps that took effect (or may have), which the engine will undo. */
  readonly stepsToUndo: readonly string[];
  /** retry: the saga's deadline had passed, so retry lifts it (else it would fail again at once). */
  readonly liftsDeadline: boolean;
}

/** An operator's action is not allowed for this saga as it is now (code SAGA_ACTION_REFUSED). */
export class SagaActionRefusedError extends SagaOutboxError {
  constructor(
    readonly action: SagaOperatorAction,
    readonly sagaId: string,
    /** The saga's status when it was refused. */
    readonly status: SagaStatus,
    message: string,
  ) {
    super('SAGA_ACTION_REFUSED', message);
  }
}

/** `failed` reached going forward: no step of it was compensated (or started to be). */
function failedGoingForward(saga: SagaRecord): boolean {
  return !saga.steps.some((s) => COMPENSATION_STEP_STATUSES.includes(s.status));
}

/** Plans `retry`, or throws SagaActionRefusedError saying why not and what to do instead. */
export function planSagaRetry(saga: SagaRecord, now: Date): SagaOperatorPlan {
  const t = OPERATOR_SAGA_TRANSITIONS.retry;
  const refuse = (why: string): never => {
    throw new SagaActionRefusedError(
      'retry',
      saga.id,
      saga.status,
      `cannot retry saga ${saga.id}: it is ${saga.status}; ${why}`,
    );
  };
  if (!(t.from as readonly SagaStatus[]).includes(saga.status)) {
    if (saga.status === 'running' || saga.status === 'waiting' || saga.status === 'compensating')
      refuse(
        'retry is for a saga that ended failed; a live saga is still driven by the engine (to undo a stuck one: sage sagas compensate)',
      );
    refuse(`retry is only for a failed saga, and a ${saga.status} saga has ended for good`);
  }
  if (!failedGoingForward(saga)) {
    const step = saga.steps.find((s) => s.status === 'compensation_failed');
    refuse(
      `it failed while compensating${step ? ` (compensation of step "${step.name}" failed)` : ''}, so a step may be half undone: undo it by hand (docs/runbooks/saga-stuck.md)`,
    );
  }
  return {
    action: 'retry',
    sagaId: saga.id,
    from: saga.status,
    to: t.to,
    seenUpdatedAt: saga.updatedAt,
    retrySteps: saga.steps
      .filter((s) => OPERATOR_STEP_RETRY.from.includes(s.status))
      .map((s) => s.name),
    stepsToUndo: [],
    liftsDeadline: saga.deadlineAt !== null && saga.deadlineAt.getTime() <= now.getTime(),
  };
}

/** What compensate needs of the saga's definition, when the caller has it (the console does). */
export interface CompensationDefinition {
  /** The definition version the saga's steps are judged by (another version: not used). */
  readonly version: string;
  /** Names of the definition's pivot steps. */
  readonly pivots: readonly string[];
  /** Steps in reverse topological order (the order compensation runs in). */
  readonly reverseOrder: readonly string[];
}

/** Step statuses the engine undoes (STEP_STATUSES_TO_COMPENSATE, forward side). */
const TOOK_EFFECT: readonly StepStatus[] = ['completed', 'timed_out', 'waiting'];

/**
 * Plans `compensate`, or throws SagaActionRefusedError. With the definition, a completed pivot is
 * refused here, naming it; without it (the CLI reads only the database) the runner refuses it when
 * it claims the saga, ending it `failed` with the pivot named.
 */
export function planSagaCompensation(
  saga: SagaRecord,
  definition?: CompensationDefinition,
): SagaOperatorPlan {
  const t = OPERATOR_SAGA_TRANSITIONS.compensate;
  const refuse = (why: string): never => {
    throw new SagaActionRefusedError(
      'compensate',
      saga.id,
      saga.status,
      `cannot compensate saga ${saga.id}: it is ${saga.status}; ${why}`,
    );
  };
  if (!(t.from as readonly SagaStatus[]).includes(saga.status)) {
    if (saga.status === 'failed')
      refuse(
        failedGoingForward(saga)
          ? 'a saga fails going forward only past its pivot, and past a pivot nothing is undone: fix the cause and run sage sagas retry'
          : 'its compensation already ran and failed: undo the step by hand (docs/runbooks/saga-stuck.md)',
      );
    if (saga.status === 'compensating') refuse('it is compensating already');
    refuse('it has ended');
  }
  const usable = definition && definition.version === saga.version ? definition : undefined;
  if (usable) {
    const pivot = saga.steps.find(
      (s) => s.status === 'completed' && usable.pivots.includes(s.name),
    );
    if (pivot)
      refuse(
        `its pivot step "${pivot.name}" completed, and past a pivot nothing is undone: let it finish, or fix the cause of its failures`,
      );
  }
  const byName = new Map(saga.steps.map((s) => [s.name, s]));
  const order = usable ? usable.reverseOrder : [...saga.steps].reverse().map((s) => s.name);
  return {
    action: 'compensate',
    sagaId: saga.id,
    from: saga.status,
    to: t.to,
    seenUpdatedAt: saga.updatedAt,
    retrySteps: [],
    stepsToUndo: order.filter((n) => {
      const s = byName.get(n);
      return s !== undefined && TOOK_EFFECT.includes(s.status);
    }),
    liftsDeadline: false,
  };
}

/** Plans `action` for `saga` (see planSagaRetry, planSagaCompensation). */
export function planSagaAction(
  action: SagaOperatorAction,
  saga: SagaRecord,
  now: Date,
  definition?: CompensationDefinition,
): SagaOperatorPlan {
  return action === 'retry' ? planSagaRetry(saga, now) : planSagaCompensation(saga, definition);
}

/** The saga as the operator saw it when asking: the store refuses when it changed since. */
export interface SagaSeen {
  readonly status: SagaStatus;
  readonly updatedAt: Date;
}

/** Applies operator actions atomically (PostgreSQL: PostgresSagaOperatorActions). */
export interface SagaOperatorActionStore {
  /**
   * In one transaction: locks the saga, reads it, refuses (SagaActionRefusedError) when it changed
   * since `seen` or `plan` refuses it as it is now, applies the plan and records an audit entry
   * naming the operator. Returns the plan applied.
   */
  apply(
    action: SagaOperatorAction,
    sagaId: string,
    seen: SagaSeen,
    plan: (saga: SagaRecord, now: Date) => SagaOperatorPlan,
  ): Promise<SagaOperatorPlan>;
}

/** The refusal for a saga that changed between the operator's look and the change. */
export function sagaChangedMeanwhile(
  action: SagaOperatorAction,
  saga: SagaRecord,
  seen: SagaSeen,
): SagaActionRefusedError {
  return new SagaActionRefusedError(
    action,
    saga.id,
    saga.status,
    `cannot ${action} saga ${saga.id}: it changed meanwhile (was ${seen.status} at ${seen.updatedAt.toISOString()}, now ${saga.status} at ${saga.updatedAt.toISOString()}); look at it again (sage sagas show ${saga.id}) and rerun`,
  );
}
