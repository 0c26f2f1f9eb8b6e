import os from 'node:os';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { OutboxRelay, PostgresOutboxStore, uuidv7, type Broker } from '@sage/saga-outbox';
import { forEachBroker, type BrokerKind, type BrokerTarget } from '../harness/brokers';
import { clientConfig, openSagaDataSources } from '../harness/database';
import {
  benchMessage,
  BENCH_KEYS,
  OUTBOX_TABLES,
  payloadBytes,
  preloadOutbox,
  resetOutboxTables,
} from '../harness/outbox-load';
import { BATCH_SIZE, MAX_IN_FLIGHT, PUBLISH_BATCH_SIZE } from '../harness/relay-defaults';
import type {
  BrokerProfile,
  BrokerTuningRun,
  BrokerTuningScenarioResult,
  BrokerTuningSetting,
  BrokerTuningTrial,
} from '../harness/results';
import { round } from '../harness/stats';
import type { Scenario, ScenarioContext } from './scenario';

const NAME = 'broker-tuning';
const RELAY_APP = 'sage-bench-tuning-relay';

/**
 * The settings measured per broker, the adapter defaults first (the baseline every ratio divides
 * by). Publishing knobs only: what a relay's throughput depends on. RabbitMQ `prefetch` and NATS
 * `prefetch` / `concurrency` (max ack pending) shape consumers, not the relay.
 */
export const TUNING_SETTINGS: Record<BrokerKind, { label: string; options: object }[]> = {
  kafka: [
    { label: 'defaults (no compression, no linger, no batch limit)', options: {} },
    { label: 'compression gzip', options: { producer: { compression: 'gzip' } } },
    { label: 'linger 5 ms', options: { producer: { lingerMs: 5 } } },
    { label: 'batch size 25 messages', options: { producer: { batchSize: 25 } } },
    {
      label: 'linger 5 ms + gzip + batch size 500',
      options: { producer: { lingerMs: 5, compression: 'gzip', batchSize: 500 } },
    },
  ],
  rabbitmq: [
    { label: 'defaults (no confirm window limit)', options: {} },
    { label: 'publish window 16', options: { publishWindow: 16 } },
    { label: 'publish window 128', options: { publishWindow: 128 } },
  ],
  nats: [
    { label: 'defaults (maxPending 256)', options: {} },
    { label: 'maxPending 32', options: { maxPending: 32 } },
    { label: 'maxPending 1024', options: { maxPending: 1024 } },
  ],
};

function deadline<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** One warm-up message, so connecting and provisioning are not timed. */
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

export const brokerTuning: Scenario = {
  name: NAME,
  description:
    'N messages pre-loaded in the outbox (1,000 distinct keys), drained by one OutboxRelay (bench relay ' +
    'settings; one unrecorded drain first) through the Sage adapter built with each publishing setting in turn, per broker, in the ' +
    'same run: rounds go through the settings forwards then backwards, so drift on the shared machine ' +
    'falls on every setting alike. Each ratio divides by the adapter defaults of the same round.',

  async run(ctx: ScenarioContext): Promise<BrokerTuningScenarioResult> {
    const { target, poolSize } = ctx;
    const b: BrokerProfile = ctx.profile.brokers!;
    const n = b.drainMessages;
    const rounds = Math.max(2, b.drainRepetitions);
    const runId = `${Date.now().toString(36)}-k`;
    const loader = new pg.Client(clientConfig(target, 'sage-bench-loader'));
    await loader.connect();
    const [dataSource] = await openSagaDataSources(target, 1, poolSize, RELAY_APP);
    const drainTimeoutMs = Math.max(120_000, n * 5);

    const drain = async (
      bt: BrokerTarget,
      broker: Broker,
    ): Promise<{ trial: BrokerTuningTrial; failed: number }> => {
      await resetOutboxTables(loader);
      await preloadOutbox(loader, n, 1000, bt.destination);
      await loader.query(`VACUUM (ANALYZE) ${OUTBOX_TABLES.outboxMessage}`);
      await loader.query('CHECKPOINT');
      await bt.purge();
      let sent = 0;
      let failed = 0;
      let finish: (at: number) => void = () => undefined;
      const finished = new Promise<number>((resolve) => (finish = resolve));
      const relay = new OutboxRelay({
        store: new PostgresOutboxStore(dataSource!),
        broker,
        relayId: `bench-tuning-${bt.kind}`,
        batchSize: BATCH_SIZE,
        publishBatchSize: PUBLISH_BATCH_SIZE,
        maxInFlight: MAX_IN_FLIGHT,
        onBatch: (report) => {
          sent += report.sent;
          failed += report.retried + report.deadLettered;
          if (sent >= n) finish(performance.now());
        },
      });
      const loadAvg1m = round(os.loadavg()[0]!, 2);
      const t0 = performance.now();
      relay.start();
      let t1: number;
      try {
        t1 = await deadline(`relay → ${bt.kind}`, drainTimeoutMs, finished);
      } finally {
        await relay.stop();
      }
      const elapsedMs = t1 - t0;
      return {
        trial: {
          messages: n,
          elapsedMs: round(elapsedMs, 1),
          perSec: round(n / (elapsedMs / 1000), 1),
          otherCpuPct: null,
          loadAvg1m,
        },
        failed,
      };
    };

    const measureBroker = async (bt: BrokerTarget): Promise<BrokerTuningRun> => {
      const settings = TUNING_SETTINGS[bt.kind];
      const brokers = settings.map((s) => bt.sage(s.options));
      const trials: BrokerTuningTrial[][] = settings.map(() => []);
      const failed = settings.map(() => 0);
      try {
        for (const broker of brokers) await warm(broker, bt.destination);
        // One unrecorded drain first: the first one on a fresh topic / queue / stream paid for
        // partition leadership, producer ids and caches (54 s against 1.8 s for the next in a
        // quick run here).
        await drain(bt, brokers[0]!);
        for (let round_ = 0; round_ < rounds; round_++) {
          const order = settings.map((_, i) => i);
          if (round_ % 2 === 1) order.reverse();
          for (const i of order) {
            const { trial, failed: f } = await drain(bt, brokers[i]!);
            trials[i]!.push(trial);
            failed[i]! += f;
          }
        }
      } finally {
        await Promise.allSettled(brokers.map((br) => br.close()));
      }
      const result: BrokerTuningSetting[] = settings.map((s, i) => {
        const own = trials[i]!;
        const elapsed = own.reduce((a, t) => a + t.elapsedMs, 0);
        const paired = own.map((t, r) => t.perSec / trials[0]![r]!.perSec);
        return {
          label: s.label,
          options: s.options as Record<string, unknown>,
          trials: own,
          throughputPerSec: round((own.length * n) / (elapsed / 1000), 1),
          ratio: round(median(paired), 3),
          failedPublishes: failed[i]!,
        };
      });
      for (const s of result)
        ctx.log(
          `  ${bt.kind} ${s.label}: ${s.throughputPerSec} msg/s, ratio ${s.ratio} ` +
            `(load ${s.trials.map((t) => t.loadAvg1m).join(', ')})` +
            (s.failedPublishes ? ` | failed publishes ${s.failedPublishes}` : ''),
        );
      return { broker: bt.kind, address: bt.address, client: bt.client, settings: result };
    };

    try {
      const { results, skipped } = await forEachBroker(runId, ctx.log, measureBroker);
      return {
        kind: 'broker-tuning',
        name: NAME,
        description: this.description,
        config: {
          messages: n,
          rounds,
          keys: BENCH_KEYS,
          payloadBytes: payloadBytes(),
          batchSize: BATCH_SIZE,
          publishBatchSize: PUBLISH_BATCH_SIZE,
          maxInFlight: MAX_IN_FLIGHT,
          relays: 1,
          poolSize,
        },
        brokers: results.map(
          (r): BrokerTuningRun =>
            r.result ?? {
              broker: r.target.kind,
              address: r.target.address,
              client: r.target.client,
              settings: [],
              error: r.error,
            },
        ),
        skipped,
      };
    } finally {
      await dataSource?.destroy();
      await loader.end();
    }
  },
};

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (!sorted.length) return NaN;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
