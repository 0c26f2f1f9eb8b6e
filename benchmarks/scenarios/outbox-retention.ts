import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { EntityManager } from 'typeorm';
import {
  InMemoryBroker,
  OutboxPublisher,
  OutboxRelay,
  OutboxRetention,
  PostgresOutboxStore,
} from '@sage/saga-outbox';
import { clientConfig, openProducerAndRelayDataSources } from '../harness/database';
import { runOpenLoop } from '../harness/open-loop';
import {
  BENCH_DESTINATION,
  BENCH_KEYS,
  OUTBOX_TABLES,
  payloadBytes,
  resetOutboxTables,
  sageCommit,
} from '../harness/outbox-load';
import { PeriodicVacuum } from '../harness/periodic-vacuum';
import { PublishLatencyRecorder } from '../harness/publish-latency';
import { ResourceMonitor } from '../harness/resources';
import type {
  OutboxProfile,
  OutboxRetentionScenarioResult,
  RetentionRun,
} from '../harness/results';
import { round, summarise } from '../harness/stats';
import { slope, TableSampler } from '../harness/table-sampler';
import { TimedOutboxStore } from '../harness/timed-outbox-store';
import type { Scenario, ScenarioContext } from './scenario';

const NAME = 'outbox-retention';
const SAGE_APP = 'sage-bench-outbox';
/** OutboxRetention's default rows per DELETE statement. */
const RETENTION_BATCH = 1000;
const PRODUCER_POOL = 20;

export const outboxRetention: Scenario = {
  name: NAME,
  description:
    'Sustained open-loop load through the Sage write path with a relay (NOTIFY) publishing to the ' +
    'in-memory broker, three times: with OutboxRetention deleting sent rows after a short retention, ' +
    'the same plus a plain VACUUM of the table every few seconds, and without retention. The ' +
    "outbox table's row count and pg_total_relation_size are sampled every second.",

  async run(ctx: ScenarioContext): Promise<OutboxRetentionScenarioResult> {
    const { target, poolSize } = ctx;
    const o: OutboxProfile = ctx.profile.outbox!;
    const txPerSec = o.retentionRatePerSec / o.retentionMessagesPerTx;
    const { producerDs, relayDs } = await openProducerAndRelayDataSources(
      target,
      SAGE_APP,
      PRODUCER_POOL,
      poolSize,
    );
    const publisher = new OutboxPublisher<EntityManager>({
      writer: new PostgresOutboxStore(producerDs),
    });
    const commit = sageCommit(producerDs, publisher, o.retentionMessagesPerTx);
    const loader = new pg.Client(clientConfig(target, 'sage-bench-loader'));
    const monitorClient = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    const samplerClient = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    const vacuumClient = new pg.Client(clientConfig(target, 'sage-bench-vacuum'));
    await Promise.all([
      loader.connect(),
      monitorClient.connect(),
      samplerClient.connect(),
      vacuumClient.connect(),
    ]);

    const runLoad = async (variant: RetentionRun['variant']): Promise<RetentionRun> => {
      const withRetention = variant !== 'none';
      await resetOutboxTables(loader);
      const recorder = new PublishLatencyRecorder();
      const broker = new InMemoryBroker();
      await broker.subscribe(BENCH_DESTINATION, (message) => {
        recorder.received(message.id, performance.now());
        return Promise.resolve();
      });
      const relayStore = new PostgresOutboxStore(relayDs);
      const relay = new OutboxRelay({ store: relayStore, broker });
      const maintenance = new TimedOutboxStore(new PostgresOutboxStore(relayDs));
      const retention = withRetention
        ? new OutboxRetention({
            store: maintenance,
            retentionMs: o.retentionMs,
            intervalMs: o.retentionIntervalMs,
            batchSize: RETENTION_BATCH,
          })
        : undefined;
      const vacuum =
        variant === 'retention+vacuum'
          ? new PeriodicVacuum(vacuumClient, OUTBOX_TABLES.outboxMessage, o.retentionVacuumEveryMs)
          : undefined;
      const monitor = new ResourceMonitor(monitorClient, SAGE_APP);
      const sampler = new TableSampler(samplerClient, OUTBOX_TABLES.outboxMessage);
      const vacuumsBefore = (await sampler.sample()).autovacuums;
      sampler.samples.length = 0;

      relay.start();
      retention?.start();
      let loop;
      let final;
      let backlogAtEnd = 0;
      try {
        loop = await runOpenLoop(commit, {
          ratePerSec: txPerSec,
          warmupMs: 0,
          durationMs: o.retentionDurationMs,
          onCommitted: (ids, at) => recorder.committed(ids, at),
          onWindowStart: () => {
            monitor.start();
            sampler.start();
            vacuum?.start();
          },
          onWindowEnd: () => monitor.stop(),
        });
        await vacuum?.stop();
        final = await sampler.stop();
        const stats = await relayStore.stats();
        backlogAtEnd = stats.pending + stats.claimed;
        await recorder.settle(15_000);
      } finally {
        await vacuum?.stop();
        await retention?.stop();
        await relay.stop();
        await broker.close();
      }
      const samples = sampler.samples;
      const half = o.retentionDurationMs / 2;
      const growth = slope(
        samples.filter((s) => s.atMs >= half).map((s) => ({ x: s.atMs / 1000, y: s.totalBytes })),
      );
      const latency = recorder.result();
      const deleteMs = maintenance.deleteMs.values();
      const vacuumMs = vacuum?.durationsMs.values() ?? new Float64Array();
      return {
        variant,
        retention: withRetention,
        vacuumEveryMs: vacuum ? o.retentionVacuumEveryMs : null,
        windowMs: loop.windowMs,
        committedMessages: loop.committedTotal * o.retentionMessagesPerTx,
        achievedRatePerSec: round(
          (loop.committedInWindow * o.retentionMessagesPerTx) / (loop.windowMs / 1000),
          1,
        ),
        sent: relay.stats.sent,
        deleted: retention?.stats.deletedTotal ?? 0,
        samples,
        maxRows: Math.max(...samples.map((s) => s.rows)),
        maxTotalBytes: Math.max(...samples.map((s) => s.totalBytes)),
        finalRows: final.rows,
        finalTotalBytes: final.totalBytes,
        secondHalfGrowthBytesPerSec: round(growth, 0),
        autovacuums: final.autovacuums - vacuumsBefore,
        vacuums: vacuumMs.length,
        vacuumMs: summarise(vacuumMs),
        deleteBatchMs: summarise(deleteMs),
        deleteStatements: deleteMs.length,
        publishLatencyMs: summarise(latency.samples),
        producerLagMaxMs: round(loop.lagMaxMs, 1),
        backlogAtEnd,
        errors: loop.errors + relay.stats.loop.errors + (retention?.stats.loop.errors ?? 0),
        firstError:
          loop.firstError ?? relay.stats.loop.lastError ?? retention?.stats.loop.lastError ?? null,
        resources: await monitor.usage(),
      };
    };

    try {
      await Promise.all(Array.from({ length: 50 }, (_, i) => commit(-1 - i)));
      const runs: RetentionRun[] = [];
      for (const variant of ['retention', 'retention+vacuum', 'none'] as const) {
        if (runs.length) await sleep(1000); // let the checkpointer and autovacuum settle
        const r = await runLoad(variant);
        log(ctx, r);
        runs.push(r);
      }
      return {
        kind: 'outbox-retention',
        name: NAME,
        description: this.description,
        config: {
          ratePerSec: o.retentionRatePerSec,
          messagesPerTx: o.retentionMessagesPerTx,
          txPerSec: round(txPerSec, 1),
          durationMs: o.retentionDurationMs,
          retentionMs: o.retentionMs,
          retentionIntervalMs: o.retentionIntervalMs,
          retentionBatchSize: RETENTION_BATCH,
          vacuumEveryMs: o.retentionVacuumEveryMs,
          keys: BENCH_KEYS,
          payloadBytes: payloadBytes(),
          producerPool: PRODUCER_POOL,
          relayPool: poolSize,
          autovacuumVacuumScaleFactor: 0.02,
        },
        runs,
      };
    } finally {
      await producerDs.destroy();
      await relayDs.destroy();
      await Promise.all([
        loader.end(),
        monitorClient.end(),
        samplerClient.end(),
        vacuumClient.end(),
      ]);
    }
  },
};

function log(ctx: ScenarioContext, r: RetentionRun): void {
  const mb = (b: number): string => (b / 1024 / 1024).toFixed(1);
  ctx.log(
    `  ${r.variant}: ${r.achievedRatePerSec} msg/s, rows max ${r.maxRows} final ${r.finalRows}, ` +
      `size max ${mb(r.maxTotalBytes)} MB final ${mb(r.finalTotalBytes)} MB, 2nd-half growth ${mb(r.secondHalfGrowthBytesPerSec)} MB/s, ` +
      `deleted ${r.deleted} (${r.deleteStatements} DELETEs, p99 ${r.deleteBatchMs.p99} ms), autovacuums ${r.autovacuums}, VACUUMs ${r.vacuums} (p99 ${r.vacuumMs.p99} ms), ` +
      `publish p50 ${r.publishLatencyMs.p50} p99 ${r.publishLatencyMs.p99} ms, backlog ${r.backlogAtEnd}` +
      (r.errors ? `, errors ${r.errors}: ${r.firstError}` : ''),
  );
}
