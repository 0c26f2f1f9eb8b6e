import { int, num, ratio } from './report-format';
import type { BrokerTuningScenarioResult, ScenarioResult } from './results';

/** The broker-tuning section of docs/benchmarks.md: relay throughput per adapter setting, per broker. */
export function tuningSection(s: BrokerTuningScenarioResult): string[] {
  const c = s.config;
  const lines: string[] = [`### ${s.name}`, '', s.description, ''];
  lines.push(
    `- ${int(Number(c.messages))} messages per drain, ${String(c.rounds)} rounds per setting, one relay ` +
      `(batch ${String(c.batchSize)}, publish calls of ${String(c.publishBatchSize)}, ${String(c.maxInFlight)} in flight).`,
    '- *Ratio*: median over rounds of the setting ÷ the adapter defaults of the same round; above 1 is faster.',
    '- *Load*: the 1-minute load average when each drain started (2 cores shared with other work): ' +
      'a ratio only means something between drains at similar load.',
    '',
  );
  for (const b of s.brokers) {
    lines.push(`#### ${b.broker} (${b.client})`, '');
    if (b.error) {
      lines.push(`Not measured: ${b.error}`, '');
      continue;
    }
    lines.push(
      '| setting | options | msg/s | ratio | per round msg/s | load (1 min) | failed publishes |',
      '|---|---|---:|---:|---:|---:|---:|',
    );
    for (const t of b.settings)
      lines.push(
        `| ${t.label} | \`${JSON.stringify(t.options)}\` | ${num(t.throughputPerSec)} | ${ratio(t.ratio)} | ` +
          `${t.trials.map((x) => num(x.perSec)).join(' / ')} | ${t.trials.map((x) => x.loadAvg1m).join(' / ')} | ` +
          `${t.failedPublishes} |`,
      );
    lines.push('');
  }
  for (const k of s.skipped) lines.push(`- ${k.broker}: skipped (${k.reason})`);
  return lines;
}

/** The history table's cell: the best setting per broker and its ratio, or undefined for other scenarios. */
export function tuningHistoryCell(s: ScenarioResult): string | undefined {
  if (s.kind !== 'broker-tuning') return undefined;
  return s.brokers
    .filter((b) => b.settings.length)
    .map((b) => {
      const best = b.settings.reduce((x, y) => (y.ratio > x.ratio ? y : x));
      return `${b.broker}: best ${best.label} ×${best.ratio.toFixed(2)} (${num(best.throughputPerSec)} msg/s)`;
    })
    .join('; ');
}
