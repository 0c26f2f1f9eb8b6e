import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type {
  OutboxBrokerThroughputScenarioResult,
  OutboxCommitToAckScenarioResult,
  ScenarioResult,
  SoakScenarioResult,
} from './results';

/*
 * SVG plots for docs/benchmarks.md, rendered headless with vega-lite → vega (`renderer: 'none'`,
 * `View.toSVG()`): no browser, no canvas, deterministic for the same results. The vega packages
 * are CommonJS devDependencies loaded here only, so nothing else in the harness pays for them.
 */

// eslint-disable-next-line @typescript-eslint/no-require-imports -- vega ships CJS without usable types under node10 resolution
const vega = require('vega') as {
  parse(spec: unknown): unknown;
  View: new (runtime: unknown, options: { renderer: 'none' }) => { toSVG(): Promise<string> };
};
// eslint-disable-next-line @typescript-eslint/no-require-imports -- as above
const vegaLite = require('vega-lite') as { compile(spec: unknown): { spec: unknown } };

/** File names (under docs/benchmarks/) the report embeds when the scenario is present. */
export const PLOTS = {
  brokerThroughput: 'broker-throughput.svg',
  ackLatencyByRate: 'commit-to-ack-by-rate.svg',
  ackLatencyByBroker: 'commit-to-ack-by-broker.svg',
  soak: 'soak.svg',
} as const;

const FONT = { font: 'Helvetica, Arial, sans-serif', labelFontSize: 11, titleFontSize: 12 };
const CONFIG = {
  axis: { labelFont: FONT.font, titleFont: FONT.font, labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFont: FONT.font, titleFont: FONT.font, labelFontSize: 11, titleFontSize: 12 },
  header: { labelFont: FONT.font, titleFont: FONT.font, labelFontSize: 12, titleFontSize: 12 },
  title: { font: FONT.font, fontSize: 13 },
  view: { stroke: '#ddd' },
};

async function render(spec: Record<string, unknown>): Promise<string> {
  const full = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    background: 'white',
    config: CONFIG,
    ...spec,
  };
  const view = new vega.View(vega.parse(vegaLite.compile(full).spec), { renderer: 'none' });
  return `${await view.toSVG()}\n`;
}

function brokerThroughputSpec(s: OutboxBrokerThroughputScenarioResult): Record<string, unknown> {
  const values = s.brokers.flatMap((b) =>
    b.points.flatMap((p) => [
      {
        broker: b.broker,
        workers: p.workers,
        side: 'Sage relay',
        perSec: p.subject.throughputPerSec,
      },
      {
        broker: b.broker,
        workers: p.workers,
        side: 'raw client',
        perSec: p.ceiling.throughputPerSec,
      },
    ]),
  );
  return {
    title: 'Relay throughput against relay workers, beside the raw client ceiling',
    data: { values },
    facet: { column: { field: 'broker', type: 'nominal', title: null } },
    spec: {
      width: 200,
      height: 220,
      mark: { type: 'line', point: true },
      encoding: {
        x: {
          field: 'workers',
          type: 'ordinal',
          title: 'relay workers (raw: publishers)',
          axis: { labelAngle: 0 },
        },
        y: { field: 'perSec', type: 'quantitative', title: 'messages / s' },
        color: {
          field: 'side',
          type: 'nominal',
          title: null,
          scale: { domain: ['Sage relay', 'raw client'], range: ['#1f77b4', '#aaaaaa'] },
        },
        strokeDash: {
          field: 'side',
          type: 'nominal',
          legend: null,
          scale: {
            domain: ['Sage relay', 'raw client'],
            range: [
              [1, 0],
              [5, 3],
            ],
          },
        },
      },
    },
  };
}

const PCTS = [
  ['p50', 'p50'],
  ['p95', 'p95'],
  ['p99', 'p99'],
  ['p999', 'p99.9'],
] as const;

function ackByRateSpec(s: OutboxCommitToAckScenarioResult): Record<string, unknown> | null {
  const broker = s.config.matrixBroker as string;
  const points = s.points.filter((p) => p.broker === broker);
  if (points.length < 2) return null;
  const values = points.flatMap((p) =>
    Object.entries(p.variants).flatMap(([variant, m]) =>
      PCTS.map(([key, label]) => ({
        offered: p.offeredRatePerSec,
        variant,
        percentile: label,
        ms: Math.max(0.01, m.latencyMs[key]),
        achieved: m.achievedRatePerSec,
      })),
    ),
  );
  return {
    title: `Commit → ${broker} ack latency against offered load (open loop)`,
    data: { values },
    facet: {
      column: { field: 'percentile', type: 'nominal', title: null, sort: PCTS.map((p) => p[1]) },
    },
    spec: {
      width: 150,
      height: 220,
      mark: { type: 'line', point: true },
      encoding: {
        x: {
          field: 'offered',
          type: 'quantitative',
          title: 'offered msg/s',
          scale: { type: 'log' },
          axis: { values: points.map((p) => p.offeredRatePerSec), format: '~s' },
        },
        y: { field: 'ms', type: 'quantitative', title: 'ms (log)', scale: { type: 'log' } },
        color: {
          field: 'variant',
          type: 'nominal',
          title: null,
          scale: {
            domain: ['relay', 'wal', 'optimistic', 'raw', 'direct'],
            range: ['#1f77b4', '#9467bd', '#2ca02c', '#aaaaaa', '#555555'],
          },
        },
        tooltip: [{ field: 'achieved', title: 'achieved msg/s' }],
      },
    },
  };
}

function ackByBrokerSpec(s: OutboxCommitToAckScenarioResult): Record<string, unknown> | null {
  const rate = s.config.perBrokerRate as number;
  const points = s.points.filter((p) => p.offeredRatePerSec === rate);
  if (!points.length) return null;
  const values = points.flatMap((p) =>
    Object.entries(p.variants).flatMap(([variant, m]) =>
      (['p50', 'p99'] as const).map((pc) => ({
        broker: p.broker,
        variant,
        percentile: pc,
        ms: m.latencyMs[pc],
      })),
    ),
  );
  return {
    title: `Commit → broker ack at ${rate.toLocaleString('en-US')} msg/s offered, per broker`,
    data: { values },
    facet: { column: { field: 'broker', type: 'nominal', title: null } },
    spec: {
      width: 160,
      height: 200,
      mark: 'bar',
      encoding: {
        x: { field: 'percentile', type: 'nominal', title: null, axis: { labelAngle: 0 } },
        xOffset: { field: 'variant', sort: ['relay', 'wal', 'optimistic', 'raw', 'direct'] },
        y: { field: 'ms', type: 'quantitative', title: 'ms' },
        color: {
          field: 'variant',
          type: 'nominal',
          title: null,
          scale: {
            domain: ['relay', 'wal', 'optimistic', 'raw', 'direct'],
            range: ['#1f77b4', '#9467bd', '#2ca02c', '#aaaaaa', '#555555'],
          },
        },
      },
    },
  };
}

function soakSpec(s: SoakScenarioResult): Record<string, unknown> {
  const values = s.samples
    .filter((x) => x.acked > 0)
    .flatMap((x) => [
      { minutes: x.atMs / 60_000, metric: 'RSS (MB)', value: x.rssMb },
      { minutes: x.atMs / 60_000, metric: 'commit → ack p99 (ms)', value: x.p99 },
      { minutes: x.atMs / 60_000, metric: 'commit → ack p50 (ms)', value: x.p50 },
      { minutes: x.atMs / 60_000, metric: 'outbox backlog (rows)', value: x.backlog },
    ]);
  return {
    title: `Soak: ${(s.config.ratePerSec as number).toLocaleString('en-US')} msg/s for ${Math.round((s.config.durationMs as number) / 60_000)} minutes`,
    data: { values },
    facet: { row: { field: 'metric', type: 'nominal', title: null } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 560,
      height: 110,
      mark: { type: 'line' },
      encoding: {
        x: { field: 'minutes', type: 'quantitative', title: 'minutes since start' },
        y: { field: 'value', type: 'quantitative', title: null },
      },
    },
  };
}

/**
 * Writes the plots of the scenarios the report shows into `dir`; returns the file names written
 * (the report embeds only those).
 */
export async function writePlots(
  scenarios: readonly ScenarioResult[],
  dir: string,
): Promise<Set<string>> {
  mkdirSync(dir, { recursive: true });
  const written = new Set<string>();
  const put = async (file: string, spec: Record<string, unknown> | null): Promise<void> => {
    if (!spec) return;
    writeFileSync(path.join(dir, file), await render(spec));
    written.add(file);
  };
  for (const s of scenarios) {
    if (s.kind === 'outbox-broker-throughput' && s.brokers.some((b) => b.points.length))
      await put(PLOTS.brokerThroughput, brokerThroughputSpec(s));
    if (s.kind === 'outbox-commit-to-ack') {
      await put(PLOTS.ackLatencyByRate, ackByRateSpec(s));
      await put(PLOTS.ackLatencyByBroker, ackByBrokerSpec(s));
    }
    if (s.kind === 'soak' && s.samples.length) await put(PLOTS.soak, soakSpec(s));
  }
  return written;
}
