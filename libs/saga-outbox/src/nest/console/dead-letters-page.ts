import type { InboxDeadLetterPage, InboxEntry } from '../../core/ports/inbox-store';
import type { DeadLetterPage } from '../../core/ports/outbox-store';
import type { OutboxMessage } from '../../core/outbox/outbox-message';
import { html, query, type Html } from './html';
import { jsonView } from './json-view';
import { badge, csrfField, layout, when, type PageContext } from './console-layout';

export interface DeadLettersView {
  outbox: DeadLetterPage;
  inbox: InboxDeadLetterPage;
  filter: { destination?: string; type?: string; consumer?: string; after?: string };
  notice?: string;
  now: Date;
}

export function deadLettersPage(ctx: PageContext, view: DeadLettersView): Html {
  const f = view.filter;
  const outboxRows = view.outbox.messages.map(
    (m) =>
      html`<tr data-message="${m.id}">
        <td class="mono"><a href="${ctx.base}/dead-letters/outbox/${m.id}">${m.id}</a></td>
        <td>${m.destination}</td>
        <td>${m.type}</td>
        <td class="mono">${m.key ?? '-'}</td>
        <td class="num">${m.attempts}</td>
        <td>${when(m.createdAt, view.now)}</td>
        <td class="error">${m.lastError ?? ''}</td>
      </tr>`,
  );
  const inboxRows = view.inbox.entries.map(
    (e) =>
      html`<tr data-inbox="${e.messageId}">
        <td>${e.consumer}</td>
        <td class="mono">
          <a
            href="${ctx.base}/dead-letters/inbox/entry${query({ consumer: e.consumer, message: e.messageId })}"
            >${e.messageId}</a
          >
        </td>
        <td class="num">${e.attempts}</td>
        <td>${when(e.processedAt, view.now)}</td>
        <td class="error">${e.lastError ?? ''}</td>
      </tr>`,
  );
  const body = html`<h1>Dead letters</h1>
    ${view.notice ? html`<div class="notice" data-testid="notice">${view.notice}</div>` : ''}
    <h2>Outbox: messages the relay gave up publishing</h2>
    <form class="filters card" method="get" action="${ctx.base}/dead-letters">
      <label>destination<input name="destination" value="${f.destination ?? ''}" /></label>
      <label>type<input name="type" value="${f.type ?? ''}" /></label>
      <label>inbox consumer<input name="consumer" value="${f.consumer ?? ''}" /></label>
      <button class="primary" type="submit">Filter</button>
      <a href="${ctx.base}/dead-letters">clear</a>
    </form>
    <div class="card">
      <table data-testid="outbox-dead-letters">
        <thead>
          <tr>
            <th>id</th>
            <th>destination</th>
            <th>type</th>
            <th>key</th>
            <th>attempts</th>
            <th>written</th>
            <th>last error</th>
          </tr>
        </thead>
        <tbody>
          ${
            outboxRows.length
              ? outboxRows
              : html`<tr>
                  <td colspan="7" class="muted">no outbox dead letters</td>
                </tr>`
          }
        </tbody>
      </table>
      ${view.outbox.nextCursor ? html`<div class="pager"><a href="${ctx.base}/dead-letters${query({ destination: f.destination, type: f.type, consumer: f.consumer, after: view.outbox.nextCursor })}">next page →</a></div>` : ''}
    </div>
    <h2>Inbox: deliveries a consumer gave up handling</h2>
    <div class="card">
      <table data-testid="inbox-dead-letters">
        <thead>
          <tr>
            <th>consumer</th>
            <th>message id</th>
            <th>attempts</th>
            <th>dead-lettered</th>
            <th>last error</th>
          </tr>
        </thead>
        <tbody>
          ${
            inboxRows.length
              ? inboxRows
              : html`<tr>
                  <td colspan="5" class="muted">no inbox dead letters</td>
                </tr>`
          }
        </tbody>
      </table>
      ${view.inbox.nextCursor ? html`<p class="muted">more: narrow by consumer</p>` : ''}
    </div>`;
  return layout(ctx, 'dead-letters', 'Dead letters', body);
}

function actionButtons(ctx: PageContext, links: Html): Html {
  return ctx.canAct
    ? html`<div class="card">${links}</div>`
    : html`<p class="muted">
        Read-only:
        ${ctx.grant.operator ? 'your access does not include actions, or' : 'actions need an operator allowed to act, and'}
        the console must be mounted with <code>actions: true</code>.
      </p>`;
}

export function outboxMessagePage(
  ctx: PageContext,
  m: OutboxMessage,
  now: Date,
  notice?: string,
): Html {
  const dead = m.status === 'dead_letter';
  const body = html`<h1>Outbox message ${badge(m.status)}</h1>
    ${notice ? html`<div class="notice" data-testid="notice">${notice}</div>` : ''}
    <div class="card">
      <dl class="fields">
        <dt>id</dt>
        <dd class="mono">${m.id}</dd>
        <dt>destination</dt>
        <dd>${m.destination}</dd>
        <dt>type</dt>
        <dd>${m.type}</dd>
        <dt>key</dt>
        <dd class="mono">${m.key ?? '-'}</dd>
        <dt>saga</dt>
        <dd class="mono">
          ${m.sagaId ? html`<a href="${ctx.base}/sagas/${m.sagaId}">${m.sagaId}</a>` : '-'}
        </dd>
        <dt>attempts</dt>
        <dd>${m.attempts}</dd>
        <dt>written</dt>
        <dd>${when(m.createdAt, now)}</dd>
        <dt>sent</dt>
        <dd>${when(m.sentAt, now)}</dd>
        <dt>last error</dt>
        <dd class="error" data-testid="last-error">${m.lastError ?? '-'}</dd>
      </dl>
    </div>
    ${dead ? actionButtons(ctx, html`<a href="${ctx.base}/dead-letters/outbox/${m.id}/confirm?action=replay" data-testid="replay">Replay…</a> · <a href="${ctx.base}/dead-letters/outbox/${m.id}/confirm?action=discard" data-testid="discard">Discard…</a>`) : ''}
    <h2>Headers</h2>
    <div class="card">${jsonView(m.headers)}</div>
    <h2>Payload</h2>
    <div class="card" data-testid="payload">${jsonView(m.payload)}</div>`;
  return layout(ctx, 'dead-letters', 'Outbox message', body);
}

const OUTBOX_ACTIONS = {
  replay: {
    title: 'Replay this dead letter?',
    explain:
      'It goes back to pending with its attempts reset, and the relay publishes it again, in its place in its key’s order. Fix the cause first: a message replayed into the same failure dead-letters again.',
    button: 'Replay the message',
    cls: 'primary',
  },
  discard: {
    title: 'Discard this dead letter for good?',
    explain:
      'It is deleted and never published. Only for messages that must never be delivered. This cannot be undone.',
    button: 'Discard for good',
    cls: 'danger',
  },
} as const;

export type OutboxAction = keyof typeof OUTBOX_ACTIONS;

/** The confirmation step: what will happen, and a POST form carrying the CSRF token. */
export function confirmOutboxPage(ctx: PageContext, m: OutboxMessage, action: OutboxAction): Html {
  const a = OUTBOX_ACTIONS[action];
  const body = html`<h1>${a.title}</h1>
    <div class="card">
      <dl class="fields">
        <dt>id</dt>
        <dd class="mono">${m.id}</dd>
        <dt>destination</dt>
        <dd>${m.destination}</dd>
        <dt>type</dt>
        <dd>${m.type}</dd>
        <dt>last error</dt>
        <dd class="error">${m.lastError ?? '-'}</dd>
      </dl>
    </div>
    <p>${a.explain}</p>
    <p class="muted">Recorded in the audit log as ${ctx.grant.operator ?? 'the database role'}.</p>
    <form
      method="post"
      action="${ctx.base}/dead-letters/outbox/${m.id}/${action}"
      data-confirm="${a.title}"
    >
      ${csrfField(ctx)}<input type="hidden" name="confirm" value="yes" />
      <button class="${a.cls}" type="submit" data-testid="confirm">${a.button}</button>
      <a href="${ctx.base}/dead-letters/outbox/${m.id}">cancel</a>
    </form>`;
  return layout(ctx, 'dead-letters', a.title, body);
}

export function inboxEntryPage(ctx: PageContext, e: InboxEntry, now: Date): Html {
  const dead = e.status === 'dead_letter';
  const target = query({ consumer: e.consumer, message: e.messageId });
  const body = html`<h1>Inbox entry ${badge(e.status)}</h1>
    <div class="card">
      <dl class="fields">
        <dt>consumer</dt>
        <dd>${e.consumer}</dd>
        <dt>message id</dt>
        <dd class="mono">${e.messageId}</dd>
        <dt>attempts</dt>
        <dd>${e.attempts}</dd>
        <dt>dead-lettered</dt>
        <dd>${when(e.processedAt, now)}</dd>
        <dt>last error</dt>
        <dd class="error" data-testid="last-error">${e.lastError ?? '-'}</dd>
      </dl>
    </div>
    ${dead ? actionButtons(ctx, html`<a href="${ctx.base}/dead-letters/inbox/entry/confirm${target}" data-testid="release">Release…</a> <span class="muted">(forget it, so the next delivery of this message is handled again)</span>`) : ''}
    <h2>Delivered message</h2>
    <div class="card" data-testid="payload">${jsonView(e.message)}</div>`;
  return layout(ctx, 'dead-letters', 'Inbox entry', body);
}

export function confirmInboxReleasePage(ctx: PageContext, e: InboxEntry): Html {
  const title = 'Release this inbox dead letter?';
  const body = html`<h1>${title}</h1>
    <div class="card">
      <dl class="fields">
        <dt>consumer</dt>
        <dd>${e.consumer}</dd>
        <dt>message id</dt>
        <dd class="mono">${e.messageId}</dd>
        <dt>last error</dt>
        <dd class="error">${e.lastError ?? '-'}</dd>
      </dl>
    </div>
    <p>
      The dead letter is deleted; it holds the only copy of the delivered message, and nothing is
      redelivered: have the broker or the producer deliver it again after the fix.
    </p>
    <p class="muted">Recorded in the audit log as ${ctx.grant.operator ?? 'the database role'}.</p>
    <form method="post" action="${ctx.base}/dead-letters/inbox/release" data-confirm="${title}">
      ${csrfField(ctx)}<input type="hidden" name="confirm" value="yes" /><input
        type="hidden"
        name="consumer"
        value="${e.consumer}"
      /><input type="hidden" name="message" value="${e.messageId}" />
      <button class="danger" type="submit" data-testid="confirm">Release</button>
      <a href="${ctx.base}/dead-letters">cancel</a>
    </form>`;
  return layout(ctx, 'dead-letters', title, body);
}
