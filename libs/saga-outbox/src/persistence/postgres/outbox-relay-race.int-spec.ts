import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { OutboxRelay } from '../../core/outbox/outbox-relay';
import { analysePublications } from '../../testing/recording-broker';
import { waitUntil } from '../../testing/async';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';

/**
 * 4 relays (each with its own connection pool, as separate processes would have) race over 10,000
 * messages that 4 writers commit while the relays run: each message is published exactly once and
 * per-key order (key locks at write + head-of-key claims) holds.
 */
const MESSAGES = 10_000;
const KEYS = 250;
const WRITERS = 4;
const PER_TX = 50;

jest.setTimeout(120_000);

let db: TestDatabase;
let writer: OutboxTestContext;
const relayContexts: OutboxTestContext[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  writer = await openOutboxTestContext(db.connection, WRITERS + 1);
  for (let i = 0; i < 4; i++) relayContexts.push(await openOutboxTestContext(db.connection, 4));
});
afterAll(async () => {
  for (const c of relayContexts) await c.close();
  await writer?.close();
  await db?.drop();
});

it(`4 relays over ${MESSAGES} messages written concurrently: each published exactly once, per-key order kept`, async () => {
  const broker = new InMemoryBroker();
  const relays = relayContexts.map(
    (c, i) =>
      new OutboxRelay({
        store: c.store,
        broker,
        relayId: `relay-${i}`,
        batchSize: 200,
        publishBatchSize: 50,
        maxInFlight: 4,
        pollIntervalMs: 25,
      }),
  );
  const started = Date.now();
  relays.forEach((r) => r.start());
  try {
    let next = 0;
    await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        while (next < MESSAGES) {
          const from = next;
          next += PER_TX;
          await writer.commit(
            Array.from({ length: Math.min(PER_TX, MESSAGES - from) }, (_, i) => ({
              destination: 'race',
              type: 'race.tested',
              key: `key-${(from + i) % KEYS}`,
              payload: { n: from + i },
            })),
          );
        }
      }),
    );
    await broker.waitFor(
      (published) => new Set(published.map((m) => m.id)).size >= MESSAGES,
      60_000,
    );
    await waitUntil(
      async () => (await writer.store.stats()).sent === MESSAGES,
      'all rows sent',
      10_000,
      20,
    );
  } finally {
    await Promise.all(relays.map((r) => r.stop()));
  }
  const elapsed = Date.now() - started;

  // Expected per-key order is seq order (drawn under the key's lock: commit order).
  const expected = (await writer.dataSource.query(
    `SELECT id, key FROM sage.outbox_message ORDER BY seq`,
  )) as { id: string; key: string }[];
  expect(expected).toHaveLength(MESSAGES);
  const analysis = analysePublications(broker.published, expected);
  expect(analysis.missing).toEqual([]);
  expect(analysis.duplicates).toBe(0);
  expect(analysis.distinct).toBe(MESSAGES);
  expect(analysis.orderViolations).toEqual([]);
  // Every relay took part (they raced rather than one doing all the work).
  const perRelay = relays.map((r) => r.stats.sent);
  expect(perRelay.reduce((a, b) => a + b, 0)).toBe(MESSAGES);
  expect(perRelay.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
  console.log(
    `race: ${MESSAGES} messages, 4 relays, ${elapsed} ms, per relay ${perRelay.join('/')}`,
  );
});
