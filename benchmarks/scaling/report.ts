/**
 * docs/scaling.md's generated section, rendered from benchmarks/results/scaling.json: the text
 * between the two markers is replaced, everything around it (the hand-written guidance) kept.
 */
import type { ScalingPoint, ScalingResults, ScalingScenario } from './results';

export const GENERATED_START =
  '<!-- scaling:generated:start (npm run bench:scaling rewrites this section) -->';
export const GENERATED_END = '<!-- scaling:generated:end -->';

const TITLES: Record<ScalingScenario, { title: string; unit: string }> = {
  relay: { title: '(a) Outbox relays draining one backlog', unit: 'msg/s' },
  consumer: { title: '(b) Consumers with the inbox on one queue / group / durable', unit: 'msg/s' },
  saga: { title: '(c) Saga workers running waiting sagas', unit: 'sagas/s' },
};

const fmt = (v: number, digits = 0): string =>
  v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

function checkCell(p: ScalingPoint): string {
  if (p.error) return `FAILED: ${p.error.replace(/\|/g, '/')}`;
  if (!p.checks.ok) return `**${p.checks.problems.join('; ').replace(/\|/g, '/')}**`;
  switch (p.scenario) {
    case 'relay':
      return `ok: ${fmt(Number(p.checks.distinct))} on broker, order kept (${fmt(Number(p.checks.keys))} keys), ${fmt(Number(p.checks.duplicates))} dup`;
    case 'consumer':
      return `ok: ${fmt(Number(p.checks.distinctEffects))} effects once, ${fmt(Number(p.checks.busyConsumers))} consumers busy`;
    case 'saga':
      return `ok: ${fmt(Number(p.checks.businessRows))} step rows once, ${fmt(Number(p.checks.busyWorkers))} workers busy`;
  }
}

function table(points: readonly ScalingPoint[], unit: string): string[] {
  const lines = [
    `| broker | processes | items | ${unit} | speedup vs 1 | first item after | Node CPU / item | PG backends CPU / item | PG all CPU / item | Node CPU | PG backends CPU | PG all CPU | broker CPU | other processes CPU | machine CPU | load 1m | checks | bottleneck |`,
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|---|',
  ];
  for (const p of points)
    lines.push(
      `| ${p.broker ?? '—'} | ${p.processes} | ${fmt(p.items)} | ${p.error ? '—' : fmt(p.perSec)} | ` +
        `${p.speedup === null ? '—' : `${fmt(p.speedup, 2)}×`} | ${fmt(p.firstItemMs)} ms | ` +
        `${fmt(p.cpu.workersMsPerItem, 3)} ms | ${fmt(p.cpu.pgBackendsMsPerItem, 3)} ms | ${fmt(p.cpu.pgMsPerItem, 3)} ms | ` +
        `${fmt(p.cpu.workersPct)}% | ${fmt(p.cpu.pgBackendsPct)}% | ${fmt(p.cpu.pgAllPct)}% | ` +
        `${fmt(p.cpu.brokerPct)}% | ${fmt(p.cpu.othersPct)}% | ${fmt(p.cpu.machinePct)}% | ` +
        `${fmt(p.loadAvg1m.start, 2)} → ${fmt(p.loadAvg1m.end, 2)} | ${checkCell(p)} | ${p.bottleneck} |`,
    );
  return lines;
}

/** The generated section's body (without the markers). */
export function renderScalingSection(results: ScalingResults): string {
  const m = results.machine;
  const s = results.settings;
  const out: string[] = [
    `Measured ${results.startedAt.slice(0, 16).replace('T', ' ')} UTC${results.quick ? ' (`--quick`: CI size, not for conclusions)' : ''} ` +
      `on ${m.cpuModel}, **${m.cores} cores**, ${m.ramGb} GB, Node ${m.node}, PostgreSQL ${m.postgres}; ` +
      `1-minute load average ${fmt(m.loadAvg1mAtStart, 2)} at the start, ${fmt(m.loadAvg1mAtEnd, 2)} at the end ` +
      '(the machine is shared: other work skews every figure; compare rows of one run, not runs).',
    '',
    `Processes ${s.processCounts.join(' / ')}; relay backlog ${fmt(s.relayMessages)} messages, ` +
      `consumer backlog ${fmt(s.consumerMessages)} messages, ${fmt(s.sagas)} sagas per round; ` +
      `pool ${s.poolSize} connections per process; brokers ${s.brokers.join(', ')}. ` +
      'CPU in % of one core (200% = two cores) over the round, from /proc; machine CPU in % of all cores; ' +
      '"PG backends" are the bench database\'s connections (a lower bound of PostgreSQL\'s cost), "PG all" every ' +
      'postgres process, other databases\' too (an upper bound on a shared server); "other processes" is busy ' +
      'time none of the columns account for: work this run did not cause. ' +
      '"speedup" is the rate divided by the 1-process rate of the same scenario and broker in this run.',
  ];
  if (results.failures.length)
    out.push('', '**Not measured in this run:**', '', ...results.failures.map((f) => `- ${f}`));
  for (const scenario of ['relay', 'consumer', 'saga'] as const) {
    const points = results.points.filter((p) => p.scenario === scenario);
    if (!points.length) continue;
    out.push('', `#### ${TITLES[scenario].title}`, '', ...table(points, TITLES[scenario].unit));
  }
  return out.join('\n');
}

/** Speedup of each point against the 1-process point of its scenario and broker (null without one). */
export function withSpeedups(points: readonly ScalingPoint[]): ScalingPoint[] {
  return points.map((p) => {
    const single = points.find(
      (q) => q.scenario === p.scenario && q.broker === p.broker && q.processes === 1 && !q.error,
    );
    const speedup =
      p.processes === 1 || !single || p.error || single.perSec === 0
        ? null
        : Math.round((p.perSec / single.perSec) * 100) / 100;
    return { ...p, speedup };
  });
}

/**
 * `doc` with the text between GENERATED_START and GENERATED_END replaced by `section`. Throws when
 * the markers are missing, doubled or out of order (the hand-written part is never guessed at).
 */
export function replaceGeneratedSection(doc: string, section: string): string {
  const start = doc.indexOf(GENERATED_START);
  const end = doc.indexOf(GENERATED_END);
  if (start < 0 || end < 0 || end < start)
    throw new Error(
      `the doc has no generated section: it needs a line "${GENERATED_START}" followed by a line "${GENERATED_END}"`,
    );
  if (doc.indexOf(GENERATED_START, start + 1) >= 0 || doc.indexOf(GENERATED_END, end + 1) >= 0)
    throw new Error('the doc has more than one generated section marker of a kind');
  return `${doc.slice(0, start + GENERATED_START.length)}\n\n${section}\n\n${doc.slice(end)}`;
}
