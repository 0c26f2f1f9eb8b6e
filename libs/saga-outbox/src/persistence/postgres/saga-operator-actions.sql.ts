/**
 * The statements of an operator's action on one saga (`sage sagas retry|compensate`, the
 * console's buttons), run in this order in ONE transaction by PostgresSagaOperatorActions: lock,
 * read (selectSaga), reset steps (retry), move the saga, audit entry. Statuses come from
 * OPERATOR_SAGA_TRANSITIONS / OPERATOR_STEP_RETRY (core/saga/saga-operator-actions.ts), never input.
 */
import {
  OPERATOR_SAGA_TRANSITIONS,
  OPERATOR_STEP_RETRY,
  type SagaOperatorAction,
} from '../../core/saga/saga-operator-actions';
import type { Statement } from './saga-queries.sql';
import type { SagaSchema } from './schema-name';

const statuses = (list: readonly string[]): string => `(${list.map((s) => `'${s}'`).join(', ')})`;

/**
 * 1. Locks the saga row FOR UPDATE: a worker's fenced step commit (FOR SHARE on this row), its
 *    status changes and a recovery claim (FOR UPDATE SKIP LOCKED skips it) wait for or miss this
 *    transaction, so what the action reads next (and compares with what the operator saw, in
 *    JavaScript: `updated_at` to the millisecond, as the operator was shown it) stays true until it
 *    commits. Returns the database clock, which the plan judges deadlines by.
 */
export function lockSagaForOperator(
  t: SagaSchema,
  p: { sagaId: string },
): Statement<{ id: string; now: Date }> {
  return {
    text: `SELECT id, clock_timestamp() AS now FROM ${t.sagaInstance} WHERE id = $1 FOR UPDATE`,
    values: [p.sagaId],
  };
}

/**
 * 2. retry: the steps that failed going forward start over, `pending` with no attempts and no
 *    error; completed steps keep their results (they never run again).
 */
export function resetStepsForRetry(
  t: SagaSchema,
  p: { sagaId: string; steps: readonly string[] },
): Statement<{ name: string }> {
  return {
    text: `
      UPDATE ${t.sagaStep}
      SET status = '${OPERATOR_STEP_RETRY.to}', attempts = 0, error = NULL, reply_deadline = NULL
      WHERE saga_id = $1 AND name = ANY($2::text[]) AND status IN ${statuses(OPERATOR_STEP_RETRY.from)}
      RETURNING name`,
    values: [p.sagaId, [...p.steps]],
  };
}

/**
 * 3. Moves the saga by the action's transition, conditional on its status (the row is locked since
 *    step 1, so this only guards against a plan that disagrees with the transition table). Takes ownership away (a worker still driving it loses its fence: its next
 *    step commit or status change is refused and it stops) and makes it due at once, so the
 *    recovery loop claims it. retry clears the error (kept in the audit log) and lifts a deadline
 *    that has passed; compensate records why it compensates.
 */
export function moveSagaForOperator(
  t: SagaSchema,
  p: {
    action: SagaOperatorAction;
    sagaId: string;
    /** compensate: the reason stored as the saga's error. */
    reason: string | null;
  },
): Statement<{ id: string }> {
  const move = OPERATOR_SAGA_TRANSITIONS[p.action];
  const retry = p.action === 'retry';
  return {
    text: `
      UPDATE ${t.sagaInstance}
      SET status = '${move.to}', owner = NULL, lease_until = NULL,
          wake_at = clock_timestamp(), updated_at = clock_timestamp(),
          ${
            retry
              ? `error = NULL, failed_step = NULL,
          deadline_at = CASE WHEN deadline_at <= clock_timestamp() THEN NULL ELSE deadline_at END`
              : `error = $2`
          }
      WHERE id = $1 AND status IN ${statuses(move.from)}
      RETURNING id`,
    values: retry ? [p.sagaId] : [p.sagaId, p.reason],
  };
}
