/**
 * The inbox in batches on real NATS JetStream and PostgreSQL: the subscriber hands the inbox the
 * first deliveries it holds that may run now, one per key (a key's later messages wait for its
 * batch), as one transaction, and acks them after its commit. Checked: every message takes effect
 * exactly once with duplicates inside one batch and across batches, per-key order holds, many keys
 * go through few transactions, and a poison message in the middle of a batch neither undoes nor
 * holds up the other keys: it is retried with its key held and dead-lettered by the inbox.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { DataSource } from 'typeorm';
import { createSagaDataSource } from '../../persistence/postgres/data-source';
import type { BrokerMessage } from '../../core/ports/broker';
import { waitUntil } from '../../testing/async';
import { createTestDatabase, dataSourceOptions, type TestDatabase } from '@test/support/pg';
import { EFFECT_TABLE_SQL } from '@test/support/inbox-pipeline';
import { batchingInbox, seqEffects, seqMessage, seqsByKey } from '@test/support/inbox-batch';
import { connect, type NatsConnection } from './nats-client';
import { encodeMessage } from './nats-message-codec';
import { NatsJetStreamBroker, type NatsJetStreamBrokerOptions } from './nats-broker';

jest.setTimeout(40_000);

// Real nats-server with JetStream (bash scripts/services.sh start nats). One stream and subject
// prefix for this file, deleted at the end; one destination per test.
const SERVERS = process.env.SAGE_NATS_URL ?? 'nats://127.0.0.1:42229';
const RUN = randomUUID().slice(0, 8);
const STREAM = `SAGE_INBOX_BATCH_${RUN}`;
const PREFIX = `sageinboxbatch.${RUN}.`;
const BATCH_SIZE = 16;

let db: TestDatabase;
let dataSource: DataSource;
let nc: NatsConnection;
const brokers: NatsJetStreamBroker[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  dataSource = await createSagaDataSource(dataSourceOptions(db.name, { poolSize: 8 })).initialize();
  await dataSource.query(EFFECT_TABLE_SQL);
  nc = await connect({ servers: SERVERS });
});

afterAll(async () => {
  await Promise.allSettled(brokers.map((b) => b.close()));
  if (nc) {
    await (await jetstreamManager(nc)).streams.delete(STREAM).catch(() => false);
    await nc.close();
  }
  await dataSource?.destroy();
  await db?.drop();
});

function newBroker(options: Partial<NatsJetStreamBrokerOptions> = {}): NatsJetStreamBroker {
  const broker = new NatsJetStreamBroker({
    servers: SERVERS,
    stream: STREAM,
    subjectPrefix: PREFIX,
    ackWaitMs: 10_000,
    ...options,
  });
  brokers.push(broker);
  return broker;
}

/**
 * Publishes `messages` in order WITHOUT `Nats-Msg-Id` (the id travels as `ce-id`), so JetStream
 * stores every copy: how a copy reaches a consumer once the duplicate window is over.
 */
async function publishCopies(messages: readonly BrokerMessage[]): Promise<void> {
  const js = jetstream(nc);
  for (const m of messages) {
    const encoded = encodeMessage(m, PREFIX, 'sage-test');
    await js.publish(encoded.subject, encoded.data, { headers: encoded.headers });
  }
}

/**
 * The inbox consuming `destination` in batches: `batchIds` holds the message ids of every batch
 * handed to the inbox (copies included), `singles()` counts its one-message transactions.
 */
async function consume(broker: NatsJetStreamBroker, destination: string, poison?: string) {
  const consumer = `inbox-batch-${randomUUID().slice(0, 8)}`;
  const c = batchingInbox(dataSource, { destination, consumer, batchSize: BATCH_SIZE, poison });
  const batchIds: string[][] = [];
  const processBatch = c.inbox.processBatch.bind(c.inbox);
  c.inbox.processBatch = (name, deliveries) => {
    batchIds.push(deliveries.map((d) => d.messageId));
    return processBatch(name, deliveries);
  };
  let singles = 0;
  const process = c.inbox.process.bind(c.inbox);
  c.inbox.process = (...args) => {
    singles++;
    return process(...args);
  };
  await c.start(broker);
  return { ...c, batchIds, singles: () => singles };
}

const seqOf = (m: BrokerMessage): number => (m.payload as { seq: number }).seq;

it('exactly once with duplicates inside one batch and across batches; per-key order kept; many keys in few transactions', async () => {
  const destination = `batch.${randomUUID()}`;
  const broker = newBroker();
  const KEYS = 30;
  const ROUNDS = 6;
  const sent: BrokerMessage[] = [];
  for (let seq = 0; seq < ROUNDS; seq++) {
    // One message per key per publish, as the relay does: per key, stream order is seq order.
    const round = Array.from({ length: KEYS }, (_, k) => seqMessage(destination, `key-${k}`, seq));
    expect((await broker.publish(round)).every((r) => r.ok)).toBe(true);
    sent.push(...round);
  }
  // Keyless copies back to back: no lane keeps them apart, so a pull hands both to one batch.
  const keyless = Array.from({ length: 10 }, (_, i) => ({
    ...seqMessage(destination, 'unused', i),
    key: null,
  }));
  await publishCopies(keyless.flatMap((m) => [m, m]));
  // Everything is in the stream before the subscriber starts: it pulls full batches.
  const c = await consume(broker, destination);
  const effects = () => seqEffects(dataSource, c.consumer);
  const total = sent.length + keyless.length;
  await waitUntil(async () => (await effects()).length >= total, 'all effects', 25_000, 20);
  await waitUntil(() => c.inbox.stats.duplicates >= keyless.length, 'keyless copies', 10_000, 20);
  const transactions = c.batchIds.length + c.singles();

  // Across batches: copies of handled messages come back later, among new ones.
  const late = Array.from({ length: KEYS }, (_, k) => seqMessage(destination, `key-${k}`, ROUNDS));
  const before = c.inbox.stats.duplicates;
  await publishCopies(sent.slice(0, 40));
  expect((await broker.publish(late)).every((r) => r.ok)).toBe(true);
  await waitUntil(
    async () => (await effects()).length >= total + late.length,
    'the late messages',
    15_000,
    20,
  );
  await waitUntil(() => c.inbox.stats.duplicates >= before + 40, 'cross-batch copies', 10_000, 20);
  await c.stop();

  const rows = await effects();
  const all = [...keyless, ...sent, ...late];
  expect(rows).toHaveLength(all.length);
  expect(new Set(rows.map((r) => r.message_id))).toEqual(new Set(all.map((m) => m.id)));
  for (const [key, seqs] of seqsByKey(rows.filter((r) => r.key !== null)))
    expect({ key, seqs }).toEqual({ key, seqs: Array.from({ length: ROUNDS + 1 }, (_, i) => i) });
  expect(c.inbox.stats).toMatchObject({
    processed: all.length,
    duplicates: keyless.length + 40,
    failed: 0,
    deadLettered: 0,
  });
  // Batches were used, never above batchSize, never with two messages of one key …
  expect(Math.max(...c.batches)).toBeGreaterThan(1);
  expect(Math.max(...c.batches)).toBeLessThanOrEqual(BATCH_SIZE);
  const keyOf = new Map(all.map((m) => [m.id, m.key]));
  for (const ids of c.batchIds) {
    const keys = ids.map((id) => keyOf.get(id)).filter((k) => k !== null);
    expect(new Set(keys).size).toBe(keys.length);
  }
  // … keyless copies did share a batch (its one dedup statement found the second a duplicate) …
  expect(c.batchIds.some((ids) => new Set(ids).size < ids.length)).toBe(true);
  // … and the first 190 messages (30 keys) took far fewer transactions than messages.
  expect(transactions).toBeLessThan((sent.length + 2 * keyless.length) / 3);
});

it('a poison message mid-batch: the others take effect once, in order, its key alone held; the poison is retried and dead-lettered', async () => {
  const destination = `poison.${randomUUID()}`;
  // Long back-off: the poison's three attempts span 2 s, while the other keys go on.
  const broker = newBroker({ redeliveryDelayMs: () => 1_000 });
  const KEYS = 8;
  const sent: BrokerMessage[] = [];
  for (let seq = 0; seq < 5; seq++)
    sent.push(...Array.from({ length: KEYS }, (_, k) => seqMessage(destination, `key-${k}`, seq)));
  const poison = sent.find((m) => m.key === 'key-3' && seqOf(m) === 1)!;
  const c = await consume(broker, destination, poison.id);
  // One publish: all 40 reach the subscriber together, so the poison's batch holds other keys.
  expect((await broker.publish(sent)).every((r) => r.ok)).toBe(true);
  const effects = () => seqEffects(dataSource, c.consumer);
  await waitUntil(
    async () => (await effects()).length >= sent.length - 1,
    'the others',
    25_000,
    20,
  );
  await waitUntil(() => c.inbox.stats.deadLettered === 1, 'the poison dead-lettered', 10_000, 20);
  await c.stop();

  const rows = await effects();
  expect(rows).toHaveLength(sent.length - 1);
  expect(new Set(rows.map((r) => r.message_id))).toEqual(
    new Set(sent.filter((m) => m !== poison).map((m) => m.id)),
  );
  const byKey = seqsByKey(rows);
  for (let k = 0; k < KEYS; k++)
    expect(byKey.get(`key-${k}`)).toEqual(
      sent.filter((m) => m.key === `key-${k}` && m !== poison).map(seqOf),
    );
  await expect(c.store.get({ consumer: c.consumer, messageId: poison.id })).resolves.toMatchObject({
    status: 'dead_letter',
    attempts: 3,
    lastError: expect.stringContaining('poison: cannot take this one') as unknown as string,
  });
  // The poison ran in a batch (rolled back with the others in it), then alone: 1 + 3 runs.
  const poisonRuns = c.handled.filter((id) => id === poison.id).length;
  expect(poisonRuns).toBe(4);
  const batchWithPoison = c.batchIds.find((ids) => ids.includes(poison.id));
  expect(batchWithPoison?.length).toBeGreaterThan(1);
  // Its key was held: key-3's later messages ran after its last attempt …
  const lastPoisonRun = c.handled.lastIndexOf(poison.id);
  for (const m of sent.filter((m) => m.key === 'key-3' && seqOf(m) > 1))
    expect(c.handled.indexOf(m.id)).toBeGreaterThan(lastPoisonRun);
  // … and only its key: every message of the other keys took effect during its back-off.
  for (const m of sent.filter((m) => m.key !== 'key-3'))
    expect(c.handled.lastIndexOf(m.id)).toBeLessThan(lastPoisonRun);
  // Batches went on beside it (more than one batch after the poison's).
  expect(c.batchIds.length).toBeGreaterThan(1 + c.batchIds.indexOf(batchWithPoison!));
  expect(c.inbox.stats).toMatchObject({ processed: sent.length - 1, deadLettered: 1 });
});

it('stopping mid-batch: the running batch finishes and commits, the rest goes to the next member; each message once', async () => {
  const destination = `stop.${randomUUID()}`;
  const broker = newBroker();
  const sent = Array.from({ length: 48 }, (_, k) => seqMessage(destination, `key-${k}`, 0));
  expect((await broker.publish(sent)).every((r) => r.ok)).toBe(true);
  const consumer = `inbox-stop-${randomUUID().slice(0, 8)}`;
  // Slow handlers (100 ms each): the first batch is still running when the subscriber stops.
  const first = batchingInbox(dataSource, {
    destination,
    consumer,
    batchSize: BATCH_SIZE,
    handlerMs: 100,
  });
  // What the stopped member had taken but not started comes back after ack_wait at the latest.
  await first.start(newBroker({ ackWaitMs: 2_000 }));
  await waitUntil(() => first.handled.length > 0, 'a batch running', 10_000, 5);
  await first.stop();
  // The batch that was running finished and committed whole (not rolled back by the stop) …
  expect(first.batches.length).toBeGreaterThan(0);
  expect(first.inbox.stats.processed).toBeGreaterThanOrEqual(first.batches[0]!);
  expect(first.inbox.stats.processed).toBeLessThan(sent.length);
  expect(first.inbox.stats).toMatchObject({ failed: 0 });
  // … and nothing of the first member runs after stop() resolved.
  const effects = () => seqEffects(dataSource, consumer);
  const afterStop = (await effects()).length;
  expect(afterStop).toBe(first.inbox.stats.processed);

  const second = batchingInbox(dataSource, { destination, consumer, batchSize: BATCH_SIZE });
  await second.start(newBroker({ ackWaitMs: 2_000 }));
  await waitUntil(async () => (await effects()).length >= sent.length, 'the rest', 25_000, 20);
  await second.stop();
  expect(first.handled.length).toBe(afterStop); // still: no handler ran after the stop
  const rows = await effects();
  expect(rows).toHaveLength(sent.length);
  expect(new Set(rows.map((r) => r.message_id))).toEqual(new Set(sent.map((m) => m.id)));
  expect(second.inbox.stats.processed).toBe(sent.length - afterStop);
});
