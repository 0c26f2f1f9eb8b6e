import os from 'node:os';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { InMemoryBroker, OutboxRelay, PostgresOutboxStore } from '@sage/saga-outbox';
import { clientConfig, openSagaDataSources } from '../harness/database';
import {
  BENCH_KEYS,
  OUTBOX_TABLES,
  payloadBytes,
  preloadOutbox,
  resetOutboxTables,
} from '../harness/outbox-load';
import { countsDelta, snapshotCounts, totalOf } from '../harness/query-counter';
import { RawRelay } from '../harness/raw-relay';
import { othersCpu } from '../harness/report-format';
import { ResourceMonitor } from '../harness/resources';
import type {
  DrainMeasurement,
  DrainPoint,
  DrainTrial,
  OutboxProfile,
  OutboxThroughputScenarioResult,
} from '../harness/results';
import { round, SampleBuffer, summarise } from '../harness/stats';
import { TimedOutboxStore } from '../harness/timed-outbox-store';
import { BATCH_SIZE, LEASE_MS, MAX_IN_FLIGHT, PUBLISH_BATCH_SIZE } from '../harness/relay-defaults';
import type { Scenario, ScenarioContext } from './scenario';

const NAME = 'outbox-relay-throughput';
const RELAY_APP = 'sage-bench-relay';
const RAW_APP = 'sage-bench-raw-relay';
const CORES = os.cpus().length;

interface DrainOutcome {
  trial: DrainTrial;
  claimMs: Float64Array;
  markMs: Float64Array;
  emptyClaims: number;
  statements: number;
  notes: Record<string, number>;
}

/** Sums of a side's drains, turned into a DrainMeasurement at the end. */
class SideTotals {
  readonly trials: DrainTrial[] = [];
  readonly claimMs = new SampleBuffer();
  readonly markMs = new SampleBuffer();
  emptyClaims = 0;
  statements = 0;
  readonly notes: Record<string, number> = {};

  add(o: DrainOutcome): void {
    this.trials.push(o.trial);
    for (const v of o.claimMs) this.claimMs.push(v);
    for (const v of o.markMs) this.markMs.push(v);
    this.emptyClaims += o.emptyClaims;
    this.statements += o.statements;
    for (const [k, v] of Object.entries(o.notes)) this.notes[k] = (this.notes[k] ?? 0) + v;
  }

  async measurement(monitor: ResourceMonitor, relays: number): Promise<DrainMeasurement> {
    const messages = this.trials.reduce((a, t) => a + t.messages, 0);
    const elapsedMs = this.trials.reduce((a, t) => a + t.elapsedMs, 0);
    const batches = this.trials.reduce((a, t) => a + t.batches, 0);
    const claimTotal = this.claimMs.values().reduce((a, b) => a + b, 0);
    const markTotal = this.markMs.values().reduce((a, b) => a + b, 0);
    return {
      trials: this.trials,
      throughputPerSec: round(messages / (elapsedMs / 1000), 1),
      meanBatch: batches ? round(messages / batches, 1) : 0,
      statementsPerBatch: batches ? round(this.statements / batches, 2) : 0,
      emptyClaims: this.emptyClaims,
      claimMs: summarise(this.claimMs.values()),
      markMs: summarise(this.markMs.values()),
      resources: await monitor.usage(),
      notes: {
        ...this.notes,
        // Share of each relay's wall time spent waiting on its claim and mark statements.
        sqlWaitPct: round(((claimTotal + markTotal) / (elapsedMs * relays)) * 100, 1),
        claimWaitPct: round((claimTotal / (elapsedMs * relays)) * 100, 1),
      },
    };
  }
}

function deadline<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export const outboxRelayThroughput: Scenario = {
  name: NAME,
  description:
    'N messages pre-loaded (1,000 distinct keys, round-robin), then drained by 1 or 2 OutboxRelays ' +
    '(in-process, a DataSource each) publishing to the in-memory broker: the database-side ceiling ' +
    'of the relay. Timed from start() to the last batch recorded sent.',

  async run(ctx: ScenarioContext): Promise<OutboxThroughputScenarioResult> {
    const { target, poolSize } = ctx;
    const o: OutboxProfile = ctx.profile.outbox!;
    const n = o.drainMessages;
    const maxRelays = Math.max(...o.relayCounts);
    const loader = new pg.Client(clientConfig(target, 'sage-bench-loader'));
    const monitorClient = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    // The per-drain monitors sample at the same time as the per-side ones: a connection each.
    const drainMonitorClient = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    await loader.connect();
    await monitorClient.connect();
    await drainMonitorClient.connect();
    const dataSources = await openSagaDataSources(target, maxRelays, poolSize, RELAY_APP);
    const drainTimeoutMs = Math.max(120_000, n * 2);

    /** Same starting state for every drain: N pending rows, vacuumed and analysed, checkpointed. */
    const load = async (): Promise<void> => {
      await resetOutboxTables(loader);
      await preloadOutbox(loader, n);
      await loader.query(`VACUUM (ANALYZE) ${OUTBOX_TABLES.outboxMessage}`);
      await loader.query('CHECKPOINT');
    };

    const drainRelays = async (
      relayCount: number,
      monitor: ResourceMonitor,
    ): Promise<DrainOutcome> => {
      const sources = dataSources.slice(0, relayCount);
      // Warm the pools outside the timed part (TypeORM connects lazily).
      await Promise.all(
        sources.map((ds) => Promise.all([ds.query('SELECT 1'), ds.query('SELECT 1')])),
      );
      const broker = new InMemoryBroker();
      const stores = sources.map((ds) => new TimedOutboxStore(new PostgresOutboxStore(ds)));
      let sent = 0;
      let batches = 0;
      let finish: (at: number) => void = () => undefined;
      const finished = new Promise<number>((resolve) => (finish = resolve));
      const relays = stores.map(
        (store, i) =>
          new OutboxRelay({
            store,
            broker,
            relayId: `bench-relay-${i}`,
            batchSize: BATCH_SIZE,
            publishBatchSize: PUBLISH_BATCH_SIZE,
            maxInFlight: MAX_IN_FLIGHT,
            leaseMs: LEASE_MS,
            onBatch: (report) => {
              batches++;
              sent += report.sent;
              if (sent >= n) finish(performance.now());
            },
          }),
      );
      const before = snapshotCounts(RELAY_APP);
      const own = new ResourceMonitor(drainMonitorClient, RELAY_APP);
      monitor.start();
      own.start();
      const t0 = performance.now();
      relays.forEach((r) => r.start());
      let t1: number;
      try {
        t1 = await deadline(
          `${relayCount} relay(s) draining ${n} messages`,
          drainTimeoutMs,
          finished,
        );
      } finally {
        monitor.stop();
        own.stop();
        await Promise.all(relays.map((r) => r.stop()));
      }
      const statements = totalOf(countsDelta(before, snapshotCounts(RELAY_APP)));
      const stats = relays.map((r) => r.stats);
      const elapsedMs = t1 - t0;
      return {
        trial: {
          messages: n,
          elapsedMs: round(elapsedMs, 1),
          perSec: round(n / (elapsedMs / 1000), 1),
          batches,
          meanBatch: batches ? round(sent / batches, 1) : 0,
          otherCpuPct: othersCpu(await own.usage(), CORES),
        },
        claimMs: concat(stores.map((s) => s.claimMs.values())),
        markMs: concat(stores.map((s) => s.markMs.values())),
        emptyClaims: stores.reduce((a, s) => a + s.emptyClaims, 0),
        statements,
        notes: {
          duplicatesPublished: broker.published.length - n,
          staleMarks: stats.reduce((a, s) => a + s.staleMarks, 0),
          loopErrors: stats.reduce((a, s) => a + s.loop.errors, 0),
        },
      };
    };

    const drainRaw = async (workers: number, monitor: ResourceMonitor): Promise<DrainOutcome> => {
      let sent = 0;
      let finish: (at: number) => void = () => undefined;
      const finished = new Promise<number>((resolve) => (finish = resolve));
      const raws = Array.from(
        { length: workers },
        () =>
          new RawRelay({
            client: clientConfig(target, RAW_APP),
            batchSize: BATCH_SIZE,
            leaseMs: LEASE_MS,
            idle: 'spin',
            onMarked: () => {
              sent = raws.reduce((a, r) => a + r.stats.sent, 0);
              if (sent >= n) finish(performance.now());
            },
          }),
      );
      await Promise.all(raws.map((r) => r.connect()));
      const before = snapshotCounts(RAW_APP);
      const own = new ResourceMonitor(drainMonitorClient, RAW_APP);
      monitor.start();
      own.start();
      const t0 = performance.now();
      raws.forEach((r) => r.start());
      let t1: number;
      try {
        t1 = await deadline(
          `${workers} raw loop(s) draining ${n} messages`,
          drainTimeoutMs,
          finished,
        );
      } finally {
        monitor.stop();
        own.stop();
        await Promise.all(raws.map((r) => r.close()));
      }
      const statements = totalOf(countsDelta(before, snapshotCounts(RAW_APP)));
      const stats = raws.map((r) => r.stats);
      const batches = stats.reduce((a, s) => a + s.batches, 0);
      const elapsedMs = t1 - t0;
      return {
        trial: {
          messages: n,
          elapsedMs: round(elapsedMs, 1),
          perSec: round(n / (elapsedMs / 1000), 1),
          batches,
          meanBatch: batches ? round(sent / batches, 1) : 0,
          otherCpuPct: othersCpu(await own.usage(), CORES),
        },
        claimMs: concat(stats.map((s) => s.claimMs)),
        markMs: concat(stats.map((s) => s.markMs)),
        emptyClaims: stats.reduce((a, s) => a + s.emptyClaims, 0),
        statements,
        notes: {},
      };
    };

    try {
      const points: DrainPoint[] = [];
      for (const relays of o.relayCounts) {
        const sides = [
          {
            totals: new SideTotals(),
            monitor: new ResourceMonitor(monitorClient, RELAY_APP),
            drain: (m: ResourceMonitor) => drainRelays(relays, m),
          },
          {
            totals: new SideTotals(),
            monitor: new ResourceMonitor(monitorClient, RAW_APP),
            drain: (m: ResourceMonitor) => drainRaw(relays, m),
          },
        ];
        // relay, raw, raw, relay, ...: drift (other processes, table state) falls on both sides.
        for (let rep = 0; rep < o.drainRepetitions; rep++) {
          for (const side of rep % 2 === 0 ? sides : [...sides].reverse()) {
            await load();
            side.totals.add(await side.drain(side.monitor));
          }
        }
        const subject = await sides[0]!.totals.measurement(sides[0]!.monitor, relays);
        const ceiling = await sides[1]!.totals.measurement(sides[1]!.monitor, relays);
        const paired = subject.trials.map((t, i) =>
          round(t.perSec / (ceiling.trials[i]?.perSec ?? NaN), 3),
        );
        const ratio = {
          throughput: median(paired),
          throughputTotals: round(subject.throughputPerSec / ceiling.throughputPerSec, 3),
          paired,
        };
        points.push({ relays, subject, ceiling, ratio });
        ctx.log(
          `  relays=${relays}: relay ${subject.throughputPerSec} msg/s (batch ${subject.meanBatch}, claim p50 ${subject.claimMs.p50} ms) | ` +
            `raw ${ceiling.throughputPerSec} msg/s (batch ${ceiling.meanBatch}, claim p50 ${ceiling.claimMs.p50} ms) | ratio ${ratio.throughput} (pairs ${paired.join(', ')}; totals ${ratio.throughputTotals})`,
        );
      }
      return {
        kind: 'outbox-relay-throughput',
        name: NAME,
        description: this.description,
        labels: {
          subject:
            'OutboxRelay + PostgresOutboxStore (TypeORM DataSource per relay) → InMemoryBroker',
          ceiling:
            'node-postgres Client per loop sending the same claim + mark-sent statements, no broker',
        },
        config: {
          messages: n,
          keys: BENCH_KEYS,
          payloadBytes: payloadBytes(),
          batchSize: BATCH_SIZE,
          publishBatchSize: PUBLISH_BATCH_SIZE,
          maxInFlight: MAX_IN_FLIGHT,
          leaseMs: LEASE_MS,
          repetitions: o.drainRepetitions,
          poolSize,
        },
        points,
      };
    } finally {
      await Promise.all(dataSources.map((ds) => ds.destroy()));
      await monitorClient.end();
      await drainMonitorClient.end();
      await loader.end();
    }
  },
};

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (!sorted.length) return NaN;
  return sorted.length % 2 ? sorted[mid]! : round((sorted[mid - 1]! + sorted[mid]!) / 2, 3);
}

function concat(parts: readonly Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
