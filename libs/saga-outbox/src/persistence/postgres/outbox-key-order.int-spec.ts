/**
 * Per-key publish order when transaction ids and commits disagree. Two writers of one aggregate
 * serialise on its row lock; the one that got its transaction id first (it wrote another
 * aggregate first) commits second. Its message must still go out second: the order of a key is
 * the order its messages were inserted under the aggregate's lock (`seq`), not `(txid, seq)`.
 * The chaos suite found this at scale (two producers, four keys per transaction).
 */
import { randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { OutboxRelay } from '../../core/outbox/outbox-relay';
import { waitUntil } from '../../testing/async';

jest.setTimeout(60_000);

let db: TestDatabase;
let ctx: OutboxTestContext;

beforeAll(async () => {
  db = await createTestDatabase();
  ctx = await openOutboxTestContext(db.connection, 6);
  await ctx.dataSource.query(
    `CREATE TABLE public.aggregate (key text PRIMARY KEY, version int NOT NULL)`,
  );
});
afterAll(async () => {
  await ctx?.close();
  await db?.drop();
});

it('publishes a key in commit order when the older transaction commits second', async () => {
  const destination = `orders-${randomUUID().slice(0, 8)}`;
  const key = `agg-${randomUUID().slice(0, 8)}`;
  const other = `agg-${randomUUID().slice(0, 8)}`;
  await ctx.dataSource.query(
    `INSERT INTO public.aggregate (key, version) VALUES ($1, 0), ($2, 0)`,
    [key, other],
  );
  const older = ctx.dataSource.createQueryRunner();
  const younger = ctx.dataSource.createQueryRunner();
  await older.connect();
  await younger.connect();
  try {
    // The older transaction gets its id first, by writing another aggregate.
    await older.startTransaction();
    await older.query(`UPDATE public.aggregate SET version = version + 1 WHERE key = $1`, [other]);
    const [{ xid: olderXid }] = (await older.query(`SELECT pg_current_xact_id()::text AS xid`)) as [
      { xid: string },
    ];
    // The younger one takes the aggregate's lock first, publishes version 1 and commits.
    await younger.startTransaction();
    await younger.query(`UPDATE public.aggregate SET version = version + 1 WHERE key = $1`, [key]);
    await ctx.publisher.publish(
      { destination, type: 'agg.changed', key, payload: { version: 1 } },
      { manager: younger.manager },
    );
    const [{ xid: youngerXid }] = (await younger.query(
      `SELECT pg_current_xact_id()::text AS xid`,
    )) as [{ xid: string }];
    expect(BigInt(olderXid)).toBeLessThan(BigInt(youngerXid));
    // The older one waits for that lock, then publishes version 2 and commits second.
    const olderWrites = (async () => {
      await older.query(`UPDATE public.aggregate SET version = version + 1 WHERE key = $1`, [key]);
      await ctx.publisher.publish(
        { destination, type: 'agg.changed', key, payload: { version: 2 } },
        { manager: older.manager },
      );
      await older.commitTransaction();
    })();
    await younger.commitTransaction();
    await olderWrites;
  } finally {
    await older.release();
    await younger.release();
  }

  const broker = new InMemoryBroker();
  const relay = new OutboxRelay({ store: ctx.store, broker });
  await waitUntil(async () => {
    await relay.runOnce();
    return broker.published.filter((m) => m.key === key).length === 2;
  }, 'both messages of the key published');
  const versions = broker.published
    .filter((m) => m.key === key)
    .map((m) => (m.payload as { version: number }).version);
  expect(versions).toEqual([1, 2]);
});
