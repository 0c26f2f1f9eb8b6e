import type { SagaStatus } from '../../core/ports/saga-store';
import type { CommandContext, CommandSpec } from '../command';
import { cell, fields, formatDuration, json, relative, table } from '../format';
import { RUNBOOKS, STALLED_AFTER } from './shared-options';

/** Ages past which `status` draws attention, matching ops/prometheus/alerts.yml. */
const OLDEST_PENDING_ALERT_SECONDS = 600;
const BACKLOG_ALERT = 5000;
/** A transaction open this long holds vacuum back, and the writers of any outbox key it wrote. */
const LONG_TRANSACTION_SECONDS = 60;
const OLDEST_LIVE_SHOWN = 5;
const DEAD_LETTER_GROUPS_SHOWN = 10;

export interface Attention {
  /** `critical`: messages or sagas are not moving; `warning`: something needs a person. */
  severity: 'critical' | 'warning';
  message: string;
  /** What to run next. */
  next: string;
  runbook: string;
}

export const statusCommand: CommandSpec = {
  path: ['status'],
  summary: 'one screen: outbox backlog and dead letters, sagas by status, inbox dead letters',
  options: { 'stalled-after': STALLED_AFTER },
  details: `Read-only. The first command to run when paged: every number comes from the database, and
"attention" lists what looks wrong with the command or runbook to go to next.

Examples:
  sage status
  sage status --json | jq .attention`,
  async run(ctx) {
    const report = await collectStatus(ctx);
    ctx.io.out(ctx.json ? json(report) : renderStatus(report));
  },
};

async function collectStatus(ctx: CommandContext) {
  const db = await ctx.db();
  const q = db.operator;
  const [now, outbox, breakdown, deadLetterGroups, sagaCounts, live, oldestLive, inbox, oldestTx] =
    await Promise.all([
      q.databaseNow(),
      db.outbox.stats(),
      q.outboxPendingBreakdown(),
      q.outboxDeadLetterGroups(DEAD_LETTER_GROUPS_SHOWN),
      q.sagaStatusCounts(),
      q.liveSagaGroups(),
      q.oldestLiveSagas(OLDEST_LIVE_SHOWN),
      q.inboxDeadLetterGroups(),
      q.oldestTransaction(),
    ]);
  const report = {
    schema: db.schema,
    databaseTime: now,
    outbox: {
      pending: outbox.pending,
      claimed: outbox.claimed,
      sent: outbox.sent,
      deadLetters: outbox.deadLetter,
      oldestPendingAgeSeconds: outbox.oldestPendingAgeSeconds,
      pendingDue: breakdown.due,
      pendingBackingOff: breakdown.backingOff,
      pendingBehindKey: breakdown.behindKey,
      expiredClaims: breakdown.expiredClaims,
      deadLettersByDestination: deadLetterGroups,
      oldestTransaction: oldestTx ?? null,
    },
    sagas: {
      byStatus: sagaCounts,
      stalled: live.reduce((n, g) => n + g.stalled, 0),
      live,
      oldestLive,
    },
    inbox: {
      deadLetters: inbox.reduce((n, g) => n + g.count, 0),
      deadLettersByConsumer: inbox,
    },
    attention: [] as Attention[],
  };
  report.attention = attentionFor(report);
  return report;
}

type StatusReport = Awaited<ReturnType<typeof collectStatus>>;

function attentionFor(r: Omit<StatusReport, 'attention'>): Attention[] {
  const out: Attention[] = [];
  const o = r.outbox;
  const unsent = o.pending + o.claimed;
  if (unsent > BACKLOG_ALERT || o.oldestPendingAgeSeconds > OLDEST_PENDING_ALERT_SECONDS)
    out.push({
      severity: 'critical',
      message: `${unsent} unsent outbox messages, oldest pending ${formatDuration(o.oldestPendingAgeSeconds)} old`,
      next: 'check the relay (/health/live, outbox_relay_running) and the breakdown below',
      runbook: `${RUNBOOKS}/outbox-backlog.md`,
    });
  if (o.oldestTransaction && o.oldestTransaction.ageSeconds > LONG_TRANSACTION_SECONDS) {
    const t = o.oldestTransaction;
    out.push({
      severity: 'warning',
      message: `a transaction has been open for ${formatDuration(t.ageSeconds)} (pid ${t.pid}, database ${t.database ?? '?'}, application ${t.applicationName || '?'}, ${t.state ?? 'state hidden'}): it holds vacuum back, and if it wrote outbox messages, other writers of their keys wait for it`,
      next: `find it: SELECT * FROM pg_stat_activity WHERE pid = ${t.pid}`,
      runbook: `${RUNBOOKS}/outbox-backlog.md`,
    });
  }
  if (o.expiredClaims > 0)
    out.push({
      severity: 'warning',
      message: `${o.expiredClaims} outbox claims expired: a relay stopped mid-batch; the reaper of a live relay returns them`,
      next: 'check that a relay is running: outbox_relay_running, /health/live',
      runbook: `${RUNBOOKS}/relay-down.md`,
    });
  if (o.pendingBackingOff > 0)
    out.push({
      severity: 'warning',
      message: `${o.pendingBackingOff} outbox messages are backing off after failed publishes`,
      next: 'sum by (reason) (rate(outbox_failed_total[5m])); relay logs event=outbox.message.retry',
      runbook: `${RUNBOOKS}/publish-errors.md`,
    });
  if (o.deadLetters > 0) {
    const top = o.deadLettersByDestination[0];
    out.push({
      severity: 'warning',
      message: `${o.deadLetters} outbox dead letters${top ? ` (most: ${top.count} × ${top.destination} ${top.type}: ${cell(top.lastError, 80)})` : ''}`,
      next: 'sage outbox dead-letters list',
      runbook: `${RUNBOOKS}/outbox-dead-letters.md`,
    });
  }
  if (r.sagas.stalled > 0) {
    const names = r.sagas.live
      .filter((g) => g.stalled > 0)
      .map((g) => `${g.name}@${g.version.slice(0, 12)}`);
    out.push({
      severity: 'critical',
      message: `${r.sagas.stalled} live sagas are due but no worker has picked them up: ${[...new Set(names)].join(', ')}`,
      next: 'are saga workers running, and do they register these versions? sage sagas list --status running',
      runbook: `${RUNBOOKS}/version-mismatch.md`,
    });
  }
  if (r.sagas.byStatus.failed > 0)
    out.push({
      severity: 'warning',
      message: `${r.sagas.byStatus.failed} sagas ended failed (a compensation kept failing, or a pivot failed)`,
      next: 'sage sagas list --status failed',
      runbook: `${RUNBOOKS}/saga-stuck.md`,
    });
  for (const g of r.inbox.deadLettersByConsumer)
    out.push({
      severity: 'warning',
      message: `consumer ${g.consumer}: ${g.count} inbox dead letters`,
      next: `sage inbox dead-letters list --consumer ${g.consumer}`,
      runbook: `${RUNBOOKS}/inbox-dead-letters.md`,
    });
  return out;
}

const SAGA_ORDER: readonly SagaStatus[] = [
  'running',
  'waiting',
  'compensating',
  'failed',
  'completed',
  'compensated',
];

function renderStatus(r: StatusReport): string {
  const now = r.databaseTime;
  const o = r.outbox;
  let text = `Sage status — schema ${r.schema}, database time ${now.toISOString()}\n\n`;

  text += 'OUTBOX\n';
  text += fields(
    [
      [
        'pending',
        `${o.pending}  (due ${o.pendingDue}, backing off ${o.pendingBackingOff}, behind their key ${o.pendingBehindKey})`,
      ],
      ['claimed', `${o.claimed}  (lease expired ${o.expiredClaims})`],
      ['sent', String(o.sent)],
      ['dead letters', String(o.deadLetters)],
      ['oldest pending', o.pending > 0 ? formatDuration(o.oldestPendingAgeSeconds) : '-'],
      [
        'oldest transaction',
        o.oldestTransaction
          ? `${formatDuration(o.oldestTransaction.ageSeconds)} (pid ${o.oldestTransaction.pid}, ${o.oldestTransaction.database ?? '?'}, ${o.oldestTransaction.state ?? 'state hidden'})`
          : '-',
      ],
    ],
    '  ',
  );
  if (o.deadLettersByDestination.length)
    text +=
      '\n' +
      table(
        ['DEAD LETTERS', 'DESTINATION', 'TYPE', 'NEWEST', 'LAST ERROR'],
        o.deadLettersByDestination.map((g) => [
          String(g.count),
          cell(g.destination, 30),
          cell(g.type, 30),
          relative(g.newestCreatedAt, now),
          cell(g.lastError, 50),
        ]),
        { indent: '  ', right: [0] },
      );

  text += '\nSAGAS\n';
  text += table(
    ['STATUS', 'COUNT'],
    SAGA_ORDER.map((s) => [s, String(r.sagas.byStatus[s])]),
    { indent: '  ', right: [1] },
  );
  if (r.sagas.live.length)
    text +=
      '\n' +
      table(
        ['LIVE SAGA', 'VERSION', 'STATUS', 'COUNT', 'STALLED', 'OLDEST'],
        r.sagas.live.map((g) => [
          cell(g.name, 30),
          g.version.slice(0, 12),
          g.status,
          String(g.count),
          String(g.stalled),
          formatDuration(g.oldestAgeSeconds),
        ]),
        { indent: '  ', right: [3, 4] },
      );
  if (r.sagas.oldestLive.length)
    text +=
      '\n' +
      table(
        ['OLDEST LIVE', 'NAME', 'STATUS', 'AGE', 'AWAITING', 'STALLED'],
        r.sagas.oldestLive.map((s) => [
          s.id,
          cell(s.name, 30),
          s.status,
          formatDuration(s.ageSeconds),
          s.awaitingSteps.length
            ? `${s.awaitingSteps.join(',')} (due ${relative(s.replyDeadline, now)})`
            : '-',
          s.stalled ? 'yes' : 'no',
        ]),
        { indent: '  ' },
      );

  text += '\nINBOX\n';
  text += r.inbox.deadLettersByConsumer.length
    ? table(
        ['CONSUMER', 'DEAD LETTERS', 'NEWEST'],
        r.inbox.deadLettersByConsumer.map((g) => [
          cell(g.consumer, 40),
          String(g.count),
          relative(g.newestAt, now),
        ]),
        { indent: '  ', right: [1] },
      )
    : '  no dead letters\n';

  text += '\nATTENTION\n';
  text += r.attention.length
    ? r.attention
        .map(
          (a) =>
            `  ${a.severity === 'critical' ? '!!' : '! '} ${a.message}\n       next: ${a.next}\n       runbook: ${a.runbook}\n`,
        )
        .join('')
    : '  nothing: no backlog, no dead letters, no stalled or failed sagas\n';
  return text;
}
