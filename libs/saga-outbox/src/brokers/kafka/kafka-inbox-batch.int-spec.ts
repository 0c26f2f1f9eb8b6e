/**
 * The inbox in batches on real Kafka and PostgreSQL: kafkajs hands a partition's records over in a
 * batch, the inbox handles up to `batchSize` of them in one transaction (one dedup statement, one
 * commit), and the offsets are committed after it. Checked: every message takes effect exactly
 * once with duplicates inside one batch and across batches, per-key order holds, and a poison
 * message in the middle of a batch neither undoes nor blocks the others beyond the one-by-one
 * fallback, while it follows the inbox's retries to its dead letter. (kill -9 mid-batch:
 * test/chaos/kafka-inbox-batch.int-spec.ts.)
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import type { DataSource } from 'typeorm';
import { createSagaDataSource } from '../../persistence/postgres/data-source';
import type { BrokerMessage } from '../../core/ports/broker';
import { waitUntil } from '../../testing/async';
import { createTestDatabase, dataSourceOptions, type TestDatabase } from '@test/support/pg';
import { EFFECT_TABLE_SQL } from '@test/support/inbox-pipeline';
import { batchingInbox, seqEffects, seqMessage, seqsByKey } from '@test/support/inbox-batch';
import { KafkaBroker, type KafkaConsumerOptions } from './kafka-broker';

jest.setTimeout(60_000);

const BROKERS = (process.env.SAGE_KAFKA_BROKERS ?? '127.0.0.1:19092').split(',');
const PARTITIONS = 4;
const BATCH_SIZE = 16;

let db: TestDatabase;
let dataSource: DataSource;
let admin: Admin;
const topics: string[] = [];
const brokers: KafkaBroker[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  dataSource = await createSagaDataSource(dataSourceOptions(db.name, { poolSize: 8 })).initialize();
  await dataSource.query(EFFECT_TABLE_SQL);
  admin = new Kafka({
    clientId: 'sage-int-inbox-batch',
    brokers: BROKERS,
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
});

afterAll(async () => {
  await Promise.allSettled(brokers.map((b) => b.close()));
  await admin?.deleteTopics({ topics }).catch(() => undefined);
  await admin?.disconnect();
  await dataSource?.destroy();
  await db?.drop();
});

async function createTopic(): Promise<string> {
  const topic = `sage-test-inbox-batch-${randomUUID()}`;
  await admin.createTopics({
    topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  topics.push(topic);
  return topic;
}

function newBroker(consumer: KafkaConsumerOptions = {}): KafkaBroker {
  const broker = new KafkaBroker({
    brokers: BROKERS,
    clientId: 'sage-int-inbox-batch',
    consumer: { maxWaitTimeMs: 100, redeliveryDelayMs: 50, maxRedeliveryDelayMs: 200, ...consumer },
  });
  brokers.push(broker);
  return broker;
}

/** The inbox on PostgreSQL, consuming `topic` in batches of up to BATCH_SIZE as `consumer`. */
const consume = (
  topic: string,
  consumer: string,
  what: { poison?: string; handlerMs?: number } = {},
) => batchingInbox(dataSource, { destination: topic, consumer, batchSize: BATCH_SIZE, ...what });

const effects = (consumer: string) => seqEffects(dataSource, consumer);

it('exactly once with duplicates inside one batch and across batches; per-key order kept; batches used', async () => {
  const topic = await createTopic();
  const consumer = `inbox-batch-${randomUUID().slice(0, 8)}`;
  const producer = newBroker();
  const KEYS = 8;
  const ROUNDS = 20;
  const sent: BrokerMessage[] = [];
  for (let seq = 0; seq < ROUNDS; seq++) {
    const round = Array.from({ length: KEYS }, (_, k) => seqMessage(topic, `key-${k}`, seq));
    sent.push(...round);
    // The first rounds go out twice back to back: both copies land in one fetched batch.
    const copies = seq < 10 ? round : [];
    const results = await producer.publish([...round, ...copies]);
    expect(results.every((r) => r.ok)).toBe(true);
  }

  const c = consume(topic, consumer);
  await c.start(newBroker());
  await waitUntil(
    async () => (await effects(consumer)).length >= sent.length,
    'all effects',
    40_000,
    20,
  );
  await waitUntil(() => c.inbox.stats.duplicates >= 10 * KEYS, 'in-batch copies seen', 20_000, 20);

  // Across batches: copies of handled messages (each a batch of its own by now) plus new ones.
  const late = Array.from({ length: KEYS }, (_, k) => seqMessage(topic, `key-${k}`, ROUNDS));
  const before = c.inbox.stats.duplicates;
  expect((await producer.publish([...sent.slice(0, 24), ...late])).every((r) => r.ok)).toBe(true);
  await waitUntil(
    async () => (await effects(consumer)).length >= sent.length + late.length,
    'the late messages',
    20_000,
    20,
  );
  await waitUntil(() => c.inbox.stats.duplicates >= before + 24, 'cross-batch copies', 20_000, 20);
  await c.stop();

  const rows = await effects(consumer);
  const all = [...sent, ...late];
  expect(rows).toHaveLength(all.length);
  expect(new Set(rows.map((r) => r.message_id))).toEqual(new Set(all.map((m) => m.id)));
  for (const [key, seqs] of seqsByKey(rows))
    expect({ key, seqs }).toEqual({ key, seqs: Array.from({ length: ROUNDS + 1 }, (_, i) => i) });
  // Batches were used (not one transaction per message), and never above batchSize.
  expect(Math.max(...c.batches)).toBeGreaterThan(1);
  expect(Math.max(...c.batches)).toBeLessThanOrEqual(BATCH_SIZE);
  expect(c.inbox.stats).toMatchObject({ processed: all.length, failed: 0, deadLettered: 0 });
  const [row] = (await dataSource.query(
    `SELECT count(*)::int AS n FROM ${c.store.tables.inboxMessage} WHERE consumer = $1 AND status = 'processed'`,
    [consumer],
  )) as { n: number }[];
  expect(row?.n).toBe(all.length);
});

it('a poison message mid-batch: the others take effect once, in order; the poison is retried and dead-lettered', async () => {
  const topic = await createTopic();
  const consumer = `inbox-poison-${randomUUID().slice(0, 8)}`;
  const producer = newBroker();
  // One key (one partition): the poison sits in the middle of the batch that holds it.
  const sent = Array.from({ length: 30 }, (_, seq) => seqMessage(topic, 'one-key', seq));
  const poison = sent[12]!;
  // One at a time: the offsets follow seq (a publish batch need not keep its order).
  for (const m of sent) expect(await producer.publish([m])).toEqual([{ id: m.id, ok: true }]);

  const c = consume(topic, consumer, { poison: poison.id });
  await c.start(newBroker());
  await waitUntil(
    async () => (await effects(consumer)).length >= sent.length - 1,
    'the others',
    40_000,
    20,
  );
  await waitUntil(() => c.inbox.stats.deadLettered === 1, 'the poison dead-lettered', 20_000, 20);
  await c.stop();

  const rows = await effects(consumer);
  const seqOf = (m: BrokerMessage): number => (m.payload as { seq: number }).seq;
  expect(rows.map((r) => r.seq)).toEqual(sent.filter((m) => m !== poison).map(seqOf));
  await expect(c.store.get({ consumer, messageId: poison.id })).resolves.toMatchObject({
    status: 'dead_letter',
    attempts: 3,
    lastError: expect.stringContaining('poison: cannot take this one') as unknown as string,
  });
  // The messages behind the poison were handled only after it was dead-lettered (order kept) …
  const poisonRuns = c.handled.filter((id) => id === poison.id).length;
  expect(poisonRuns).toBeGreaterThanOrEqual(3);
  const lastPoisonRun = c.handled.lastIndexOf(poison.id);
  for (const m of sent.slice(13)) expect(c.handled.indexOf(m.id)).toBeGreaterThan(lastPoisonRun);
  // The poison was in a batch: the message before it ran there (rolled back), then once alone.
  expect(c.handled.filter((id) => id === sent[11]!.id).length).toBeGreaterThanOrEqual(2);
  // … and the batch path was used before and after it.
  expect(Math.max(...c.batches)).toBeGreaterThan(1);
  expect(c.inbox.stats).toMatchObject({ processed: sent.length - 1, deadLettered: 1 });
});

it('a batch that outlasts the session timeout keeps the member in its group: each message handled once', async () => {
  const topic = await createTopic();
  const consumer = `inbox-slow-${randomUUID().slice(0, 8)}`;
  const producer = newBroker();
  const sent = Array.from({ length: 6 }, (_, seq) => seqMessage(topic, 'one-key', seq));
  for (const m of sent) expect(await producer.publish([m])).toEqual([{ id: m.id, ok: true }]);

  // 6 handlers of 1.5 s in one batch: 9 s, past the 6 s session timeout without heartbeats.
  const c = consume(topic, consumer, { handlerMs: 1500 });
  await c.start(newBroker({ sessionTimeoutMs: 6000, heartbeatIntervalMs: 500 }));
  await waitUntil(async () => (await effects(consumer)).length >= sent.length, 'all', 30_000, 50);
  // A rebalance under the batch would fail its offset commit and redeliver it: duplicates.
  const offsets = async () =>
    (await admin.fetchOffsets({ groupId: consumer, topics: [topic] }))
      .flatMap((t) => t.partitions)
      .reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
  await waitUntil(async () => (await offsets()) === sent.length, 'offsets committed', 15_000, 50);
  await c.stop();
  expect(c.batches).toEqual([sent.length]);
  expect(c.handled).toEqual(sent.map((m) => m.id));
  expect(c.inbox.stats).toMatchObject({ processed: sent.length, duplicates: 0 });
});
