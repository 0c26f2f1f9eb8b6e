import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { EntityManager } from 'typeorm';
import {
  InMemoryBroker,
  OutboxPublisher,
  OutboxRelay,
  PostgresOutboxStore,
} from '@sage/saga-outbox';
import { clientConfig, openProducerAndRelayDataSources } from '../harness/database';
import { runOpenLoop } from '../harness/open-loop';
import {
  BENCH_DESTINATION,
  BENCH_KEYS,
  payloadBytes,
  rawCommit,
  resetOutboxTables,
  sageCommit,
  type CommitOperation,
} from '../harness/outbox-load';
import {
  ForeignWriteTxSampler,
  LatencyTotals,
  PublishLatencyRecorder,
} from '../harness/publish-latency';
import { RawRelay } from '../harness/raw-relay';
import { othersCpu } from '../harness/report-format';
import { ResourceMonitor } from '../harness/resources';
import type {
  OutboxLatencyScenarioResult,
  OutboxProfile,
  PublishLatencyMeasurement,
  PublishLatencyPoint,
} from '../harness/results';
import { round, summarise } from '../harness/stats';
import { TimedOutboxStore } from '../harness/timed-outbox-store';
import { BATCH_SIZE, LEASE_MS, POLL_INTERVAL_MS } from '../harness/relay-defaults';
import type { Scenario, ScenarioContext } from './scenario';

const NAME = 'outbox-commit-to-publish';
const SAGE_APP = 'sage-bench-outbox';
const RAW_APP = 'sage-bench-raw-outbox';
/** Producer connections, each side: enough for 1,000 commits/s to overlap (group commit). */
const PRODUCER_POOL = 20;

type Mode = 'notify' | 'polling';

/** What one slice of one system needs: a relay-like receiver to start and stop around a producer. */
interface Side {
  app: string;
  commit: CommitOperation;
  monitor: ResourceMonitor;
  totals: Record<Mode, LatencyTotals>;
  /** Starts the receiving side for one slice; returns its stop function and batch counters. */
  startReceiver(
    mode: Mode,
    recorder: PublishLatencyRecorder,
  ): Promise<{ stop: () => Promise<{ batches: number; claimed: number }> }>;
}

export const outboxCommitToPublish: Scenario = {
  name: NAME,
  description:
    'An open-loop producer commits business transactions (one business insert + one outbox row ' +
    'each) at a fixed rate while a relay publishes to the in-memory broker; latency runs from the ' +
    "producer's COMMIT returning to the broker subscriber receiving the message. Two wake-up " +
    'modes: LISTEN/NOTIFY (the default) and polling only (`listen: false`, the default interval).',

  async run(ctx: ScenarioContext): Promise<OutboxLatencyScenarioResult> {
    const { target, poolSize } = ctx;
    const o: OutboxProfile = ctx.profile.outbox!;
    // The relay gets its own DataSource, as a standalone relay deployment has (and as the raw
    // loop has its own connection): producer load never delays a claim waiting for a pool slot.
    const { producerDs, relayDs } = await openProducerAndRelayDataSources(
      target,
      SAGE_APP,
      PRODUCER_POOL,
      poolSize,
    );
    const publisher = new OutboxPublisher<EntityManager>({
      writer: new PostgresOutboxStore(producerDs),
    });
    const rawPool = new pg.Pool({ ...clientConfig(target, RAW_APP), max: PRODUCER_POOL });
    const loader = new pg.Client(clientConfig(target, 'sage-bench-loader'));
    const monitorClient = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    // The per-slice monitor samples at the same time as the per-side one: a connection each.
    const sliceMonitorClient = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    const foreignClient = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    await Promise.all([
      loader.connect(),
      monitorClient.connect(),
      sliceMonitorClient.connect(),
      foreignClient.connect(),
    ]);
    const foreign = new ForeignWriteTxSampler(foreignClient);

    const sage: Side = {
      app: SAGE_APP,
      commit: sageCommit(producerDs, publisher, 1),
      monitor: new ResourceMonitor(monitorClient, SAGE_APP),
      totals: { notify: new LatencyTotals(), polling: new LatencyTotals() },
      async startReceiver(mode, recorder) {
        const broker = new InMemoryBroker();
        await broker.subscribe(BENCH_DESTINATION, (message) => {
          recorder.received(message.id, performance.now());
          return Promise.resolve();
        });
        let batches = 0;
        let claimed = 0;
        const relay = new OutboxRelay({
          store: new TimedOutboxStore(new PostgresOutboxStore(relayDs)),
          broker,
          batchSize: BATCH_SIZE,
          leaseMs: LEASE_MS,
          pollIntervalMs: POLL_INTERVAL_MS,
          listen: mode === 'notify',
          onBatch: (report) => {
            batches++;
            claimed += report.claimed;
          },
        });
        relay.start();
        if (mode === 'notify') await until('relay LISTENing', () => relay.stats.listening);
        return {
          stop: async () => {
            await relay.stop();
            await broker.close();
            return { batches, claimed };
          },
        };
      },
    };

    const raw: Side = {
      app: RAW_APP,
      commit: rawCommit(rawPool, 1),
      monitor: new ResourceMonitor(monitorClient, RAW_APP),
      totals: { notify: new LatencyTotals(), polling: new LatencyTotals() },
      async startReceiver(mode, recorder) {
        const loop = new RawRelay({
          client: clientConfig(target, RAW_APP),
          batchSize: BATCH_SIZE,
          leaseMs: LEASE_MS,
          idle: { pollIntervalMs: POLL_INTERVAL_MS, listen: mode === 'notify' },
          onClaimed: (rows, at) => {
            for (const row of rows) recorder.received(row.id, at);
          },
        });
        await loop.connect();
        loop.start();
        return {
          stop: async () => {
            await loop.close();
            return { batches: loop.stats.batches, claimed: loop.stats.claimed };
          },
        };
      },
    };

    const slice = async (side: Side, mode: Mode, sliceMs: number): Promise<void> => {
      await resetOutboxTables(loader);
      const totals = side.totals[mode];
      const recorder = new PublishLatencyRecorder();
      const receiver = await side.startReceiver(mode, recorder);
      const sliceMonitor = new ResourceMonitor(sliceMonitorClient, side.app);
      let loop;
      try {
        loop = await runOpenLoop(side.commit, {
          ratePerSec: o.latencyRatePerSec,
          warmupMs: o.latencyWarmupMs,
          durationMs: sliceMs,
          onCommitted: (ids, at, inWindow) => {
            if (inWindow) recorder.committed(ids, at);
          },
          onWindowStart: () => {
            side.monitor.start();
            sliceMonitor.start();
            foreign.start();
          },
          onWindowEnd: () => {
            side.monitor.stop();
            sliceMonitor.stop();
          },
        });
        totals.foreignWriteTxMaxMs = Math.max(totals.foreignWriteTxMaxMs, await foreign.stop());
        // Stragglers: everything committed in the window must arrive (polling: within an interval).
        await recorder.settle(POLL_INTERVAL_MS * 3 + 10_000);
      } finally {
        const counts = await receiver.stop();
        totals.batches += counts.batches;
        totals.claimed += counts.claimed;
      }
      const r = recorder.result();
      const sliceLatency = summarise(r.samples);
      totals.slices.push({
        achievedRatePerSec: round(loop.committedInWindow / (loop.windowMs / 1000), 1),
        p50: sliceLatency.p50,
        p99: sliceLatency.p99,
        otherCpuPct: othersCpu(await sliceMonitor.usage(), os.cpus().length),
      });
      totals.addSamples(totals.latency, r.samples);
      totals.addSamples(totals.commitMs, loop.commitMs);
      totals.windowMs += loop.windowMs;
      totals.committed += loop.committedInWindow;
      totals.missing += r.missing;
      totals.negative += r.negative;
      totals.lagMaxMs = Math.max(totals.lagMaxMs, loop.lagMaxMs);
      totals.errors += loop.errors;
      totals.firstError ??= loop.firstError;
    };

    const measurement = async (side: Side, mode: Mode): Promise<PublishLatencyMeasurement> => {
      const t = side.totals[mode];
      const { latencyMs, commitMs } = t.summary();
      return {
        windowMs: t.windowMs,
        committed: t.committed,
        achievedRatePerSec: round(t.committed / (t.windowMs / 1000), 1),
        latencyMs,
        missing: t.missing,
        negative: t.negative,
        commitMs,
        producerLagMaxMs: round(t.lagMaxMs, 1),
        batches: t.batches,
        meanBatch: t.batches ? round(t.claimed / t.batches, 1) : 0,
        errors: t.errors,
        firstError: t.firstError,
        resources: await side.monitor.usage(),
        slices: t.slices,
        notes: { foreignWriteTxMaxMs: t.foreignWriteTxMaxMs },
      };
    };

    try {
      // Warm both producers' pools and JIT outside any window.
      await Promise.all(Array.from({ length: 50 }, (_, i) => sage.commit(-1 - i)));
      await Promise.all(Array.from({ length: 50 }, (_, i) => raw.commit(-1 - i)));

      const points: PublishLatencyPoint[] = [];
      const sliceMs = Math.max(1, Math.round(o.latencyDurationMs / o.latencySlices));
      for (const mode of ['notify', 'polling'] as const) {
        // Resource monitors are per side, so a fresh pair per mode.
        sage.monitor = new ResourceMonitor(monitorClient, SAGE_APP);
        raw.monitor = new ResourceMonitor(monitorClient, RAW_APP);
        for (let s = 0; s < o.latencySlices; s++) {
          for (const side of s % 2 === 0 ? [sage, raw] : [raw, sage])
            await slice(side, mode, sliceMs);
        }
        const subject = await measurement(sage, mode);
        const ceiling = await measurement(raw, mode);
        const ratio = {
          p50: round(subject.latencyMs.p50 / ceiling.latencyMs.p50, 3),
          p95: round(subject.latencyMs.p95 / ceiling.latencyMs.p95, 3),
          p99: round(subject.latencyMs.p99 / ceiling.latencyMs.p99, 3),
          rate: round(subject.achievedRatePerSec / ceiling.achievedRatePerSec, 3),
        };
        points.push({ mode, pollIntervalMs: POLL_INTERVAL_MS, subject, ceiling, ratio });
        ctx.log(
          `  ${mode}: sage ${subject.achievedRatePerSec}/s p50 ${subject.latencyMs.p50} p99 ${subject.latencyMs.p99} ms (batch ${subject.meanBatch}) | ` +
            `raw ${ceiling.achievedRatePerSec}/s p50 ${ceiling.latencyMs.p50} p99 ${ceiling.latencyMs.p99} ms (batch ${ceiling.meanBatch}) | ` +
            `p99 ratio ${ratio.p99}` +
            (subject.missing || ceiling.missing
              ? ` | missing sage ${subject.missing} raw ${ceiling.missing}`
              : '') +
            (subject.errors || ceiling.errors
              ? ` | errors sage ${subject.errors} raw ${ceiling.errors}: ${subject.firstError ?? ceiling.firstError}`
              : ''),
        );
      }
      return {
        kind: 'outbox-commit-to-publish',
        name: NAME,
        description: this.description,
        labels: {
          subject:
            'OutboxPublisher in dataSource.transaction (TypeORM) → OutboxRelay (own DataSource) → InMemoryBroker subscriber',
          ceiling:
            'node-postgres Pool committing the same two INSERTs → a node-postgres loop sending the same claim + mark-sent ' +
            'statements, woken by the same NOTIFY on its own LISTEN connection; "received" when its claim returns',
        },
        config: {
          ratePerSec: o.latencyRatePerSec,
          messagesPerTx: 1,
          keys: BENCH_KEYS,
          payloadBytes: payloadBytes(),
          durationMsPerSideAndMode: o.latencyDurationMs,
          slices: o.latencySlices,
          warmupMsPerSlice: o.latencyWarmupMs,
          batchSize: BATCH_SIZE,
          pollIntervalMs: POLL_INTERVAL_MS,
          producerPool: PRODUCER_POOL,
          relayPool: poolSize,
        },
        points,
      };
    } finally {
      await producerDs.destroy();
      await relayDs.destroy();
      await rawPool.end();
      await Promise.all([
        loader.end(),
        monitorClient.end(),
        sliceMonitorClient.end(),
        foreignClient.end(),
      ]);
    }
  },
};

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
