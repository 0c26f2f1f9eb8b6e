/**
 * Race safety of optimistic sending on real PostgreSQL and a real broker (RabbitMQ, which does not
 * deduplicate, so a message published twice is delivered twice and counted): writers commit
 * thousands of messages over many keys while the optimistic sender (after each commit) and two
 * relays (woken by the same NOTIFY, each with its own pool and broker connection, as separate
 * processes would have) all go for the same rows. At the consumer, counted by message id: every
 * message exactly once, and per-key order as committed.
 */
import { randomUUID } from 'node:crypto';
import amqplib from 'amqplib';
import type { EntityManager } from 'typeorm';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { RabbitMqBroker } from '../../brokers/rabbitmq/rabbitmq-broker';
import { OptimisticSender, withOptimisticSend } from '../../core/outbox/optimistic-sender';
import type { OutboxEvent } from '../../core/outbox/outbox-events';
import { OutboxPublisher } from '../../core/outbox/outbox-publisher';
import { OutboxRelay } from '../../core/outbox/outbox-relay';
import type { Subscription } from '../../core/ports/broker';
import { analysePublications } from '../../testing/recording-broker';
import { waitUntil } from '../../testing/async';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';
import { TypeOrmCommitHooks } from './typeorm-commit-hooks';

const URL = process.env.SAGE_RABBITMQ_URL ?? 'amqp://sage:sage@127.0.0.1:56729';
const MESSAGES = 4000;
const KEYS = 200;
const WRITERS = 6;

jest.setTimeout(180_000);

let db: TestDatabase;
let writer: OutboxTestContext;
const relayContexts: OutboxTestContext[] = [];
const exchange = `sage-test-${randomUUID()}`;
const destination = `optimistic-race-${randomUUID()}`;
const brokers: RabbitMqBroker[] = [];
const newBroker = (): RabbitMqBroker => {
  const broker = new RabbitMqBroker({
    url: URL,
    exchange,
    queueType: 'classic',
    declareDestinations: [destination],
  });
  brokers.push(broker);
  return broker;
};

beforeAll(async () => {
  db = await createTestDatabase();
  writer = await openOutboxTestContext(db.connection, WRITERS + 4);
  for (let i = 0; i < 2; i++) relayContexts.push(await openOutboxTestContext(db.connection, 4));
});
afterAll(async () => {
  await Promise.allSettled(brokers.map((b) => b.close()));
  for (const c of relayContexts) await c.close();
  await writer?.close();
  await db?.drop();
  const connection = await amqplib.connect(URL);
  try {
    for (const [kind, name] of [
      ['queue', destination],
      ['queue', `${destination}.dlq`],
      ['exchange', exchange],
      ['exchange', `${exchange}.dlx`],
    ] as const) {
      const channel = await connection.createChannel();
      channel.on('error', () => undefined);
      try {
        if (kind === 'queue') await channel.deleteQueue(name);
        else await channel.deleteExchange(name);
        await channel.close();
      } catch {
        // already gone
      }
    }
  } finally {
    await connection.close();
  }
});

it(`optimistic sender + 2 relays on the same ${MESSAGES} rows: each delivered once, per-key order kept`, async () => {
  const consumer = newBroker();
  const received: { id: string; key: string | null }[] = [];
  const subscription: Subscription = await consumer.subscribe(destination, (m) => {
    received.push({ id: m.id, key: m.key });
    return Promise.resolve();
  });

  const optimistic = new OptimisticSender({
    store: writer.store,
    broker: newBroker(),
    enabled: true,
    timeoutMs: 2000,
    // Small on purpose: some commits find it saturated and are left to the relays.
    maxConcurrent: 8,
  });
  const optimisticEvents: OutboxEvent[] = [];
  optimistic.onEvent((e) => optimisticEvents.push(e));
  const hooks = new TypeOrmCommitHooks();
  const outbox = new OutboxPublisher<EntityManager>({
    writer: withOptimisticSend(writer.store, hooks, optimistic),
  });
  const relays = relayContexts.map(
    (c, i) =>
      new OutboxRelay({
        store: c.store,
        broker: newBroker(),
        relayId: `relay-${i}`,
        batchSize: 100,
        publishBatchSize: 25,
        maxInFlight: 4,
        pollIntervalMs: 20,
      }),
  );
  relays.forEach((r) => r.start());
  try {
    let next = 0;
    let tx = 0;
    await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        while (next < MESSAGES) {
          const size = Math.min((tx++ % 4) + 1, MESSAGES - next); // 1–4 messages per transaction
          const from = next;
          next += size;
          await writer.dataSource.transaction((manager) =>
            outbox.publish(
              Array.from({ length: size }, (_, i) => ({
                destination,
                type: 'race.tested',
                // Neighbouring messages share keys across writers: keys are contended.
                key: `key-${(from + i) % KEYS}`,
                payload: { n: from + i },
              })),
              { manager },
            ),
          );
        }
      }),
    );
    await waitUntil(
      () => new Set(received.map((m) => m.id)).size >= MESSAGES,
      'every message delivered',
      90_000,
      20,
    );
    await optimistic.idle();
    await waitUntil(
      async () => (await writer.store.stats()).sent === MESSAGES,
      'all rows sent',
      20_000,
      20,
    );
  } finally {
    await optimistic.stop();
    await Promise.all(relays.map((r) => r.stop()));
    hooks.detachAll();
  }
  // A late duplicate would still be queued: publish a sentinel behind everything and wait for it
  // (one FIFO queue), so what was received is all that was published.
  const sentinel = randomUUID();
  await consumer.publish([
    {
      id: sentinel,
      destination,
      key: 'sentinel',
      type: 'race.sentinel',
      payload: null,
      headers: {},
      time: new Date(),
    },
  ]);
  await waitUntil(() => received.some((m) => m.id === sentinel), 'the sentinel', 20_000);
  received.splice(
    received.findIndex((m) => m.id === sentinel),
    1,
  );
  await subscription.unsubscribe();

  const expected = (await writer.dataSource.query(
    `SELECT id, key FROM sage.outbox_message ORDER BY txid, seq`,
  )) as { id: string; key: string }[];
  expect(expected).toHaveLength(MESSAGES);
  const analysis = analysePublications(received, expected);
  expect(analysis.missing).toEqual([]);
  expect(analysis.duplicates).toBe(0);
  expect(analysis.distinct).toBe(MESSAGES);
  expect(analysis.orderViolations).toEqual([]);

  // Both paths published, and between them exactly every row once.
  const byRelays = relays.reduce((n, r) => n + r.stats.sent, 0);
  const s = optimistic.stats;
  expect(s.sent).toBeGreaterThan(0);
  expect(s.sent + byRelays).toBe(MESSAGES);
  expect(s.staleMarks).toBe(0);
  expect(relays.every((r) => r.stats.staleMarks === 0)).toBe(true);
  expect(optimisticEvents.filter((e) => e.type === 'outbox.published')).toHaveLength(s.sent);
  console.log(
    `optimistic race: ${MESSAGES} messages; optimistic sent ${s.sent} (attempts ${s.attempts}, ` +
      `skipped saturated ${s.skippedSaturated}, left to relay ${s.leftToRelay}, released ${s.released}); ` +
      `relays ${relays.map((r) => r.stats.sent).join('/')}`,
  );
});
