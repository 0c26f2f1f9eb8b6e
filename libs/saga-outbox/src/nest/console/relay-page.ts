import type {
  OldestTransaction,
  OutboxDeadLetterGroup,
  OutboxPendingBreakdown,
} from '../../persistence/postgres/postgres-operator-queries';
import type { OutboxStats } from '../../core/ports/outbox-store';
import { html, type Html } from './html';
import type { ConsoleRelayView } from './console-data';
import { duration, layout, when, type PageContext } from './console-layout';

export interface RelayView {
  stats: OutboxStats;
  breakdown: OutboxPendingBreakdown;
  deadLetterGroups: OutboxDeadLetterGroup[];
  oldestTransaction: OldestTransaction | undefined;
  relay: ConsoleRelayView | undefined;
  now: Date;
  refreshSeconds: number;
}

export function relayPage(ctx: PageContext, v: RelayView): Html {
  const r = v.relay;
  const sinceTick = r?.loop.lastTickAt ? (Date.now() - r.loop.lastTickAt) / 1000 : null;
  const relayCard = r
    ? html`<dl class="fields" data-testid="relay">
        <dt>relay</dt>
        <dd class="mono">
          ${r.relayId}
          (${r.mode}${r.mode === 'wal' ? (r.leader ? ', leader: streams from the slot' : ', standing by') : ''})
        </dd>
        <dt>last loop tick</dt>
        <dd>${sinceTick === null ? 'not yet' : `${duration(sinceTick)} ago`}</dd>
        <dt>ticks / errors</dt>
        <dd>${r.loop.ticks} / ${r.loop.errors} (${r.loop.consecutiveErrors} in a row)</dd>
        <dt>last loop error</dt>
        <dd class="error">${r.loop.lastError ?? '-'}</dd>
        ${Object.entries(r.counters).map(
          ([k, n]) =>
            html`<dt>${k}</dt>
              <dd>${n.toLocaleString('en')}</dd>`,
        )}
      </dl>`
    : html`<p class="muted">
        No relay runs in this process (a standalone <code>sage-relay</code>, or the relay is off
        here): its liveness is on its own health endpoint. The backlog below is the database's.
      </p>`;
  const groups = v.deadLetterGroups.map(
    (g) =>
      html`<tr>
        <td>${g.destination}</td>
        <td>${g.type}</td>
        <td class="num">${g.count}</td>
        <td>${when(g.newestCreatedAt, v.now)}</td>
        <td class="error">${g.lastError ?? ''}</td>
      </tr>`,
  );
  const tx = v.oldestTransaction;
  const body = html`<h1>Relay &amp; health</h1>
    ${
      v.refreshSeconds
        ? html`<p class="refresh">
            Refreshes every ${v.refreshSeconds} s.
            <label id="pause-refresh" hidden><input type="checkbox" /> pause</label>
          </p>`
        : html`<p class="refresh">Auto-refresh is off: reload for fresh numbers.</p>`
    }
    <div class="counts" data-testid="backlog">
      <span class="c">pending<b>${v.stats.pending.toLocaleString('en')}</b></span>
      <span class="c"
        >oldest pending<b
          >${v.stats.pending ? duration(v.stats.oldestPendingAgeSeconds) : '-'}</b
        ></span
      >
      <span class="c">claimed<b>${v.stats.claimed.toLocaleString('en')}</b></span>
      <span class="c">dead letters<b>${v.stats.deadLetter.toLocaleString('en')}</b></span>
      <span class="c">sent (kept)<b>${v.stats.sent.toLocaleString('en')}</b></span>
    </div>
    <h2>Why pending messages wait</h2>
    <div class="card">
      <dl class="fields">
        <dt>due now</dt>
        <dd>${v.breakdown.due}</dd>
        <dt>backing off after a failed publish</dt>
        <dd>${v.breakdown.backingOff}</dd>
        <dt>behind an earlier message of their key</dt>
        <dd>${v.breakdown.behindKey}</dd>
        <dt>claims whose lease expired</dt>
        <dd>${v.breakdown.expiredClaims}</dd>
        <dt>oldest open transaction</dt>
        <dd>
          ${tx ? `${duration(tx.ageSeconds)} (pid ${tx.pid}, ${tx.state ?? 'state hidden'})` : '-'}
        </dd>
      </dl>
    </div>
    <h2>Relay in this process</h2>
    <div class="card">${relayCard}</div>
    <h2>Recent publish errors (dead letters by destination)</h2>
    <div class="card">
      <table data-testid="publish-errors">
        <thead>
          <tr>
            <th>destination</th>
            <th>type</th>
            <th>dead letters</th>
            <th>newest</th>
            <th>last error</th>
          </tr>
        </thead>
        <tbody>
          ${
            groups.length
              ? groups
              : html`<tr>
                  <td colspan="5" class="muted">none</td>
                </tr>`
          }
        </tbody>
      </table>
    </div>`;
  return layout(ctx, 'relay', 'Relay & health', body, { refreshSeconds: v.refreshSeconds });
}
