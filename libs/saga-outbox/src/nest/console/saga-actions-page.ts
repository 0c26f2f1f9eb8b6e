import type { SagaRecord } from '../../core/ports/saga-store';
import type { SagaDefinition } from '../../core/saga/saga-definition';
import {
  planSagaAction,
  SagaActionRefusedError,
  type CompensationDefinition,
  type SagaOperatorAction,
  type SagaOperatorPlan,
} from '../../core/saga/saga-operator-actions';
import { csrfField, layout, type PageContext } from './console-layout';
import { html, query, type Html } from './html';

/** The console's saga actions: the same plans, refusals and store as `sage sagas retry|compensate`. */
export const SAGA_ACTIONS: Record<
  SagaOperatorAction,
  { title: string; button: string; cls: string; explain: string; done: string }
> = {
  retry: {
    title: 'Retry this saga',
    button: 'Retry',
    cls: 'primary',
    explain:
      'Its failed steps run again from attempt 1 (completed steps never run again), a deadline that has passed is lifted, and a worker takes it up. Fix the cause first, or it fails again.',
    done: 'Retried: the saga is running again; a worker takes it up.',
  },
  compensate: {
    title: 'Compensate this saga',
    button: 'Compensate',
    cls: 'danger',
    explain:
      'The saga gives up going forward: any worker driving it loses it, and its completed steps are undone in reverse order. This cannot be taken back.',
    done: 'Compensating: a worker undoes its completed steps.',
  },
};

/** What compensate needs of a registered definition (its pivots and order). */
export function compensationDefinition(
  definition: SagaDefinition<unknown, unknown> | undefined,
): CompensationDefinition | undefined {
  if (!definition) return undefined;
  return {
    version: definition.version,
    pivots: definition.order.filter((n) => definition.steps.get(n)?.pivot === true),
    reverseOrder: [...definition.order].reverse(),
  };
}

/** The plan of `action` for the saga as it is, or undefined when it is refused. */
export function sagaActionPlan(
  action: SagaOperatorAction,
  saga: SagaRecord,
  now: Date,
  definition: SagaDefinition<unknown, unknown> | undefined,
): SagaOperatorPlan | undefined {
  try {
    return planSagaAction(action, saga, now, compensationDefinition(definition));
  } catch (error) {
    if (error instanceof SagaActionRefusedError) return undefined;
    throw error;
  }
}

/** The Retry / Compensate links of a saga page: only the allowed ones, only when actions are on. */
export function sagaActionButtons(
  ctx: PageContext,
  saga: SagaRecord,
  now: Date,
  definition: SagaDefinition<unknown, unknown> | undefined,
  done: SagaOperatorAction | undefined,
): Html {
  const notice = done
    ? html`<p class="notice" data-testid="notice">${SAGA_ACTIONS[done].done}</p>`
    : '';
  if (!ctx.canAct) return html`${notice}`;
  const allowed = (['retry', 'compensate'] as const).filter((a) =>
    sagaActionPlan(a, saga, now, definition),
  );
  if (!allowed.length) return html`${notice}`;
  return html`${notice}
    <div class="card" data-testid="saga-actions">
      ${allowed.map(
        (a, i) =>
          html`${i ? ' · ' : ''}<a
              href="${ctx.base}/sagas/${saga.id}/confirm${query({ action: a })}"
              data-testid="saga-${a}"
              >${SAGA_ACTIONS[a].button}…</a
            >`,
      )}
    </div>`;
}

/** The confirmation step of an action: what it will change, and the form that does it. */
export function confirmSagaActionPage(
  ctx: PageContext,
  saga: SagaRecord,
  plan: SagaOperatorPlan,
): Html {
  const a = SAGA_ACTIONS[plan.action];
  const steps =
    plan.action === 'retry'
      ? html`<dt>steps run again</dt>
          <dd>${plan.retrySteps.join(', ') || 'none failed: the unfinished ones run on'}</dd>`
      : html`<dt>steps to undo, in order</dt>
          <dd>${plan.stepsToUndo.join(', ') || 'none took effect'}</dd>`;
  const body = html`<h1>${a.title}</h1>
    <div class="card">
      <dl class="fields">
        <dt>saga</dt>
        <dd class="mono">${saga.id}</dd>
        <dt>name</dt>
        <dd>${saga.name}</dd>
        <dt>status</dt>
        <dd>${plan.from} → ${plan.to}</dd>
        ${steps}
        <dt>error</dt>
        <dd class="error">${saga.error ?? '-'}</dd>
      </dl>
    </div>
    <p>${a.explain}</p>
    <p class="muted">Recorded in the audit log as ${ctx.grant.operator ?? 'the database role'}.</p>
    <form
      method="post"
      action="${ctx.base}/sagas/${saga.id}/${plan.action}"
      data-confirm="${a.title}"
    >
      ${csrfField(ctx)}<input type="hidden" name="confirm" value="yes" />
      <input type="hidden" name="seenStatus" value="${saga.status}" />
      <input type="hidden" name="seenUpdatedAt" value="${saga.updatedAt.toISOString()}" />
      <button class="${a.cls}" type="submit" data-testid="confirm">${a.button}</button>
      <a href="${ctx.base}/sagas/${saga.id}">cancel</a>
    </form>`;
  return layout(ctx, 'sagas', a.title, body);
}
