/**
 * PostgresOutboxStore.insertClaimed on real PostgreSQL, the cases that need concurrency or
 * PostgreSQL's transaction semantics (the rest is in the conformance suite):
 * - a writer that waited for a key's lock sees the rows committed meanwhile (the lock is a
 *   statement of its own, so the insert's READ COMMITTED snapshot is taken after it): a row
 *   committed by the previous holder keeps the new row pending instead of claimed;
 * - inside a savepoint (nested TypeORM transaction) and under REPEATABLE READ nothing is claimed.
 */
import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import type { NewOutboxMessage } from '../../core/outbox/outbox-message';
import { uuidv7 } from '../../core/uuid';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';

let db: TestDatabase;
let ctx: OutboxTestContext;

beforeAll(async () => {
  db = await createTestDatabase();
  ctx = await openOutboxTestContext(db.connection);
});
afterAll(async () => {
  await ctx?.close();
  await db?.drop();
});

const message = (key: string | null): NewOutboxMessage => ({
  id: uuidv7(),
  destination: 'orders',
  type: 'order.placed',
  key,
  payload: { n: 1 },
  headers: {},
  sagaId: null,
});

const claimAll = (manager: EntityManager, messages: NewOutboxMessage[]) =>
  ctx.store.insertClaimed(manager, messages, {
    claimToken: randomUUID(),
    leaseMs: 60_000,
    ids: messages.map((m) => m.id),
  });

it('a writer that waited for the key sees the row the previous holder committed: written pending', async () => {
  const key = `k-${randomUUID()}`;
  const first = message(key);
  const second = message(key);
  const runner = ctx.dataSource.createQueryRunner();
  await runner.connect();
  await runner.startTransaction();
  try {
    // The first writer holds the key (its row pending: written the plain way) and stays open.
    await ctx.store.insert(runner.manager, [first]);
    let claimed: string[] | undefined;
    const waiting = ctx.dataSource.transaction(async (manager) => {
      claimed = (await claimAll(manager, [second])).map((m) => m.id);
    });
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(claimed).toBeUndefined(); // waiting for the key
    await runner.commitTransaction();
    await waiting;
    expect(claimed).toEqual([]);
    expect((await ctx.store.get(second.id))?.status).toBe('pending');
  } finally {
    if (runner.isTransactionActive) await runner.rollbackTransaction();
    await runner.release();
  }
});

it('claims nothing inside a savepoint, where the rows may still be rolled back', async () => {
  const outer = message(`k-${randomUUID()}`);
  const nested = message(`k-${randomUUID()}`);
  let inSavepoint: string[] = [];
  let atTop: string[] = [];
  await ctx.dataSource.transaction(async (manager) => {
    atTop = (await claimAll(manager, [outer])).map((m) => m.id);
    await manager.transaction(async (inner) => {
      inSavepoint = (await claimAll(inner, [nested])).map((m) => m.id);
    });
  });
  expect(atTop).toEqual([outer.id]);
  expect(inSavepoint).toEqual([]);
  expect((await ctx.store.get(nested.id))?.status).toBe('pending');
});

it('claims nothing under REPEATABLE READ (its snapshot may predate the key lock)', async () => {
  const m = message(`k-${randomUUID()}`);
  const claimed = await ctx.dataSource.transaction('REPEATABLE READ', (manager) =>
    claimAll(manager, [m]),
  );
  expect(claimed).toEqual([]);
  expect((await ctx.store.get(m.id))?.status).toBe('pending');
});
