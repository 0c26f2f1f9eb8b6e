import os from 'node:os';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import {
  OutboxRelay,
  PostgresOutboxStore,
  uuidv7,
  type Broker,
  type BrokerMessage,
} from '@sage/saga-outbox';
import {
  brokerRuns,
  forEachBroker,
  KAFKA_PARTITIONS,
  NATS_MAX_PENDING,
  brokerMessageOf,
  type BrokerTarget,
  type RawPublisher,
} from '../harness/brokers';
import { clientConfig, openSagaDataSources } from '../harness/database';
import { RawRelay } from '../harness/raw-relay';
import {
  benchMessage,
  BENCH_KEYS,
  OUTBOX_TABLES,
  payloadBytes,
  preloadOutbox,
  resetOutboxTables,
} from '../harness/outbox-load';
import { othersCpu } from '../harness/report-format';
import { ResourceMonitor } from '../harness/resources';
import type {
  BrokerDrainMeasurement,
  BrokerDrainPoint,
  BrokerDrainTrial,
  BrokerProfile,
  BrokerThroughputRun,
  OutboxBrokerThroughputScenarioResult,
} from '../harness/results';
import { round } from '../harness/stats';
import {
  BATCH_SIZE,
  CALLS_IN_FLIGHT,
  MAX_IN_FLIGHT,
  PUBLISH_BATCH_SIZE,
} from '../harness/relay-defaults';
import type { Scenario, ScenarioContext } from './scenario';

const NAME = 'outbox-broker-throughput';
const RELAY_APP = 'sage-bench-broker-relay';
const RAW_RELAY_APP = 'sage-bench-broker-raw-relay';
const CORES = os.cpus().length;

function deadline<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** One warm-up message through a Broker, so connecting / provisioning is not timed. */
async function warm(broker: Broker, destination: string): Promise<void> {
  const m = benchMessage(-1, uuidv7(), destination);
  const [r] = await broker.publish([
    {
      id: m.id!,
      destination,
      key: m.key ?? null,
      type: m.type,
      payload: m.payload,
      headers: {},
      time: new Date(),
    },
  ]);
  if (!r?.ok) throw new Error(`warm-up publish failed: ${r && !r.ok ? r.error : 'no result'}`);
}

function messages(from: number, count: number, destination: string): BrokerMessage[] {
  const now = new Date();
  return Array.from({ length: count }, (_, i) => {
    const m = benchMessage(from + i, uuidv7(), destination);
    return {
      id: m.id!,
      destination,
      key: m.key ?? null,
      type: m.type,
      payload: m.payload,
      headers: {},
      time: now,
    };
  });
}

export const outboxBrokerThroughput: Scenario = {
  name: NAME,
  description:
    'N messages pre-loaded in the outbox (1,000 distinct keys), then drained by 1, 2 or 4 OutboxRelays ' +
    '(in-process, each with its own DataSource and its own Broker instance, as separate relay processes ' +
    'would have) publishing to a real Kafka, RabbitMQ and NATS JetStream server through the Sage ' +
    'adapters. Timed from start() to the last batch recorded sent. The raw ceiling is the same client ' +
    'library publishing the same messages (same body and headers) with the same window, no database.',

  async run(ctx: ScenarioContext): Promise<OutboxBrokerThroughputScenarioResult> {
    const { target, poolSize } = ctx;
    const b: BrokerProfile = ctx.profile.brokers!;
    const n = b.drainMessages;
    const runId = `${Date.now().toString(36)}-t`;
    const loader = new pg.Client(clientConfig(target, 'sage-bench-loader'));
    const monitorClient = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    const drainMonitorClient = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    await Promise.all([loader.connect(), monitorClient.connect(), drainMonitorClient.connect()]);
    const maxWorkers = Math.max(...b.workerCounts);
    const dataSources = await openSagaDataSources(target, maxWorkers, poolSize, RELAY_APP);
    const drainTimeoutMs = Math.max(120_000, n * 5);

    const measureBroker = async (bt: BrokerTarget): Promise<BrokerThroughputRun> => {
      const points: BrokerDrainPoint[] = [];
      for (const workers of b.workerCounts) {
        const brokers = Array.from({ length: workers }, () => bt.sage());
        const raws: RawPublisher[] = [];
        try {
          await Promise.all(brokers.map((br) => warm(br, bt.destination)));
          for (let i = 0; i < workers; i++) raws.push(await bt.raw());
          await Promise.all(raws.map((r) => r.publish(messages(-1, 1, bt.destination))));

          const relaySide = new Side(new ResourceMonitor(monitorClient, RELAY_APP));
          const rawSide = new Side(new ResourceMonitor(monitorClient, 'sage-bench-none'));
          const rawRelaySide = new Side(new ResourceMonitor(monitorClient, RAW_RELAY_APP));

          const load = async (): Promise<void> => {
            await resetOutboxTables(loader);
            await preloadOutbox(loader, n, 1000, bt.destination);
            await loader.query(`VACUUM (ANALYZE) ${OUTBOX_TABLES.outboxMessage}`);
            await loader.query('CHECKPOINT');
            await bt.purge();
          };

          const drainRawRelays = async (): Promise<void> => {
            await load();
            let finish: (at: number) => void = () => undefined;
            const finished = new Promise<number>((resolve) => (finish = resolve));
            const loops: RawRelay[] = raws.map(
              (raw) =>
                new RawRelay({
                  client: clientConfig(target, RAW_RELAY_APP),
                  batchSize: BATCH_SIZE,
                  leaseMs: 30_000,
                  idle: 'spin',
                  publish: (rows) => windowed(raw, rows.map(brokerMessageOf)),
                  onMarked: () => {
                    if (loops.reduce((a, l) => a + l.stats.sent, 0) >= n) finish(performance.now());
                  },
                }),
            );
            await Promise.all(loops.map((l) => l.connect()));
            const own = new ResourceMonitor(drainMonitorClient, RAW_RELAY_APP);
            rawRelaySide.monitor.start();
            own.start();
            const t0 = performance.now();
            loops.forEach((l) => l.start());
            let t1: number;
            try {
              t1 = await deadline(
                `${workers} raw relay loop(s) → ${bt.kind}`,
                drainTimeoutMs,
                finished,
              );
            } finally {
              rawRelaySide.monitor.stop();
              own.stop();
              await Promise.all(loops.map((l) => l.close()));
            }
            rawRelaySide.add(trial(n, t1 - t0, othersCpu(await own.usage(), CORES)), {});
          };

          const drainRelays = async (): Promise<void> => {
            await load();
            await Promise.all(dataSources.slice(0, workers).map((ds) => ds.query('SELECT 1')));
            let sent = 0;
            let retried = 0;
            let finish: (at: number) => void = () => undefined;
            const finished = new Promise<number>((resolve) => (finish = resolve));
            const relays = brokers.map(
              (broker, i) =>
                new OutboxRelay({
                  store: new PostgresOutboxStore(dataSources[i]!),
                  broker,
                  relayId: `bench-${bt.kind}-${i}`,
                  batchSize: BATCH_SIZE,
                  publishBatchSize: PUBLISH_BATCH_SIZE,
                  maxInFlight: MAX_IN_FLIGHT,
                  onBatch: (report) => {
                    sent += report.sent;
                    retried += report.retried + report.deadLettered;
                    if (sent >= n) finish(performance.now());
                  },
                }),
            );
            const own = new ResourceMonitor(drainMonitorClient, RELAY_APP);
            relaySide.monitor.start();
            own.start();
            const t0 = performance.now();
            relays.forEach((r) => r.start());
            let t1: number;
            try {
              t1 = await deadline(`${workers} relay(s) → ${bt.kind}`, drainTimeoutMs, finished);
            } finally {
              relaySide.monitor.stop();
              own.stop();
              await Promise.all(relays.map((r) => r.stop()));
            }
            relaySide.add(trial(n, t1 - t0, othersCpu(await own.usage(), CORES)), {
              failedPublishes: retried,
              staleMarks: relays.reduce((a, r) => a + r.stats.staleMarks, 0),
              loopErrors: relays.reduce((a, r) => a + r.stats.loop.errors, 0),
            });
          };

          const drainRaw = async (): Promise<void> => {
            await bt.purge();
            // Built before the clock starts: the relay reads its rows from the table, the raw side
            // from memory.
            const share = Math.ceil(n / workers);
            const queues = raws.map((_, w) =>
              messages(w * share, Math.min(share, n - w * share), bt.destination),
            );
            const own = new ResourceMonitor(drainMonitorClient, 'sage-bench-none');
            rawSide.monitor.start();
            own.start();
            const t0 = performance.now();
            let t1: number;
            try {
              await deadline(
                `${workers} raw publisher(s) → ${bt.kind}`,
                drainTimeoutMs,
                Promise.all(raws.map((raw, w) => windowed(raw, queues[w]!))),
              );
              t1 = performance.now();
            } finally {
              rawSide.monitor.stop();
              own.stop();
            }
            rawSide.add(trial(n, t1 - t0, othersCpu(await own.usage(), CORES)), {});
          };

          for (let rep = 0; rep < b.drainRepetitions; rep++) {
            if (rep % 2 === 0) {
              await drainRelays();
              await drainRaw();
            } else {
              await drainRaw();
              await drainRelays();
            }
          }
          if (b.rawRelayDrains) await drainRawRelays();
          const subject = await relaySide.measurement();
          const ceiling = await rawSide.measurement();
          const paired = subject.trials.map((t, i) =>
            round(t.perSec / (ceiling.trials[i]?.perSec ?? NaN), 3),
          );
          const ratio = {
            throughput: median(paired),
            throughputTotals: round(subject.throughputPerSec / ceiling.throughputPerSec, 3),
            paired,
          };
          const rawRelay = b.rawRelayDrains ? await rawRelaySide.measurement() : undefined;
          points.push({ workers, subject, ceiling, rawRelay, ratio });
          ctx.log(
            `  ${bt.kind} workers=${workers}: relay ${subject.throughputPerSec} msg/s | raw ${ceiling.throughputPerSec} msg/s | ` +
              `ratio ${ratio.throughput} (pairs ${paired.join(', ')})` +
              (rawRelay ? ` | raw relay loop ${rawRelay.throughputPerSec} msg/s` : '') +
              (subject.notes.failedPublishes
                ? ` | failed publishes ${subject.notes.failedPublishes}`
                : ''),
          );
        } finally {
          await Promise.allSettled(brokers.map((br) => br.close()));
          await Promise.allSettled(raws.map((r) => r.close()));
        }
      }
      return { broker: bt.kind, address: bt.address, client: bt.client, points };
    };

    try {
      const { results, skipped } = await forEachBroker(runId, ctx.log, measureBroker);
      return {
        kind: 'outbox-broker-throughput',
        name: NAME,
        description: this.description,
        labels: {
          subject:
            'OutboxRelay × workers (own DataSource + own Sage Broker adapter each) claiming from PostgreSQL',
          ceiling:
            `the adapter's client library × workers (own connection each), ${CALLS_IN_FLIGHT} publish calls of ` +
            `${PUBLISH_BATCH_SIZE} in flight per worker (sliding, no claim/mark barrier), NATS capped at ` +
            `${NATS_MAX_PENDING} unacknowledged like the adapter; messages built in memory`,
        },
        config: {
          messages: n,
          keys: BENCH_KEYS,
          payloadBytes: payloadBytes(),
          batchSize: BATCH_SIZE,
          publishBatchSize: PUBLISH_BATCH_SIZE,
          maxInFlight: MAX_IN_FLIGHT,
          callsInFlightPerWorker: CALLS_IN_FLIGHT,
          repetitions: b.drainRepetitions,
          kafkaPartitions: KAFKA_PARTITIONS,
          rabbitQueue: 'quorum (adapter default), durable, persistent messages',
          natsStorage: 'file (adapter default)',
          poolSize,
        },
        brokers: brokerRuns(results),
        skipped,
      };
    } finally {
      await Promise.all(dataSources.map((ds) => ds.destroy()));
      await Promise.all([loader.end(), monitorClient.end(), drainMonitorClient.end()]);
    }
  },
};

/** Publishes `all` in calls of PUBLISH_BATCH_SIZE with CALLS_IN_FLIGHT calls outstanding at once. */
export async function windowed(raw: RawPublisher, all: readonly BrokerMessage[]): Promise<void> {
  if (all.length <= PUBLISH_BATCH_SIZE) return raw.publish(all);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const from = next;
      if (from >= all.length) return;
      next += PUBLISH_BATCH_SIZE;
      await raw.publish(all.slice(from, from + PUBLISH_BATCH_SIZE));
    }
  };
  await Promise.all(Array.from({ length: CALLS_IN_FLIGHT }, worker));
}

function trial(messages: number, elapsedMs: number, otherCpuPct: number | null): BrokerDrainTrial {
  return {
    messages,
    elapsedMs: round(elapsedMs, 1),
    perSec: round(messages / (elapsedMs / 1000), 1),
    otherCpuPct,
  };
}

class Side {
  readonly trials: BrokerDrainTrial[] = [];
  readonly notes: Record<string, number> = {};
  constructor(readonly monitor: ResourceMonitor) {}

  add(t: BrokerDrainTrial, notes: Record<string, number>): void {
    this.trials.push(t);
    for (const [k, v] of Object.entries(notes)) this.notes[k] = (this.notes[k] ?? 0) + v;
  }

  async measurement(): Promise<BrokerDrainMeasurement> {
    const messages = this.trials.reduce((a, t) => a + t.messages, 0);
    const elapsedMs = this.trials.reduce((a, t) => a + t.elapsedMs, 0);
    return {
      trials: this.trials,
      throughputPerSec: round(messages / (elapsedMs / 1000), 1),
      resources: await this.monitor.usage(),
      notes: this.notes,
    };
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (!sorted.length) return NaN;
  return sorted.length % 2 ? sorted[mid]! : round((sorted[mid - 1]! + sorted[mid]!) / 2, 3);
}
