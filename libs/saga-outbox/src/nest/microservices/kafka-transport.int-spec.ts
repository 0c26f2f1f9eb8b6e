/**
 * `@EventPattern` over Nest's real Kafka transport (`Transport.KAFKA`), fed by Sage's outbox:
 * outbox row → relay → KafkaBroker → Apache Kafka → Nest ServerKafka (connected with
 * sageKafkaOptions: SageKafkaDeserializer) → `@EventPattern` → InboxService.handle → one business
 * row.
 */
import { randomUUID } from 'node:crypto';
import { Controller, type INestApplication } from '@nestjs/common';
import { Ctx, EventPattern, KafkaContext, Payload } from '@nestjs/microservices';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import {
  AWKWARD_PAYLOADS,
  createPipelineDatabase,
  effects,
  insertEffect,
  startPipelineApp,
  waitForEffects,
  waitUntil,
  writeOutbox,
} from '@test/support/inbox-pipeline';
import type { TestDatabase } from '@test/support/pg';
import { KafkaBroker } from '../../brokers/kafka/kafka-broker';
import type { JsonValue } from '../../core/json';
import { InboxService } from '../inbox/inbox.service';
import { sageKafkaOptions } from './sage-transport-options';

const BROKERS = (process.env.SAGE_KAFKA_BROKERS ?? '127.0.0.1:19092').split(',');
const RUN = randomUUID().slice(0, 8);
const TOPIC = `sage-nest-kafka-${RUN}`;
const CONSUMER = 'nest-kafka.orders';

/** Attempts that should fail, per outbox id (set by a test): the handler throws after writing. */
const failFirst = new Map<string, number>();
const attempts: { id: string; attempt: number }[] = [];

@Controller()
class OrdersController {
  constructor(private readonly inbox: InboxService) {}

  @EventPattern(TOPIC)
  async onOrder(@Payload() data: JsonValue, @Ctx() ctx: KafkaContext): Promise<void> {
    const key = ctx.getMessage().key;
    await this.inbox.handle(CONSUMER, ctx, async ({ manager, messageId, attempt }) => {
      attempts.push({ id: messageId, attempt });
      await insertEffect(manager, {
        consumer: CONSUMER,
        messageId,
        key: key === null ? null : String(key),
        data,
      });
      if (attempt <= (failFirst.get(messageId) ?? 0))
        throw new Error(`downstream unavailable (attempt ${attempt})`);
    });
  }
}

let db: TestDatabase;
let admin: Admin;
let app: INestApplication;
let broker: KafkaBroker;

beforeAll(async () => {
  db = await createPipelineDatabase();
  admin = new Kafka({
    clientId: 'sage-nest-kafka-admin',
    brokers: BROKERS,
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  await admin.createTopics({
    topics: [{ topic: TOPIC, numPartitions: 3, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  app = await startPipelineApp({
    db,
    broker: (broker = new KafkaBroker({
      brokers: BROKERS,
      clientId: `sage-nest-kafka-relay-${RUN}`,
    })),
    controllers: [OrdersController],
    inbox: { maxAttempts: 5 },
    microservice: sageKafkaOptions({
      client: {
        clientId: `sage-nest-kafka-${RUN}`,
        brokers: BROKERS,
        logLevel: logLevel.NOTHING,
      },
      consumer: {
        groupId: `sage-nest-kafka-${RUN}`,
        retry: { initialRetryTime: 100, retries: 8 },
      },
      subscribe: { fromBeginning: true },
    }),
  });
}, 60_000);

afterAll(async () => {
  await app?.close();
  await broker?.close();
  await admin?.deleteTopics({ topics: [TOPIC] }).catch(() => undefined);
  await admin?.disconnect();
  await db?.drop();
});

describe('@EventPattern over Transport.KAFKA, fed by the outbox relay', () => {
  it('delivers every outbox row once, payload intact (objects with `data`, strings, numbers, null), per-key order kept', async () => {
    const payloads: JsonValue[] = [...AWKWARD_PAYLOADS, [1, 'two']];
    const messages = Array.from({ length: 30 }, (_, i) => ({
      destination: TOPIC,
      type: 'order.placed',
      key: `order-${i % 3}`,
      payload: i < payloads.length ? payloads[i]! : { orderId: `o-${i}`, n: i },
    }));
    const ids = await writeOutbox(app, messages);
    await waitForEffects(db, CONSUMER, ids.length);

    const rows = await effects(db, CONSUMER);
    expect(rows.map((r) => r.message_id).sort()).toEqual([...ids].sort());
    const byId = new Map(rows.map((r) => [r.message_id, r]));
    ids.forEach((id, i) => {
      expect(byId.get(id)?.data).toEqual(messages[i]!.payload);
      expect(byId.get(id)?.key).toBe(messages[i]!.key);
    });
    // Per key, the consumer saw the rows in outbox (commit) order.
    for (const key of ['order-0', 'order-1', 'order-2']) {
      const seen = rows.filter((r) => r.key === key).map((r) => ids.indexOf(r.message_id));
      expect(seen).toEqual([...seen].sort((a, b) => a - b));
    }
  });

  it('a failing handler rolls back and Kafka redelivers (offset not committed) until it succeeds: one effect', async () => {
    const [id] = await writeOutbox(app, [
      {
        id: undefined,
        destination: TOPIC,
        type: 'order.placed',
        key: 'order-fail',
        payload: { n: 1 },
      },
    ]);
    failFirst.set(id!, 2);
    const [after] = await writeOutbox(app, [
      { destination: TOPIC, type: 'order.placed', key: 'order-fail', payload: { n: 2 } },
    ]);
    await waitUntil(
      async () => {
        const ids = (await effects(db, CONSUMER)).map((r) => r.message_id);
        return ids.includes(id!) && ids.includes(after!);
      },
      'both handled',
      30_000,
    );
    expect(attempts.filter((a) => a.id === id).map((a) => a.attempt)).toEqual([1, 2, 3]);
    const rows = (await effects(db, CONSUMER)).filter((r) => r.key === 'order-fail');
    // One effect (the failed attempts rolled back), and the next message of the key came after it.
    expect(rows.map((r) => r.message_id)).toEqual([id, after]);
    expect(await app.get(InboxService).get({ consumer: CONSUMER, messageId: id! })).toMatchObject({
      status: 'processed',
      attempts: 3,
    });
  });
});
