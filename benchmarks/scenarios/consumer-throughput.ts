import os from 'node:os';
import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import {
  IdempotentHandler,
  SagaOutboxModule,
  uuidv7,
  type Broker,
  type BrokerMessage,
  type DeliveredMessage,
  type InboxContext,
} from '@sage/saga-outbox';
import { forEachBroker, KAFKA_PARTITIONS, type BrokerTarget } from '../harness/brokers';
import { cpuUsPerMessage, DrainCounter } from '../harness/consumer-drain';
import { clientConfig, sagaDataSource } from '../harness/database';
import { benchMessage, BENCH_KEYS, payloadBytes } from '../harness/outbox-load';
import {
  dropConsumerGroups,
  prepareConsumerGroup,
  startRawConsumer,
} from '../harness/raw-consumers';
import { ResourceMonitor } from '../harness/resources';
import type {
  ConsumerDrainMeasurement,
  ConsumerProfile,
  ConsumerThroughputRun,
  ConsumerThroughputScenarioResult,
} from '../harness/results';
import { round } from '../harness/stats';
import type { Scenario, ScenarioContext } from './scenario';

const NAME = 'consumer-throughput';
const INBOX_APP = 'sage-bench-consumer-inbox';
const NO_DATABASE_APP = 'sage-bench-none';
/** The business table the inbox handler writes one row to per message. */
const CONSUMED_TABLE = 'bench.consumed_order';
const INSERT_CONSUMED = `INSERT INTO ${CONSUMED_TABLE} (message_id, customer_id, total) VALUES ($1, $2, $3)`;
const PRELOAD_BATCH = 500;

type Variant = 'inbox' | 'raw' | 'adapter';
const VARIANTS: readonly Variant[] = ['inbox', 'raw', 'adapter'];

function deadline<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** An @IdempotentHandler service on `destination` writing one business row per message. */
function inboxConsumer(
  destination: string,
  consumer: string,
  counter: { hit: (id: string) => void },
) {
  @Injectable()
  class BenchInboxConsumer {
    @IdempotentHandler(destination, { consumer })
    async onOrder(message: DeliveredMessage, { manager }: InboxContext): Promise<void> {
      const order = message.payload as { customerId: string; total: number };
      await manager.query(INSERT_CONSUMED, [message.id, order.customerId, order.total]);
      counter.hit(message.id);
    }
  }
  return BenchInboxConsumer;
}

function messagesFrom(from: number, count: number, destination: string): BrokerMessage[] {
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

/** Collects one variant's drains of one broker. */
class Side {
  readonly trials: ConsumerDrainMeasurement['trials'] = [];
  duplicates = 0;
  businessRows = 0;
  constructor(readonly monitor: ResourceMonitor) {}

  async measurement(withRows: boolean): Promise<ConsumerDrainMeasurement> {
    const messages = this.trials.reduce((a, t) => a + t.messages, 0);
    const elapsedMs = this.trials.reduce((a, t) => a + t.elapsedMs, 0);
    const resources = await this.monitor.usage();
    const perMsg = (pctOfCore: number | null): number | null =>
      cpuUsPerMessage(pctOfCore, elapsedMs, messages);
    return {
      trials: this.trials,
      throughputPerSec: round(messages / (elapsedMs / 1000), 1),
      resources,
      nodeCpuUsPerMsg: round(
        ((resources.processCpuUserMs + resources.processCpuSystemMs) * 1000) / messages,
        1,
      ),
      pgBackendCpuUsPerMsg: perMsg(resources.pgBackendCpuPct),
      pgServerCpuUsPerMsg: perMsg(resources.pgServerCpuPct),
      duplicates: this.duplicates,
      ...(withRows ? { businessRows: this.businessRows } : {}),
    };
  }
}

const ratioOf = (a: number, b: number): number => (b > 0 ? round(a / b, 3) : NaN);

export const consumerThroughput: Scenario = {
  name: NAME,
  description:
    'N messages pre-loaded on a real Kafka, RabbitMQ and NATS JetStream server (1,000 distinct keys, ' +
    'round robin), then drained from the start by a new consumer group, three ways: the Sage adapter ' +
    'subscribed through the inbox (an `@IdempotentHandler` in a Nest application doing one business ' +
    'INSERT per message in the inbox transaction), the same client library consuming without Sage ' +
    'and without a database (raw ceiling), and the Sage adapter with a handler that does no database ' +
    'work (adapter alone). Timed from the first message handed over to the last one (for the inbox, ' +
    'to its business row being committed).',
  enabled: (profile) => profile.consumers !== undefined,

  async run(ctx: ScenarioContext): Promise<ConsumerThroughputScenarioResult> {
    const { target, poolSize } = ctx;
    const c: ConsumerProfile = ctx.profile.consumers!;
    const n = c.messages;
    const runId = `${Date.now().toString(36)}-c`;
    const admin = new pg.Client(clientConfig(target, 'sage-bench-loader'));
    const monitorClient = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    await Promise.all([admin.connect(), monitorClient.connect()]);
    await admin.query(
      `CREATE TABLE IF NOT EXISTS ${CONSUMED_TABLE} (
         id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
         message_id  uuid        NOT NULL,
         customer_id text        NOT NULL,
         total       numeric     NOT NULL,
         created_at  timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const dataSource: DataSource = sagaDataSource(target, poolSize, INBOX_APP);
    await dataSource.initialize();
    const drainTimeoutMs = Math.max(120_000, n * 30);
    const loadAtStart = round(os.loadavg()[0]!, 2);

    const measureBroker = async (bt: BrokerTarget): Promise<ConsumerThroughputRun> => {
      const group = (variant: Variant, rep: number): string =>
        `bench.consumer-${variant}-${rep}-${runId}`;
      // Pre-loaded once through the adapter (it provisions the NATS stream); every drain reads it all.
      const loader: Broker = bt.sage();
      const sides = {
        inbox: new Side(new ResourceMonitor(monitorClient, INBOX_APP)),
        raw: new Side(new ResourceMonitor(monitorClient, NO_DATABASE_APP)),
        adapter: new Side(new ResourceMonitor(monitorClient, NO_DATABASE_APP)),
      };
      try {
        for (let rep = 0; rep < c.repetitions; rep++)
          for (const v of VARIANTS) await prepareConsumerGroup(bt, loader, group(v, rep));
        for (let from = 0; from < n; from += PRELOAD_BATCH) {
          const results = await loader.publish(
            messagesFrom(from, Math.min(PRELOAD_BATCH, n - from), bt.destination),
          );
          const failed = results.find((r) => !r.ok);
          if (failed && !failed.ok) throw new Error(`pre-load publish failed: ${failed.error}`);
        }

        const drain = async (variant: Variant, rep: number): Promise<void> => {
          const side = sides[variant];
          const counter = new DrainCounter(n, side.monitor, variant === 'inbox');
          const loadAvg1m = round(os.loadavg()[0]!, 2);
          const what = `${variant} consumer of ${n} messages on ${bt.kind}`;
          const name = group(variant, rep);
          if (variant === 'raw') {
            const raw = await startRawConsumer(bt, loader, name, () => counter.hit());
            try {
              await deadline(what, drainTimeoutMs, counter.done);
            } finally {
              await raw.stop();
            }
          } else if (variant === 'adapter') {
            const broker = bt.sage();
            try {
              const sub = await broker.subscribe(
                bt.destination,
                (m) => {
                  counter.hit(m.id);
                  return Promise.resolve();
                },
                { group: name },
              );
              await deadline(what, drainTimeoutMs, counter.done);
              await sub.unsubscribe();
            } finally {
              await broker.close();
            }
          } else {
            await admin.query(`TRUNCATE sage.inbox_message, ${CONSUMED_TABLE}`);
            const broker = bt.sage();
            @Module({
              imports: [
                SagaOutboxModule.forRoot({
                  dataSource,
                  broker,
                  outbox: { relay: { enabled: false }, retention: { enabled: false } },
                  inbox: {
                    retention: { enabled: false },
                    // Measured both ways (issue 17): SAGE_BENCH_INBOX_PREPARED=1 turns it on.
                    preparedStatements: process.env.SAGE_BENCH_INBOX_PREPARED === '1',
                    // Issue 17: deliveries per inbox transaction where the broker batches (Kafka);
                    // SAGE_BENCH_INBOX_BATCH_SIZE=1 measures one transaction per message.
                    batchSize: process.env.SAGE_BENCH_INBOX_BATCH_SIZE
                      ? Number(process.env.SAGE_BENCH_INBOX_BATCH_SIZE)
                      : undefined,
                  },
                }),
              ],
              providers: [inboxConsumer(bt.destination, name, counter)],
            })
            class BenchConsumerModule {}
            let app: INestApplicationContext | undefined;
            try {
              app = await NestFactory.createApplicationContext(BenchConsumerModule, {
                logger: false,
              });
              await deadline(what, drainTimeoutMs, counter.done);
              // The n-th handler call ran in its transaction: done once every row is committed.
              await deadline(
                `${what}: the last business rows committed`,
                30_000,
                (async () => {
                  for (;;) {
                    // Not monitorClient: the resource monitor samples on it meanwhile.
                    const { rows } = await admin.query<{ n: string }>(
                      `SELECT count(*) AS n FROM ${CONSUMED_TABLE}`,
                    );
                    if (Number(rows[0]?.n) >= n) return;
                    await new Promise((r) => setTimeout(r, 2));
                  }
                })(),
              );
              counter.end();
            } finally {
              await app?.close();
              await broker.close();
            }
            const { rows } = await admin.query<{ n: string; distinct: string; dead: string }>(
              `SELECT (SELECT count(*) FROM ${CONSUMED_TABLE}) AS n,
                      (SELECT count(DISTINCT message_id) FROM ${CONSUMED_TABLE}) AS distinct,
                      (SELECT count(*) FROM sage.inbox_message WHERE status = 'dead_letter') AS dead`,
            );
            const row = rows[0]!;
            if (Number(row.n) !== n || Number(row.distinct) !== n || Number(row.dead) !== 0)
              throw new Error(
                `${what}: expected ${n} business rows, one per message, no dead letters; found ${row.n} rows, ${row.distinct} distinct, ${row.dead} dead letters`,
              );
            side.businessRows += Number(row.n);
          }
          const elapsedMs = counter.t1 - counter.t0;
          side.duplicates += counter.duplicates;
          side.trials.push({
            messages: n,
            elapsedMs: round(elapsedMs, 1),
            perSec: round(n / (elapsedMs / 1000), 1),
            loadAvg1m,
          });
        };

        // Rotating order (inbox raw adapter, raw adapter inbox, ...): load from the rest of the
        // machine falls on every side rather than on whichever always runs last.
        for (let rep = 0; rep < c.repetitions; rep++)
          for (let i = 0; i < VARIANTS.length; i++)
            await drain(VARIANTS[(i + rep) % VARIANTS.length]!, rep);

        const inbox = await sides.inbox.measurement(true);
        const raw = await sides.raw.measurement(false);
        const adapter = await sides.adapter.measurement(false);
        const ratio = {
          inboxToRaw: ratioOf(inbox.throughputPerSec, raw.throughputPerSec),
          adapterToRaw: ratioOf(adapter.throughputPerSec, raw.throughputPerSec),
          inboxToAdapter: ratioOf(inbox.throughputPerSec, adapter.throughputPerSec),
          pairedInboxToRaw: inbox.trials.map((t, i) =>
            ratioOf(t.perSec, raw.trials[i]?.perSec ?? NaN),
          ),
        };
        ctx.log(
          `  ${bt.kind}: inbox ${inbox.throughputPerSec} msg/s | raw ${raw.throughputPerSec} | adapter ${adapter.throughputPerSec} | ` +
            `inbox/raw ${ratio.inboxToRaw} (pairs ${ratio.pairedInboxToRaw.join(', ')}), adapter/raw ${ratio.adapterToRaw} | ` +
            `CPU µs/msg node ${inbox.nodeCpuUsPerMsg} / ${raw.nodeCpuUsPerMsg} / ${adapter.nodeCpuUsPerMsg}, ` +
            `PG backends ${inbox.pgBackendCpuUsPerMsg ?? 'n/a'} (all PG ${inbox.pgServerCpuUsPerMsg ?? 'n/a'}) | ` +
            `load ${inbox.trials.map((t) => t.loadAvg1m).join(', ')}`,
        );
        return {
          broker: bt.kind,
          address: bt.address,
          client: bt.client,
          inbox,
          raw,
          adapter,
          ratio,
        };
      } finally {
        const groups = Array.from({ length: c.repetitions }, (_, rep) =>
          VARIANTS.map((v) => group(v, rep)),
        ).flat();
        await dropConsumerGroups(bt, loader, groups).catch((error: unknown) =>
          ctx.log(`  ${bt.kind}: removing the drains' consumer groups failed: ${String(error)}`),
        );
        await loader.close().catch(() => undefined);
      }
    };

    try {
      const { results, skipped } = await forEachBroker(runId, ctx.log, measureBroker);
      return {
        kind: 'consumer-throughput',
        name: NAME,
        description: this.description,
        config: {
          messages: n,
          keys: BENCH_KEYS,
          payloadBytes: payloadBytes(),
          repetitions: c.repetitions,
          poolSize,
          kafkaPartitions: KAFKA_PARTITIONS,
          loadAvg1mAtStart: loadAtStart,
          rabbitQueue: 'quorum (adapter default), one per consumer group',
          natsStorage: 'file (adapter default)',
        },
        brokers: results.map(
          (r): ConsumerThroughputRun =>
            r.result ?? {
              broker: r.target.kind,
              address: r.target.address,
              client: r.target.client,
              error: r.error,
            },
        ),
        skipped,
      };
    } finally {
      await dataSource.destroy();
      await Promise.all([admin.end(), monitorClient.end()]);
    }
  },
};
