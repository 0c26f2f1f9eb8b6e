import type { SagaRecord, StepRecord } from '../../core/ports/saga-store';
import type { SagaDefinition } from '../../core/saga/saga-definition';
import { html, type Html } from './html';
import { jsonView } from './json-view';
import { badge, duration, layout, when, type PageContext } from './console-layout';
import { graphNodes, sagaGraphSvg, stepDisplayStatus } from './saga-graph';

interface TimelineEvent {
  at: Date;
  kind: 'ok' | 'bad' | 'comp' | 'info';
  text: Html;
}

/** What happened, in time order, from the saga's and its steps' timestamps. */
export function sagaTimeline(saga: SagaRecord): TimelineEvent[] {
  const events: TimelineEvent[] = [
    { at: saga.createdAt, kind: 'info', text: html`saga started (version ${saga.version})` },
  ];
  for (const step of saga.steps) {
    if (step.startedAt)
      events.push({
        at: step.startedAt,
        kind: 'info',
        text: html`<b>${step.name}</b>
          started${step.attempts > 1 ? html` (${step.attempts} attempts in all)` : ''}`,
      });
    if (step.completedAt) {
      const took = step.startedAt
        ? ` after ${duration((step.completedAt.getTime() - step.startedAt.getTime()) / 1000)}`
        : '';
      const failed = step.status === 'failed' || step.status === 'timed_out';
      events.push({
        at: step.completedAt,
        kind: failed ? 'bad' : 'ok',
        text: failed
          ? html`<b>${step.name}</b>
              ${step.status === 'timed_out' ? 'timed out' : 'failed'}${took}${step.error ? html`: <span class="error">${step.error}</span>` : ''}`
          : html`<b>${step.name}</b> completed${took}`,
      });
    } else if (step.error && (step.status === 'failed' || step.status === 'compensation_failed'))
      events.push({
        at: saga.updatedAt,
        kind: 'bad',
        text: html`<b>${step.name}</b> ${step.status.replace('_', ' ')}:
          <span class="error">${step.error}</span>`,
      });
    if (step.compensatedAt)
      events.push({
        at: step.compensatedAt,
        kind: 'comp',
        text: html`<b>${step.name}</b>
          compensated${step.compensationAttempts > 1 ? html` (${step.compensationAttempts} attempts)` : ''}`,
      });
  }
  if (saga.status === 'completed' || saga.status === 'compensated' || saga.status === 'failed')
    events.push({
      at: saga.updatedAt,
      kind: saga.status === 'completed' ? 'ok' : saga.status === 'compensated' ? 'comp' : 'bad',
      text: html`saga
      ${saga.status}${saga.error ? html`: <span class="error">${saga.error}</span>` : ''}`,
    });
  return events.sort((a, b) => a.at.getTime() - b.at.getTime());
}

function stepDuration(step: StepRecord): string {
  if (!step.startedAt || !step.completedAt) return '-';
  return duration((step.completedAt.getTime() - step.startedAt.getTime()) / 1000);
}

export function sagaPage(
  ctx: PageContext,
  saga: SagaRecord,
  definition: SagaDefinition<unknown, unknown> | undefined,
  now: Date,
  /** Retry / Compensate (saga-actions-page.ts), when allowed. */
  actions: Html | '' = '',
): Html {
  const { nodes, fromDefinition } = graphNodes(saga, definition);
  const versionNote = !definition
    ? html`<div class="warning" data-testid="definition-warning">
        Saga "${saga.name}" is not registered in this application: the graph follows the step
        records in order (dependencies unknown).
      </div>`
    : definition.version !== saga.version
      ? html`<div class="warning" data-testid="version-mismatch">
          Definition version mismatch: this saga runs version <code>${saga.version}</code>, this
          application registers version <code>${definition.version}</code>. Only workers that
          register version ${saga.version} can drive it; the graph follows its step records.
        </div>`
      : '';
  const steps = saga.steps.map(
    (st) =>
      html`<tr data-step="${st.name}">
        <td><b>${st.name}</b></td>
        <td>${badge(stepDisplayStatus(saga, st).replace(/ /g, '_'))}</td>
        <td class="num">${st.attempts}</td>
        <td class="num">${st.compensationAttempts}</td>
        <td>${when(st.startedAt, now)}</td>
        <td>${stepDuration(st)}</td>
        <td>${when(st.compensatedAt, now)}</td>
        <td>${when(st.replyDeadline, now)}</td>
        <td class="error">${st.error ?? ''}</td>
      </tr>`,
  );
  const results = saga.steps
    .filter((st) => st.result !== null)
    .map(
      (st) =>
        html`<h3 class="mono">${st.name}</h3>
          ${jsonView(st.result)}`,
    );
  const body = html`<h1>Saga ${saga.name} ${badge(saga.status)}</h1>
    ${versionNote}
    <div class="card">
      <dl class="fields">
        <dt>id</dt>
        <dd class="mono">${saga.id}</dd>
        <dt>definition version</dt>
        <dd class="mono">
          ${saga.version}${definition && definition.version === saga.version ? html` <span class="muted">(registered here)</span>` : ''}
        </dd>
        <dt>idempotency key</dt>
        <dd class="mono">${saga.idempotencyKey ?? '-'}</dd>
        <dt>created</dt>
        <dd>${when(saga.createdAt, now)}</dd>
        <dt>updated</dt>
        <dd>${when(saga.updatedAt, now)}</dd>
        <dt>owner</dt>
        <dd class="mono">
          ${saga.owner ?? '-'}${saga.leaseUntil ? html` (lease ${when(saga.leaseUntil, now)})` : ''}
        </dd>
        <dt>wake at</dt>
        <dd>${when(saga.wakeAt, now)}</dd>
        <dt>deadline</dt>
        <dd>${when(saga.deadlineAt, now)}</dd>
        <dt>failed step</dt>
        <dd>${saga.failedStep ?? '-'}</dd>
        <dt>error</dt>
        <dd class="error">${saga.error ?? '-'}</dd>
      </dl>
    </div>
    ${actions}
    <h2>Steps</h2>
    <div class="card" data-testid="graph">
      ${sagaGraphSvg(nodes)}
      <p class="muted">
        ${fromDefinition ? 'Drawn from the registered definition (dependencies).' : 'Drawn from the step records, in order.'}
      </p>
    </div>
    <div class="card">
      <table data-testid="steps">
        <thead>
          <tr>
            <th>step</th>
            <th>status</th>
            <th>attempts</th>
            <th>comp. attempts</th>
            <th>started</th>
            <th>took</th>
            <th>compensated</th>
            <th>reply deadline</th>
            <th>error</th>
          </tr>
        </thead>
        <tbody>
          ${steps}
        </tbody>
      </table>
    </div>
    <h2>Timeline</h2>
    <div class="card">
      <ol class="timeline" data-testid="timeline">
        ${sagaTimeline(saga).map((e) => html`<li class="${e.kind}"><span class="muted mono">${e.at.toISOString()}</span> ${e.text}</li>`)}
      </ol>
    </div>
    <h2>Input</h2>
    <div class="card" data-testid="input">${jsonView(saga.input)}</div>
    <h2>Step results</h2>
    <div class="card">${results.length ? results : html`<span class="muted">none</span>`}</div>
    <p class="muted">Encrypted fields are shown as such: the console never decrypts.</p>`;
  return layout(ctx, 'sagas', `Saga ${saga.name}`, body);
}
