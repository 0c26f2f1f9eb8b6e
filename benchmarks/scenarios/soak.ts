import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { EntityManager } from 'typeorm';
import {
  OutboxPublisher,
  OutboxRelay,
  OutboxRetention,
  PostgresOutboxStore,
} from '@sage/saga-outbox';
import { brokerTargets } from '../harness/brokers';
import { clientConfig, openProducerAndRelayDataSources } from '../harness/database';
import { stampedBroker } from '../harness/timed-broker';
import { runOpenLoop } from '../harness/open-loop';
import { OUTBOX_TABLES, resetOutboxTables, sageCommit } from '../harness/outbox-load';
import { ResourceMonitor } from '../harness/resources';
import type { BrokerProfile, SoakSample, SoakScenarioResult } from '../harness/results';
import { round, SampleBuffer, summarise, summarise999 } from '../harness/stats';
import { slope } from '../harness/table-sampler';
import type { Scenario, ScenarioContext } from './scenario';

const NAME = 'soak';
const APP = 'sage-bench-soak';
const PRODUCER_POOL = 20;

/**
 * The long run of `--profile soak`: the relay with NOTIFY publishing to one real broker at a
 * steady offered rate for many minutes, with OutboxRetention deleting sent rows as a deployment
 * would, sampled every few seconds: RSS and heap (a leak shows as growth), commit → ack p50 / p99 of
 * the messages acknowledged in each interval, the outbox backlog, connections, CPU.
 */
export const soak: Scenario = {
  name: NAME,
  description:
    'OutboxPublisher (TypeORM) → OutboxRelay (NOTIFY) → a real broker at a steady open-loop rate for ' +
    'the whole soak, OutboxRetention on (sent rows deleted after 60 s); sampled at a fixed interval.',
  enabled: (profile) => (profile.brokers?.soakDurationMs ?? 0) > 0,

  async run(ctx: ScenarioContext): Promise<SoakScenarioResult> {
    const { target, poolSize } = ctx;
    const b: BrokerProfile = ctx.profile.brokers!;
    const bt = brokerTargets(`${Date.now().toString(36)}-s`).targets.find(
      (t) => t.kind === b.matrixBroker,
    );
    if (!bt) throw new Error(`soak: ${b.matrixBroker} is not configured`);
    const { producerDs, relayDs } = await openProducerAndRelayDataSources(
      target,
      APP,
      PRODUCER_POOL,
      poolSize,
    );
    const admin = new pg.Client(clientConfig(target, 'sage-bench-loader'));
    const monitorClient = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    await Promise.all([admin.connect(), monitorClient.connect()]);
    await resetOutboxTables(admin);
    await bt.setup();
    const broker = bt.sage();

    const committedAt = new Map<string, number>();
    const earlyAcks = new Map<string, number>();
    let interval = new SampleBuffer();
    const all = new SampleBuffer();
    let ackedInInterval = 0;
    const onAck = (id: string, at: number, inWindow: boolean): void => {
      const c = committedAt.get(id);
      if (c === undefined) {
        if (inWindow) earlyAcks.set(id, at);
        return;
      }
      committedAt.delete(id);
      const d = Math.max(0, at - c);
      interval.push(d);
      all.push(d);
      ackedInInterval++;
    };
    let windowOpen = false;
    const store = new PostgresOutboxStore(relayDs);
    const relay = new OutboxRelay({
      store,
      broker: stampedBroker(broker, (id, at) => onAck(id, at, windowOpen)),
    });
    const retention = new OutboxRetention({ store, retentionMs: 60_000, intervalMs: 5_000 });
    const publisher = new OutboxPublisher<EntityManager>({
      writer: new PostgresOutboxStore(producerDs),
    });
    const monitor = new ResourceMonitor(monitorClient, APP);
    const samples: SoakSample[] = [];
    let sampling = true;
    let started = 0;
    let cpuBase = process.cpuUsage();
    let cpuAt = performance.now();
    const sampler = async (): Promise<void> => {
      while (sampling) {
        await sleep(b.soakSampleEveryMs);
        if (!sampling) break;
        const mem = process.memoryUsage();
        const { rows } = await monitorClient.query<{ backlog: number; conns: number }>(
          `SELECT (SELECT count(*)::int FROM ${OUTBOX_TABLES.outboxMessage} WHERE status IN ('pending', 'claimed')) AS backlog,
                  (SELECT count(*)::int FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1) AS conns`,
          [APP],
        );
        const now = performance.now();
        const cpu = process.cpuUsage(cpuBase);
        const s = summarise(interval.values());
        samples.push({
          atMs: Math.round(now - started),
          rssMb: round(mem.rss / 1024 / 1024, 1),
          heapUsedMb: round(mem.heapUsed / 1024 / 1024, 1),
          p50: s.p50,
          p99: s.p99,
          acked: ackedInInterval,
          backlog: rows[0]?.backlog ?? 0,
          pgConnections: rows[0]?.conns ?? 0,
          processCpuPct: round(((cpu.user + cpu.system) / 1000 / (now - cpuAt)) * 100, 1),
          loadAvg1m: round(os.loadavg()[0]!, 2),
        });
        ctx.log(
          `  ${Math.round((now - started) / 1000)} s: rss ${samples[samples.length - 1]!.rssMb} MB, p50 ${s.p50} p99 ${s.p99} ms, acked ${ackedInInterval}, backlog ${rows[0]?.backlog}`,
        );
        interval = new SampleBuffer();
        ackedInInterval = 0;
        cpuBase = process.cpuUsage();
        cpuAt = now;
      }
    };

    let loop: Awaited<ReturnType<typeof runOpenLoop>> | undefined;
    let sampling$: Promise<void> | undefined;
    try {
      relay.start();
      retention.start();
      loop = await runOpenLoop(sageCommit(producerDs, publisher, 1, bt.destination), {
        ratePerSec: b.soakRatePerSec,
        warmupMs: 5_000,
        durationMs: b.soakDurationMs,
        // Bounded, so a stalled relay shows as backlog rather than unbounded producer memory.
        maxInFlight: 2_000,
        onCommitted: (ids, at, inWindow) => {
          if (!inWindow) return;
          for (const id of ids) {
            const early = earlyAcks.get(id);
            if (early !== undefined) {
              earlyAcks.delete(id);
              interval.push(0);
              all.push(0);
              ackedInInterval++;
            } else committedAt.set(id, at);
          }
        },
        onWindowStart: () => {
          windowOpen = true;
          started = performance.now();
          cpuBase = process.cpuUsage();
          cpuAt = started;
          monitor.start();
          sampling$ = sampler();
        },
        onWindowEnd: () => {
          windowOpen = false;
          sampling = false;
          monitor.stop();
        },
      });
      const settleUntil = performance.now() + 15_000;
      while (committedAt.size && performance.now() < settleUntil) await sleep(50);
    } finally {
      sampling = false;
      await sampling$;
      await relay.stop();
      await retention.stop();
      await broker.close().catch(() => undefined);
      await bt.teardown().catch(() => undefined);
      await producerDs.destroy();
      await relayDs.destroy();
      await admin.end();
    }
    const resources = await monitor.usage();
    await monitorClient.end();
    const half = samples.filter((s) => s.atMs >= b.soakDurationMs / 2);
    const growthPerMs = slope(half.map((s) => ({ x: s.atMs, y: s.rssMb })));
    return {
      kind: 'soak',
      name: NAME,
      description: this.description,
      config: {
        broker: bt.kind,
        ratePerSec: b.soakRatePerSec,
        durationMs: b.soakDurationMs,
        sampleEveryMs: b.soakSampleEveryMs,
        retentionMs: 60_000,
        producerPool: PRODUCER_POOL,
        relayPool: poolSize,
      },
      samples,
      latencyMs: summarise999(all.values()),
      committed: loop.committedInWindow,
      missing: committedAt.size,
      errors: loop.errors,
      firstError: loop.firstError,
      rssGrowthMbPerMin: Number.isFinite(growthPerMs) ? round(growthPerMs * 60_000, 2) : 0,
      resources,
    };
  },
};
