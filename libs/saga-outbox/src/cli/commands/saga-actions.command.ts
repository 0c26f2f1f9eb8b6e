import type { SagaRecord } from '../../core/ports/saga-store';
import {
  planSagaAction,
  type SagaOperatorAction,
  type SagaOperatorPlan,
} from '../../core/saga/saga-operator-actions';
import { CommandFailedError } from '../cli-errors';
import { expectArgs, uuidArgument, type CommandContext, type CommandSpec } from '../command';
import { CHANGE_OPTIONS, changeMode, confirmationRequired } from '../confirm-change';
import { json } from '../format';
import { OPERATOR } from '../operator';

export const sagasRetryCommand: CommandSpec = {
  path: ['sagas', 'retry'],
  summary: 'run a saga that failed going forward again, from its failed steps (needs --yes)',
  arguments: '<id>',
  options: { ...CHANGE_OPTIONS, operator: OPERATOR },
  details: `For a saga that ended failed going forward: a step used up its attempts (or got no reply) past
its pivot, or the saga timed out there, or it could not be read. Fix the cause first, then retry:
its failed and timed-out steps go back to pending with no attempts, completed steps keep their
results and never run again, a deadline that has passed is lifted, and the saga becomes due at
once: an app's recovery loop claims it and runs it on. Refused (exit 1, naming the status) for any
other status, for a saga whose compensation failed (undo that step by hand), and when the saga
changed since it was read. The change and an audit entry (saga.retry_requested, naming
--operator) commit together. Without --yes nothing changes: what would change is shown, exit 2.

Example:
  sage sagas retry 0193a1e2-7c4b-7f00-8a1b-2f6c1d0e9a11 --operator alice --yes`,
  run: (ctx) => runAction(ctx, 'retry'),
};

export const sagasCompensateCommand: CommandSpec = {
  path: ['sagas', 'compensate'],
  summary:
    'undo a stuck saga: move it to compensating so its completed steps are undone (needs --yes)',
  arguments: '<id>',
  options: { ...CHANGE_OPTIONS, operator: OPERATOR },
  details: `An operator's decision to give up on a saga still going forward (running, or waiting for a reply
past its deadline): it moves to compensating, any worker driving it loses it, and an app's recovery
loop undoes its completed steps (and those whose reply never came) in reverse order, as after a
failure. Past a pivot nothing is undone: the app's runner refuses when a pivot step completed and
parks the saga as failed, naming the pivot (the CLI reads only the database, not the definition;
the console checks the pivot before it asks). Refused (exit 1, naming the status) for a saga
compensating already, failed (past its pivot, or its compensation failed) or ended, and when the
saga changed since it was read. The change and an audit entry (saga.compensation_requested, naming
--operator) commit together. Without --yes nothing changes: what would change is shown, exit 2.

Example:
  sage sagas compensate 0193a1e2-7c4b-7f00-8a1b-2f6c1d0e9a11 --operator alice --yes`,
  run: (ctx) => runAction(ctx, 'compensate'),
};

async function runAction(ctx: CommandContext, action: SagaOperatorAction): Promise<void> {
  const [raw] = expectArgs(ctx, ['<id>']);
  const id = uuidArgument(raw!, 'the saga id');
  const mode = changeMode(ctx);
  const db = await ctx.db();
  const [now, saga] = await Promise.all([db.operator.databaseNow(), db.sagas.load(id)]);
  if (!saga) throw new CommandFailedError(`saga ${id} not found in schema "${db.schema}"`);
  // Refusals (wrong status, compensation failed) come before any preview: nothing to confirm.
  const preview = planSagaAction(action, saga, now);
  if (mode !== 'apply') {
    ctx.io.out(
      ctx.json
        ? json({ dryRun: true, would: planJson(preview) })
        : `${describePlan(preview, saga)}dry run: nothing changed\n`,
    );
    if (mode === 'unconfirmed')
      throw confirmationRequired(`${action} saga ${id} (${preview.from} → ${preview.to})`);
    return;
  }
  const applied = await db.sagaActions.apply(
    action,
    id,
    { status: saga.status, updatedAt: saga.updatedAt },
    (fresh, at) => planSagaAction(action, fresh, at),
  );
  ctx.io.out(
    ctx.json
      ? json({ done: planJson(applied) })
      : `${describePlan(applied, saga)}${action === 'retry' ? 'retried' : 'compensating'}: saga ${id} is ${applied.to} and due; an app's recovery loop takes it up\n`,
  );
}

function planJson(p: SagaOperatorPlan): Record<string, unknown> {
  return {
    action: p.action,
    sagaId: p.sagaId,
    from: p.from,
    to: p.to,
    retrySteps: p.retrySteps,
    stepsToUndo: p.stepsToUndo,
    liftsDeadline: p.liftsDeadline,
  };
}

function describePlan(p: SagaOperatorPlan, saga: SagaRecord): string {
  const lines = [`saga ${p.sagaId} (${saga.name}): ${p.from} → ${p.to}`];
  if (p.action === 'retry') {
    lines.push(
      p.retrySteps.length
        ? `steps run again from attempt 1: ${p.retrySteps.join(', ')}`
        : 'no failed step: the steps not completed run on',
    );
    if (saga.error) lines.push(`error cleared (kept in the audit log): ${saga.error}`);
    if (p.liftsDeadline) lines.push('its deadline has passed and is lifted');
  } else {
    lines.push(
      p.stepsToUndo.length
        ? `steps to undo, in this order: ${p.stepsToUndo.join(', ')}`
        : 'no step took effect: nothing to undo, it ends compensated',
    );
    lines.push('if a pivot step completed, the app refuses and parks the saga as failed');
  }
  return lines.map((l) => `${l}\n`).join('');
}
