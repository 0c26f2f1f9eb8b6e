/**
 * The inbox in batches on real RabbitMQ and PostgreSQL: first deliveries arriving together under
 * the prefetch window go to the inbox as one transaction (at most a quarter of the prefetch), the
 * batch holding every key it contains, and are acked after its commit. Checked: exactly once with
 * duplicates inside one batch and across batches, per-key order, and a poison message in the middle
 * of a batch: the others once, in order, the poison retried in process (its key held) and
 * dead-lettered by the inbox.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { DataSource } from 'typeorm';
import { createSagaDataSource } from '../../persistence/postgres/data-source';
import type { BrokerMessage } from '../../core/ports/broker';
import { waitUntil } from '../../testing/async';
import { createTestDatabase, dataSourceOptions, type TestDatabase } from '@test/support/pg';
import { deleteRabbitMqTopology, EFFECT_TABLE_SQL } from '@test/support/inbox-pipeline';
import { batchingInbox, seqEffects, seqMessage, seqsByKey } from '@test/support/inbox-batch';
import { RabbitMqBroker } from './rabbitmq-broker';

jest.setTimeout(60_000);

const URL = process.env.SAGE_RABBITMQ_URL ?? 'amqp://sage:sage@127.0.0.1:56729';
const PREFETCH = 32;

let db: TestDatabase;
let dataSource: DataSource;
const brokers: RabbitMqBroker[] = [];
const topologies: { queue: string; exchange: string }[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  dataSource = await createSagaDataSource(dataSourceOptions(db.name, { poolSize: 8 })).initialize();
  await dataSource.query(EFFECT_TABLE_SQL);
});

afterAll(async () => {
  await Promise.allSettled(brokers.map((b) => b.close()));
  for (const t of topologies) await deleteRabbitMqTopology(URL, t).catch(() => undefined);
  await dataSource?.destroy();
  await db?.drop();
});

function newBroker(exchange: string): RabbitMqBroker {
  const broker = new RabbitMqBroker({
    url: URL,
    exchange,
    prefetch: PREFETCH,
    redeliveryDelayMs: 20,
    maxRedeliveryDelayMs: 100,
  });
  brokers.push(broker);
  return broker;
}

/** The inbox consuming `destination` in batches as a new consumer; records every batch's size. */
async function consume(broker: RabbitMqBroker, destination: string, poison?: string) {
  const consumer = `inbox-batch-${randomUUID().slice(0, 8)}`;
  topologies.push({
    queue: broker.queueName(destination, consumer),
    exchange: broker.exchangeName,
  });
  const c = batchingInbox(dataSource, { destination, consumer, poison });
  await c.start(broker);
  return c;
}

const effects = (consumer: string) => seqEffects(dataSource, consumer);

it('exactly once with duplicates inside one batch and across batches; per-key order kept; batches used', async () => {
  const destination = `inbox-batch-${randomUUID()}`;
  const broker = newBroker(`sage-test-${randomUUID()}`);
  const c = await consume(broker, destination);
  const KEYS = 6;
  const ROUNDS = 20;
  const sent: BrokerMessage[] = [];
  const rounds: BrokerMessage[] = [];
  for (let seq = 0; seq < ROUNDS; seq++) {
    const round = Array.from({ length: KEYS }, (_, k) => seqMessage(destination, `key-${k}`, seq));
    sent.push(...round);
    // Copies right behind the first rounds: they arrive with them, in the same batches.
    rounds.push(...round, ...(seq < 5 ? round : []));
  }
  // One confirm channel, in order: per key, seq order on the queue.
  expect((await broker.publish(rounds)).every((r) => r.ok)).toBe(true);
  await waitUntil(async () => (await effects(c.consumer)).length >= sent.length, 'all', 40_000, 20);
  await waitUntil(() => c.inbox.stats.duplicates >= 5 * KEYS, 'in-batch copies', 20_000, 20);

  const late = Array.from({ length: KEYS }, (_, k) => seqMessage(destination, `key-${k}`, ROUNDS));
  const before = c.inbox.stats.duplicates;
  expect((await broker.publish([...sent.slice(0, 24), ...late])).every((r) => r.ok)).toBe(true);
  await waitUntil(
    async () => (await effects(c.consumer)).length >= sent.length + late.length,
    'the late messages',
    20_000,
    20,
  );
  await waitUntil(() => c.inbox.stats.duplicates >= before + 24, 'cross-batch copies', 20_000, 20);
  await c.stop();

  const rows = await effects(c.consumer);
  const all = [...sent, ...late];
  expect(rows).toHaveLength(all.length);
  expect(new Set(rows.map((r) => r.message_id))).toEqual(new Set(all.map((m) => m.id)));
  for (const [key, seqs] of seqsByKey(rows))
    expect({ key, seqs }).toEqual({ key, seqs: Array.from({ length: ROUNDS + 1 }, (_, i) => i) });
  expect(Math.max(...c.batches)).toBeGreaterThan(1);
  expect(Math.max(...c.batches)).toBeLessThanOrEqual(PREFETCH / 4);
  expect(c.inbox.stats).toMatchObject({ processed: all.length, failed: 0, deadLettered: 0 });
});

it('a poison message mid-batch: the others take effect once, in order; the poison is retried and dead-lettered', async () => {
  const destination = `inbox-poison-${randomUUID()}`;
  const broker = newBroker(`sage-test-${randomUUID()}`);
  const sent = Array.from({ length: 30 }, (_, seq) =>
    seqMessage(destination, `key-${seq % 3}`, seq),
  );
  const poison = sent[4]!; // key-1
  const c = await consume(broker, destination, poison.id);
  expect((await broker.publish(sent)).every((r) => r.ok)).toBe(true);
  await waitUntil(
    async () => (await effects(c.consumer)).length >= sent.length - 1,
    'others',
    40_000,
    20,
  );
  await waitUntil(() => c.inbox.stats.deadLettered === 1, 'the poison dead-lettered', 20_000, 20);
  await c.stop();

  const rows = await effects(c.consumer);
  expect(rows).toHaveLength(sent.length - 1);
  expect(new Set(rows.map((r) => r.message_id))).toEqual(
    new Set(sent.filter((m) => m !== poison).map((m) => m.id)),
  );
  const seqOf = (m: BrokerMessage): number => (m.payload as { seq: number }).seq;
  const byKey = seqsByKey(rows);
  for (const k of [0, 1, 2])
    expect(byKey.get(`key-${k}`)).toEqual(
      sent.filter((m) => m.key === `key-${k}` && m !== poison).map(seqOf),
    );
  await expect(c.store.get({ consumer: c.consumer, messageId: poison.id })).resolves.toMatchObject({
    status: 'dead_letter',
    attempts: 3,
  });
  // Its key was held while it was retried: the later messages of key-1 ran after its last attempt.
  const lastPoisonRun = c.handled.lastIndexOf(poison.id);
  expect(c.handled.filter((id) => id === poison.id).length).toBeGreaterThanOrEqual(3);
  for (const m of sent.filter((m) => m.key === 'key-1' && seqOf(m) > 4))
    expect(c.handled.lastIndexOf(m.id)).toBeGreaterThan(lastPoisonRun);
  expect(Math.max(...c.batches)).toBeGreaterThan(1);
  expect(c.inbox.stats).toMatchObject({ processed: sent.length - 1, deadLettered: 1 });
});
