/**
 * The same message delivered twice and concurrently → one business effect, per real broker.
 *
 * For each broker: two app instances (two members of one consumer group / two consumers of one
 * queue / two subscribers of one durable JetStream consumer) run the same `@IdempotentHandler`
 * through Sage's own `broker.subscribe`. The outbox relay publishes N rows, and each row is also
 * republished through the adapter with the same id (as a relay does after losing an ack), under
 * another key so the copy travels independently (Kafka: another partition, so another member;
 * RabbitMQ / NATS: the adapters run different keys concurrently). Both copies are then in flight
 * at once, on both instances; the handler writes one business row in its inbox transaction.
 *
 * Expected: exactly N business rows, one per id; N duplicates skipped; copies of the same id seen
 * by both instances. NATS also shows the broker-side dedup: a republish inside JetStream's
 * duplicate window is dropped by the server (`Nats-Msg-Id`), one after it reaches the consumers.
 */
import { randomUUID } from 'node:crypto';
import { Inject, Injectable, type INestApplication } from '@nestjs/common';
import { Kafka, logLevel, Partitioners, type Admin } from 'kafkajs';
import { KafkaBroker } from '../../libs/saga-outbox/src/brokers/kafka/kafka-broker';
import { NatsJetStreamBroker } from '../../libs/saga-outbox/src/brokers/nats/nats-broker';
import { RabbitMqBroker } from '../../libs/saga-outbox/src/brokers/rabbitmq/rabbitmq-broker';
import type {
  Broker,
  BrokerMessage,
  DeliveredMessage,
} from '../../libs/saga-outbox/src/core/ports/broker';
import {
  IdempotentHandler,
  type InboxContext,
} from '../../libs/saga-outbox/src/nest/inbox/idempotent-handler.decorator';
import { InboxService } from '../../libs/saga-outbox/src/nest/inbox/inbox.service';
import {
  createPipelineApp,
  createPipelineDatabase,
  deleteNatsStream,
  deleteRabbitMqTopology,
  effects,
  insertEffect,
  unsentOutboxRows,
  waitUntil,
  withAmqpChannel,
  withJetStreamManager,
  writeOutbox,
} from '../support/inbox-pipeline';
import { withClient, type TestDatabase } from '../support/pg';

const KAFKA_BROKERS = (process.env.SAGE_KAFKA_BROKERS ?? '127.0.0.1:19092').split(',');
const RABBITMQ_URL = process.env.SAGE_RABBITMQ_URL ?? 'amqp://sage:sage@127.0.0.1:56729';
const NATS_URL = process.env.SAGE_NATS_URL ?? 'nats://127.0.0.1:42229';
const RUN = randomUUID().slice(0, 8);
const N = 120;
const KEYS = 10;
const NATS_DUPLICATE_WINDOW_MS = 4_000;

const APP_TAG = Symbol('APP_TAG');

/** Which instance handled (ran the handler for) each id, per consumer. */
const handledBy = new Map<string, string>();

function consumerClass(destination: string, consumer: string) {
  @Injectable()
  class DuplicateConsumer {
    constructor(@Inject(APP_TAG) private readonly tag: string) {}

    @IdempotentHandler(destination, { consumer })
    async handle(message: DeliveredMessage, { manager, messageId }: InboxContext): Promise<void> {
      await insertEffect(manager, { consumer, messageId, key: message.key, data: message.payload });
      // Some work while the inbox row is locked: a racing copy waits on it in PostgreSQL.
      await manager.query('SELECT pg_sleep(0.005)');
      handledBy.set(`${consumer}/${messageId}`, this.tag);
    }
  }
  return DuplicateConsumer;
}

interface BrokerCase {
  name: string;
  destination: string;
  /** A fresh adapter instance (one per app instance, plus the republishing producer). */
  newBroker(): Broker;
  /** The key a republished copy travels under. */
  duplicateKey(key: string): string;
  /** Before the instances start (Kafka: create the topic). */
  prepare(): Promise<void>;
  /** Resolves once both instances consume (group stable, both consumers attached). */
  ready(consumer: string): Promise<void>;
  /** Republishes the copies; NATS first proves the server drops them inside its dedup window. */
  republish(producer: Broker, copies: BrokerMessage[]): Promise<void>;
  cleanup(consumer: string): Promise<void>;
}

let db: TestDatabase;
let kafkaAdmin: Admin;

beforeAll(async () => {
  db = await createPipelineDatabase();
  kafkaAdmin = new Kafka({
    clientId: `dup-admin-${RUN}`,
    brokers: KAFKA_BROKERS,
    logLevel: logLevel.NOTHING,
  }).admin();
  await kafkaAdmin.connect();
});
afterAll(async () => {
  await kafkaAdmin?.disconnect();
  await db?.drop();
});

const kafkaTopic = `sage-dup-${RUN}`;
const partitioner = Partitioners.DefaultPartitioner();
const PARTITIONS = 4;
const partitionOf = (key: string): number =>
  partitioner({
    topic: kafkaTopic,
    partitionMetadata: Array.from({ length: PARTITIONS }, (_, partitionId) => ({
      partitionId,
      leader: 0,
      partitionErrorCode: 0,
      replicas: [0],
      isr: [0],
    })),
    message: { key, value: '' },
  });

const natsStream = `SAGE_DUP_${RUN}`;
const natsPrefix = `sagedup.${RUN}.`;
const rabbitExchange = `sage-dup-${RUN}`;

async function natsStreamMessages(): Promise<number> {
  return withJetStreamManager(
    NATS_URL,
    async (jsm) => (await jsm.streams.info(natsStream)).state.messages,
  );
}

const cases: BrokerCase[] = [
  {
    name: 'kafka',
    destination: kafkaTopic,
    newBroker: () =>
      new KafkaBroker({ brokers: KAFKA_BROKERS, clientId: `dup-${RUN}`, logger: undefined }),
    duplicateKey: (key) => {
      // Another partition than the original, so (with two members) usually another member.
      for (let i = 0; ; i++)
        if (partitionOf(`${key}~dup${i}`) !== partitionOf(key)) return `${key}~dup${i}`;
    },
    prepare: async () => {
      await kafkaAdmin.createTopics({
        topics: [{ topic: kafkaTopic, numPartitions: PARTITIONS, replicationFactor: 1 }],
        waitForLeaders: true,
      });
    },
    ready: async (consumer) => {
      await waitUntil(
        async () => {
          const { groups } = await kafkaAdmin.describeGroups([consumer]);
          const group = groups[0];
          return group?.state === 'Stable' && group.members.length === 2;
        },
        'both members hold partitions',
        30_000,
        100,
      );
    },
    republish: async (producer, copies) => {
      expectAllOk(await producer.publish(copies));
    },
    cleanup: async () => {
      await kafkaAdmin.deleteTopics({ topics: [kafkaTopic] }).catch(() => undefined);
    },
  },
  {
    name: 'rabbitmq',
    destination: `orders-${RUN}`,
    newBroker: () =>
      new RabbitMqBroker({ url: RABBITMQ_URL, exchange: rabbitExchange, prefetch: 16 }),
    duplicateKey: (key) => `${key}~dup`,
    prepare: () => Promise.resolve(),
    ready: async (consumer) => {
      await waitUntil(
        async () => {
          const { consumerCount } = await withAmqpChannel(RABBITMQ_URL, (channel) =>
            channel.checkQueue(`${consumer}.orders-${RUN}`),
          );
          return consumerCount === 2;
        },
        'two consumers on the queue',
        20_000,
        100,
      );
    },
    republish: async (producer, copies) => {
      expectAllOk(await producer.publish(copies));
    },
    cleanup: (consumer) =>
      deleteRabbitMqTopology(RABBITMQ_URL, {
        queue: `${consumer}.orders-${RUN}`,
        exchange: rabbitExchange,
      }),
  },
  {
    name: 'nats',
    destination: 'orders',
    newBroker: () =>
      new NatsJetStreamBroker({
        servers: NATS_URL,
        stream: natsStream,
        subjectPrefix: natsPrefix,
        duplicateWindowMs: NATS_DUPLICATE_WINDOW_MS,
      }),
    duplicateKey: (key) => `${key}~dup`,
    prepare: () => Promise.resolve(),
    ready: () => Promise.resolve(),
    republish: async (producer, copies) => {
      await waitUntil(
        async () => (await unsentOutboxRows(db)) === 0,
        'the relay published every row',
      );
      const relayDoneAt = Date.now();
      // Inside the duplicate window: JetStream acknowledges the copies but does not store them.
      expectAllOk(await producer.publish(copies));
      expect(Date.now() - relayDoneAt).toBeLessThan(NATS_DUPLICATE_WINDOW_MS / 2); // well inside it
      expect(await natsStreamMessages()).toBe(N);
      // After the window (a relay that lost its acks for longer): stored, and delivered again.
      await waitUntil(
        () => Date.now() > relayDoneAt + NATS_DUPLICATE_WINDOW_MS + 250,
        'the duplicate window of the last stored message has passed',
        NATS_DUPLICATE_WINDOW_MS + 2_000,
        50,
      );
      expectAllOk(await producer.publish(copies));
      expect(await natsStreamMessages()).toBe(2 * N);
    },
    cleanup: () => deleteNatsStream(NATS_URL, natsStream), // the caller ignores cleanup failures
  },
];

function expectAllOk(results: readonly { ok: boolean }[]): void {
  expect(results.filter((r) => !r.ok)).toEqual([]);
}

describe.each(cases)('duplicate and concurrent delivery over $name → one effect', (c) => {
  const consumer = `dup-${c.name}-${RUN}`;
  const apps: INestApplication[] = [];
  const brokers: Broker[] = [];
  const duplicateSeenBy = new Map<string, string[]>();

  afterAll(async () => {
    await Promise.allSettled(apps.map((app) => app.close()));
    await Promise.allSettled(brokers.map((b) => b.close()));
    await c.cleanup(consumer).catch(() => undefined);
  });

  it(`${N} outbox rows, each also republished with the same id, two instances racing: ${N} effects`, async () => {
    await c.prepare();
    for (const tag of ['A', 'B']) {
      const broker = c.newBroker();
      brokers.push(broker);
      const app = await createPipelineApp({
        db,
        broker,
        providers: [consumerClass(c.destination, consumer), { provide: APP_TAG, useValue: tag }],
        relay: { enabled: tag === 'A' },
      });
      await app.init();
      apps.push(app);
      app.get(InboxService).onEvent((event) => {
        if (event.type === 'inbox.duplicate' && event.consumer === consumer)
          duplicateSeenBy.set(event.messageId, [
            ...(duplicateSeenBy.get(event.messageId) ?? []),
            tag,
          ]);
      });
    }
    await c.ready(consumer);

    const inputs = Array.from({ length: N }, (_, i) => ({
      destination: c.destination,
      type: 'order.placed',
      key: `order-${i % KEYS}`,
      payload: { n: i },
    }));
    const ids = await writeOutbox(apps[0]!, inputs);
    const copies: BrokerMessage[] = ids.map((id, i) => ({
      id,
      destination: c.destination,
      key: c.duplicateKey(inputs[i]!.key),
      type: 'order.placed',
      payload: inputs[i]!.payload,
      headers: {},
      time: new Date(),
    }));
    const producer = c.newBroker();
    brokers.push(producer);
    await c.republish(producer, copies);

    const stats = () => apps.map((app) => app.get(InboxService).stats);
    await waitUntil(
      () => {
        const all = stats();
        return (
          all.reduce((n, s) => n + s.processed, 0) >= N &&
          all.reduce((n, s) => n + s.duplicates, 0) >= N
        );
      },
      'every id handled and every copy seen',
      45_000,
      20,
    );

    const rows = await effects(db, consumer);
    expect(rows).toHaveLength(N);
    expect(new Set(rows.map((r) => r.message_id))).toEqual(new Set(ids));
    const all = stats();
    expect(all.reduce((n, s) => n + s.processed, 0)).toBe(N);
    expect(all.reduce((n, s) => n + s.failed, 0)).toBe(0);
    // Both instances handled messages, and copies of one id reached both: they raced.
    expect(all.every((s) => s.processed > 0)).toBe(true);
    const crossed = ids.filter((id) =>
      (duplicateSeenBy.get(id) ?? []).some((tag) => tag !== handledBy.get(`${consumer}/${id}`)),
    );
    expect(crossed.length).toBeGreaterThan(0);
    console.info(
      `${c.name}: ${N} ids, ${all.reduce((n, s) => n + s.duplicates, 0)} duplicates skipped ` +
        `(${crossed.length} ids handled on one instance and skipped on the other), ${rows.length} effects`,
    );
    await withClient(db.name, async (client) => {
      const { rows: inbox } = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM sage.inbox_message WHERE consumer = $1 AND status = 'processed'`,
        [consumer],
      );
      expect(inbox[0]!.n).toBe(N);
    });
  }, 90_000);
});
