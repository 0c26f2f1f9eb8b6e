import { int, ms, num, ratio } from './report-format';
import type { ScenarioResult } from './results';
import type {
  DrainMode,
  OutboxBacklogScalingScenarioResult,
  OutboxWalRelayScenarioResult,
} from './results-relay-modes';

/**
 * docs/benchmarks.md parts of the relay-mode scenarios (issue 17): the WAL relay beside the polling
 * relay and the raw client, relay rate against backlog size, and the "Issue 17 targets" table
 * computed from one run's results.
 */

/** The issue 17 targets. */
export const ISSUE17_TARGETS = {
  walToRaw: 0.75,
  optimisticP99Ms: 5,
  walP99Ms: 10,
  pollingP99Ms: 25,
  ackRatePerSec: 1_000,
  backlogRatio: 0.9,
  inboxToRaw: 0.5,
  sagaLocalToRaw: 0.9,
} as const;

export interface TargetRow {
  target: string;
  measured: string;
  /** null: not measured in the results at hand. */
  met: boolean | null;
}

const T = ISSUE17_TARGETS;

function notMeasured(target: string, why: string): TargetRow {
  return { target, measured: `not measured: ${why}`, met: null };
}

/** Every issue 17 target with its measured value and whether it is met, from one run's scenarios. */
export function issue17Targets(scenarios: readonly ScenarioResult[]): TargetRow[] {
  const rows: TargetRow[] = [];
  const find = <K extends NonNullable<ScenarioResult['kind']>>(
    kind: K,
    name?: string,
  ): Extract<ScenarioResult, { kind: K }> | undefined =>
    scenarios.find(
      (s): s is Extract<ScenarioResult, { kind: K }> =>
        s.kind === kind && (name === undefined || s.name === name),
    );

  // WAL relay throughput ÷ raw client, per broker.
  const wal = find('outbox-wal-relay-throughput');
  const walTarget = (b: string): string =>
    `WAL relay → ${b} drain ≥ ${T.walToRaw} × the raw client`;
  if (!wal) rows.push(notMeasured(walTarget('each broker'), 'outbox-wal-relay-throughput not run'));
  else if (wal.walNotRun) rows.push(notMeasured(walTarget('each broker'), wal.walNotRun));
  else
    for (const b of wal.brokers) {
      const w = b.modes.wal;
      const r = b.modes.raw;
      if (!w || !r || !b.ratio) rows.push(notMeasured(walTarget(b.broker), b.error ?? 'failed'));
      else
        rows.push({
          target: walTarget(b.broker),
          measured: `${num(w.throughputPerSec)} / ${num(r.throughputPerSec)} msg/s = ${ratio(b.ratio.walToRaw)}`,
          met: b.ratio.walToRaw >= T.walToRaw,
        });
    }

  // Commit → ack p99 at 1,000 msg/s.
  const ack = find('outbox-commit-to-ack');
  const ackTargets = [
    ['optimistic', 'optimistic sending', T.optimisticP99Ms],
    ['wal', 'WAL relay', T.walP99Ms],
    ['relay', 'polling relay + NOTIFY', T.pollingP99Ms],
  ] as const;
  const ackTarget = (label: string, limit: number, b: string): string =>
    `commit → ${b} ack p99 ≤ ${limit} ms, ${label}, ${int(T.ackRatePerSec)} msg/s`;
  const ackPoints = ack?.points.filter((p) => p.offeredRatePerSec === T.ackRatePerSec) ?? [];
  for (const [variant, label, limit] of ackTargets) {
    if (!ackPoints.length) {
      rows.push(
        notMeasured(
          ackTarget(label, limit, 'each broker'),
          ack ? `no point at ${int(T.ackRatePerSec)} msg/s` : 'outbox-commit-to-ack not run',
        ),
      );
      continue;
    }
    // A broker whose run failed (its server restarted mid-run, say) has no point: say so.
    for (const failed of ack?.notRun ?? []) {
      const broker = /^(kafka|rabbitmq|nats): /.exec(failed.reason)?.[1];
      if (broker && !ackPoints.some((p) => p.broker === broker))
        rows.push(notMeasured(ackTarget(label, limit, broker), failed.reason));
    }
    for (const p of ackPoints) {
      const m = p.variants[variant];
      if (!m) {
        const why = ack?.notRun.find((n) => n.variant === variant)?.reason ?? 'variant not run';
        rows.push(notMeasured(ackTarget(label, limit, p.broker), why));
        continue;
      }
      const incomplete = m.missing > 0 ? `, ${int(m.missing)} never acked` : '';
      // A machine that cannot commit at the offered rate shows it: the latency is at that rate.
      const short =
        m.achievedRatePerSec < 0.95 * p.offeredRatePerSec
          ? `, ${num(m.achievedRatePerSec)} msg/s achieved`
          : '';
      rows.push({
        target: ackTarget(label, limit, p.broker),
        measured: `${ms(m.latencyMs.p99)} ms (p50 ${ms(m.latencyMs.p50)} ms${short}${incomplete})`,
        met: m.latencyMs.p99 <= limit && m.missing === 0,
      });
    }
  }

  // Relays on the large backlog ÷ one relay on the small one.
  const backlog = find('outbox-backlog-scaling');
  if (!backlog)
    rows.push(
      notMeasured(
        `2 and 4 relays on a large backlog ≥ ${T.backlogRatio} × 1 relay on a small one`,
        'outbox-backlog-scaling not run',
      ),
    );
  else {
    const large = backlog.config.backlogLarge as number;
    const small = backlog.config.backlogSmall as number;
    for (const p of backlog.points.filter((x) => x.backlog === large)) {
      rows.push({
        target: `${p.relays} relay(s) on a ${int(large)}-message backlog ≥ ${T.backlogRatio} × 1 relay on ${int(small)}`,
        measured: `${num(p.perSec)} / ${num(backlog.baselinePerSec)} msg/s = ${ratio(p.ratioToBaseline)}`,
        met: p.ratioToBaseline >= T.backlogRatio,
      });
    }
  }

  // Consumer through the inbox ÷ raw consumer, per broker.
  const consumers = find('consumer-throughput');
  const inboxTarget = (b: string): string =>
    `consumer with inbox (${b}) ≥ ${T.inboxToRaw} × the raw consumer`;
  if (!consumers) rows.push(notMeasured(inboxTarget('each broker'), 'consumer-throughput not run'));
  else
    for (const b of consumers.brokers) {
      if (!b.ratio) rows.push(notMeasured(inboxTarget(b.broker), b.error ?? 'failed'));
      else
        rows.push({
          target: inboxTarget(b.broker),
          measured: `${ratio(b.ratio.inboxToRaw)}`,
          met: b.ratio.inboxToRaw >= T.inboxToRaw,
        });
    }

  // Local 3-step saga ÷ raw loop (the lowest ratio over the concurrency points).
  const saga = scenarios.find(
    (s) => (s.kind === undefined || s.kind === 'closed-loop') && s.name === 'saga-local-3step',
  );
  const sagaTarget = `local 3-step saga ≥ ${T.sagaLocalToRaw} × the raw loop (every concurrency)`;
  if (!saga || (saga.kind !== undefined && saga.kind !== 'closed-loop'))
    rows.push(notMeasured(sagaTarget, 'saga-local-3step not run'));
  else if (!saga.points.length) rows.push(notMeasured(sagaTarget, 'no points'));
  else {
    const worst = Math.min(...saga.points.map((p) => p.ratio.throughput));
    rows.push({
      target: sagaTarget,
      measured: saga.points
        .map((p) => `c=${p.concurrency} ${ratio(p.ratio.throughput)}`)
        .join(', '),
      met: worst >= T.sagaLocalToRaw,
    });
  }
  return rows;
}

export function issue17TargetsSection(scenarios: readonly ScenarioResult[]): string[] {
  const rows = issue17Targets(scenarios);
  const met = rows.filter((r) => r.met === true).length;
  const measured = rows.filter((r) => r.met !== null).length;
  return [
    '### Issue 17 targets',
    '',
    `Computed from the results shown on this page: ${met} of ${measured} measured targets met.`,
    '',
    '| target | measured | |',
    '|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.target} | ${r.measured} | ${r.met === null ? '–' : r.met ? 'met' : '**not met**'} |`,
    ),
  ];
}

const MODE_LABEL: Record<DrainMode, string> = {
  polling: 'polling relay',
  wal: 'WAL relay',
  raw: 'raw client',
};

function us(v: number | null): string {
  return v === null ? 'n/a' : num(v);
}

export function walRelayThroughputSection(s: OutboxWalRelayScenarioResult): string[] {
  const lines = [`### ${s.name}`, '', s.description, ''];
  lines.push(
    ...(['polling', 'wal', 'raw'] as const).map((m) => `- *${MODE_LABEL[m]}*: ${s.labels[m]}.`),
    '',
    Object.entries(s.config)
      .map(([k, v]) => `${k} ${String(v)}`)
      .join(', ') + '.',
    '',
    '| broker | mode | msg/s | ÷ raw | drains (msg/s, load) | node CPU µs/msg | PG own µs/msg | PG server µs/msg |',
    '|---|---|---:|---:|---|---:|---:|---:|',
  );
  for (const b of s.brokers) {
    if (b.error) {
      lines.push(`| ${b.broker} | failed: ${b.error} | | | | | | |`);
      continue;
    }
    const raw = b.modes.raw?.throughputPerSec ?? NaN;
    for (const mode of ['polling', 'wal', 'raw'] as const) {
      const m = b.modes[mode];
      if (!m) continue;
      lines.push(
        `| ${b.broker} | ${MODE_LABEL[mode]} | ${num(m.throughputPerSec)} | ${mode === 'raw' ? '' : ratio(m.throughputPerSec / raw)} | ` +
          `${m.trials.map((t) => `${num(t.perSec)} (${t.loadAvg1m})`).join(', ')} | ${us(m.cpuPerMsg.nodeUs)} | ` +
          `${us(m.cpuPerMsg.pgOwnUs)} | ${us(m.cpuPerMsg.pgServerUs)} |`,
      );
    }
  }
  lines.push(
    '',
    "CPU per message: CPU time of the drain ÷ messages. *PG own* = the PostgreSQL processes of the mode's " +
      'own connections (the WAL relay: its pool and its walsender, which decodes the WAL); *PG server* = every ' +
      'PostgreSQL process, other people\u2019s work on the shared server included.',
  );
  if (s.walNotRun) lines.push('', `- WAL relay not run: ${s.walNotRun}.`);
  if (s.skipped.length)
    lines.push('', `Skipped: ${s.skipped.map((x) => `${x.broker} (${x.reason})`).join(', ')}.`);
  return lines;
}

export function backlogScalingSection(s: OutboxBacklogScalingScenarioResult): string[] {
  const lines = [`### ${s.name}`, '', s.description, ''];
  lines.push(
    Object.entries(s.config)
      .map(([k, v]) => `${k} ${String(v)}`)
      .join(', ') + '.',
    '',
    '| relays | backlog | msg/s (median) | ÷ 1 relay on the small backlog | drains msg/s | load | batches | claimed | stale marks | loop errors |',
    '|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|',
  );
  for (const p of s.points) {
    const st = (k: string): string =>
      p.relayStats?.[k] === undefined ? '–' : int(p.relayStats[k]);
    lines.push(
      `| ${p.relays} | ${int(p.backlog)} | ${num(p.perSec)} | ${ratio(p.ratioToBaseline)} | ` +
        `${p.trialsPerSec.map(num).join(', ')} | ${p.loadAvg1m} | ${st('batches')} | ${st('claimed')} | ` +
        `${st('staleMarks')} | ${st('loopErrors')} |`,
    );
  }
  lines.push(
    '',
    'Batches, claimed, stale marks and loop errors: the relays\u2019 own counters, summed over the drains of the point.',
  );
  return lines;
}

export function relayModesHistoryCell(s: ScenarioResult): string | null {
  if (s.kind === 'outbox-wal-relay-throughput')
    return s.brokers
      .map((b) =>
        b.ratio
          ? `${b.broker} WAL ${num(b.modes.wal?.throughputPerSec ?? NaN)} / polling ${num(b.modes.polling?.throughputPerSec ?? NaN)} / raw ${num(b.modes.raw?.throughputPerSec ?? NaN)} msg/s`
          : `${b.broker} ${b.error ?? 'failed'}`,
      )
      .join('; ');
  if (s.kind === 'outbox-backlog-scaling')
    return s.points
      .map((p) => `${p.relays}×${int(p.backlog)} ${ratio(p.ratioToBaseline)}`)
      .join(', ');
  return null;
}
