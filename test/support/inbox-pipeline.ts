/**
 * The consumer side of Sage end to end, for the transport, duplicate-delivery and broker-restart
 * tests: a Nest app with SagaOutboxModule (PostgreSQL + a real broker, relay running), business
 * rows written in the consumer's inbox transaction into `public.effect`, helpers to write outbox
 * rows and read effects back, and to inspect / delete what the test declared on RabbitMQ and NATS.
 */
import type { INestApplication, ModuleMetadata } from '@nestjs/common';
import type { MicroserviceOptions } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as amqpConnect, type Channel } from 'amqplib';
import type { EntityManager } from 'typeorm';
import { connect as natsConnect } from '../../libs/saga-outbox/src/brokers/nats/nats-client';
import type { JsonValue } from '../../libs/saga-outbox/src/core/json';
import type { Broker } from '../../libs/saga-outbox/src/core/ports/broker';
import type { OutboxMessageInput } from '../../libs/saga-outbox/src/core/outbox/outbox-message';
import { OutboxRepository } from '../../libs/saga-outbox/src/nest/outbox/outbox.providers';
import { SageDatabase } from '../../libs/saga-outbox/src/nest/sage-database';
import { SagaOutboxModule } from '../../libs/saga-outbox/src/nest/saga-outbox.module';
import type { InboxModuleOptions } from '../../libs/saga-outbox/src/nest/inbox/inbox.options';
import { waitUntil } from '@sage/saga-outbox/testing';
import { createTestDatabase, sagePostgresOptions, withClient, type TestDatabase } from './pg';

export { waitUntil };

/** One row per business effect: what a handler wrote in its inbox transaction. */
export const EFFECT_TABLE_SQL = `CREATE TABLE IF NOT EXISTS public.effect (
  id bigserial PRIMARY KEY,
  consumer text NOT NULL,
  message_id text NOT NULL,
  key text,
  seq int,
  data jsonb
)`;

export async function createEffectTable(db: TestDatabase): Promise<void> {
  await withClient(db.name, (client) => client.query(EFFECT_TABLE_SQL));
}

/** A fresh test database (migrated clone) with the effect table. */
export async function createPipelineDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  await createEffectTable(db);
  return db;
}

/** Payloads a transport could mangle: an object shaped like a Nest packet, a string, a number, null. */
export const AWKWARD_PAYLOADS: readonly JsonValue[] = [
  { orderId: 'o-1', data: { nested: true }, pattern: 'not-a-nest-packet' },
  'plain string',
  42,
  null,
];

/** Written by a handler inside its inbox transaction (`manager` = InboxContext.manager). */
export async function insertEffect(
  manager: EntityManager,
  effect: {
    consumer: string;
    messageId: string;
    key?: string | null;
    seq?: number;
    data?: unknown;
  },
): Promise<void> {
  await manager.query(
    'INSERT INTO public.effect (consumer, message_id, key, seq, data) VALUES ($1, $2, $3, $4, $5::jsonb)',
    [
      effect.consumer,
      effect.messageId,
      effect.key ?? null,
      effect.seq ?? null,
      JSON.stringify(effect.data ?? null),
    ],
  );
}

export interface EffectRow {
  message_id: string;
  key: string | null;
  seq: number | null;
  data: unknown;
}

/** Effects of `consumer`, in the order they were written. */
export function effects(db: TestDatabase, consumer: string): Promise<EffectRow[]> {
  return withClient(db.name, async (client) => {
    const { rows } = await client.query<EffectRow>(
      'SELECT message_id, key, seq, data FROM public.effect WHERE consumer = $1 ORDER BY id',
      [consumer],
    );
    return rows;
  });
}

export function effectCount(db: TestDatabase, consumer: string): Promise<number> {
  return withClient(db.name, async (client) => {
    const { rows } = await client.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM public.effect WHERE consumer = $1',
      [consumer],
    );
    return rows[0]!.n;
  });
}

/** Waits (30 s by default) until `consumer` has at least `count` effects. */
export function waitForEffects(
  db: TestDatabase,
  consumer: string,
  count: number,
  timeoutMs = 30_000,
): Promise<void> {
  return waitUntil(
    async () => (await effects(db, consumer)).length >= count,
    'every message handled',
    timeoutMs,
  );
}

/** Outbox rows not yet sent (pending / claimed), across all destinations. */
export function unsentOutboxRows(db: TestDatabase): Promise<number> {
  return withClient(db.name, async (client) => {
    const { rows } = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM sage.outbox_message WHERE status IN ('pending', 'claimed')`,
    );
    return rows[0]!.n;
  });
}

/** Writes outbox rows the way application code does: in one business transaction. */
export async function writeOutbox(
  app: INestApplication,
  messages: readonly OutboxMessageInput[],
): Promise<string[]> {
  const outbox = app.get(OutboxRepository);
  return app
    .get(SageDatabase)
    .dataSource.transaction((manager) => outbox.publish(messages, { manager }));
}

export interface PipelineAppOptions {
  db: TestDatabase;
  /** The broker the relay publishes to (and `@IdempotentHandler`s subscribe through); none → no relay. */
  broker?: Broker;
  controllers?: ModuleMetadata['controllers'];
  providers?: ModuleMetadata['providers'];
  inbox?: InboxModuleOptions;
  /** Relay tuning on top of the test defaults. */
  relay?: Record<string, unknown>;
}

/** SagaOutboxModule on the test database, with the relay polling fast; not yet initialised. */
export async function createPipelineApp(options: PipelineAppOptions): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      SagaOutboxModule.forRoot({
        postgres: sagePostgresOptions(options.db.connection),
        broker: options.broker,
        inbox: options.inbox,
        outbox: {
          relay: { pollIntervalMs: 20, enabled: options.broker !== undefined, ...options.relay },
          retention: { enabled: false },
        },
      }),
    ],
    controllers: options.controllers ?? [],
    providers: options.providers ?? [],
  }).compile();
  return moduleRef.createNestApplication({
    logger: process.env.SAGE_TEST_NEST_LOGS ? ['error', 'warn'] : false,
  });
}

/**
 * `createPipelineApp` with a Nest microservice (the consuming side) connected, started and the app
 * initialised; closed again if starting fails.
 */
export async function startPipelineApp(
  options: PipelineAppOptions & { microservice: MicroserviceOptions },
): Promise<INestApplication> {
  const app = await createPipelineApp(options);
  try {
    app.connectMicroservice<MicroserviceOptions>(options.microservice);
    await app.startAllMicroservices();
    await app.init();
    return app;
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }
}

/** Runs `work` on a channel of a fresh RabbitMQ connection, closed afterwards. */
export async function withAmqpChannel<T>(
  url: string,
  work: (channel: Channel) => Promise<T>,
): Promise<T> {
  const connection = await amqpConnect(url);
  try {
    const channel = await connection.createChannel();
    const result = await work(channel);
    await channel.close();
    return result;
  } finally {
    await connection.close();
  }
}

/** Deletes what RabbitMqBroker declared: a queue and its `.dlq`, the exchange and its `.dlx`. */
export function deleteRabbitMqTopology(
  url: string,
  topology: { queue: string; exchange: string },
): Promise<void> {
  return withAmqpChannel(url, async (channel) => {
    await channel.deleteQueue(topology.queue);
    await channel.deleteQueue(`${topology.queue}.dlq`);
    await channel.deleteExchange(topology.exchange);
    await channel.deleteExchange(`${topology.exchange}.dlx`);
  });
}

/** Runs `work` with a JetStream manager on a fresh NATS connection, closed afterwards. */
export async function withJetStreamManager<T>(
  servers: string,
  work: (jsm: Awaited<ReturnType<typeof jetstreamManager>>) => Promise<T>,
): Promise<T> {
  const nc = await natsConnect({ servers });
  try {
    return await work(await jetstreamManager(nc));
  } finally {
    await nc.close();
  }
}

/** Deletes a JetStream stream. */
export function deleteNatsStream(servers: string, stream: string): Promise<void> {
  return withJetStreamManager(servers, async (jsm) => {
    await jsm.streams.delete(stream);
  });
}
