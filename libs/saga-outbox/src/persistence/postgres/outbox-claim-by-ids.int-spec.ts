/**
 * PostgresOutboxStore.claimByIds, the optimistic sender's claim, on real PostgreSQL: the relay's
 * eligibility (pending, due, head of key) restricted to the given ids, and the `waiting`
 * report that tells the caller which ids are worth another try.
 */
import { Client } from 'pg';
import { createTestDatabase, pgConnection, type TestDatabase } from '@test/support/pg';
import { uuidv7 } from '../../core/uuid';
import type { ClaimByIdsResult } from '../../core/ports/outbox-store';
import { waitUntil } from '../../testing/async';
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

/**
 * Claims are immediate (no commit watermark): the server is shared with other test files whose
 * transactions stay open, and none of them may hold these rows back.
 */
const claimNow = (token: string, ids: string[]): Promise<ClaimByIdsResult> =>
  ctx.store.claimByIds(token, ids, 5000);

/** The relay's claim; other files' rows may come first, so it claims until it returns `id`. */
async function relayClaims(token: string, id: string): Promise<string[]> {
  const all: string[] = [];
  await waitUntil(async () => {
    all.push(...(await ctx.store.claim(token, 1000, 5000)).map((m) => m.id));
    return all.includes(id);
  }, 'the relay to claim the row');
  return all;
}

const msg = (key: string | null, n: number) => ({
  destination: 'orders',
  type: 'order.placed',
  key,
  payload: { n },
});

it('claims only the given ids, in publish order, one per key; the rest of the key is waiting', async () => {
  const [a1, a2, b1] = await ctx.commit([msg('a', 1), msg('a', 2), msg('b', 1)]);
  const [other] = await ctx.commit([msg('c', 1)]);

  const first = await claimNow(uuidv7(), [b1!, a2!, a1!]);
  expect(first.claimed.map((m) => m.id)).toEqual([a1, b1]);
  expect(first.waiting).toEqual([a2]);
  expect((await ctx.store.get(other!))?.status).toBe('pending'); // not asked for: untouched

  // a2 is still behind a1 (claimed) until a1 is sent.
  const token = uuidv7();
  expect(await ctx.store.claimByIds(token, [a2!], 5000)).toEqual({ claimed: [], waiting: [a2] });
});

it('ids a relay already claimed (or sent), and unknown ids, are neither claimed nor waiting', async () => {
  const [id] = await ctx.commit([msg('d', 1)]);
  const relayToken = uuidv7();
  await relayClaims(relayToken, id!);

  expect(await ctx.store.claimByIds(uuidv7(), [id!, uuidv7(), 'not-a-uuid'], 5000)).toEqual({
    claimed: [],
    waiting: [],
  });
  await ctx.store.markSent(relayToken, [id!]);
  expect(await ctx.store.claimByIds(uuidv7(), [id!], 5000)).toEqual({ claimed: [], waiting: [] });
});

it('an older transaction still open holds nothing back: the row is claimed at once', async () => {
  const blocker = new Client(pgConnection(db.name));
  await blocker.connect();
  try {
    await blocker.query('BEGIN');
    await blocker.query('SELECT pg_current_xact_id()'); // an xid older than the row's
    const [id] = await ctx.commit([msg('e', 1)]);
    expect(await claimNow(uuidv7(), [id!])).toMatchObject({ claimed: [{ id }], waiting: [] });
  } finally {
    await blocker.query('COMMIT');
    await blocker.end();
  }
});

it('a release hands the row back due now with attempts unchanged, and a relay can claim it', async () => {
  const [id] = await ctx.commit([msg('f', 1)]);
  const token = uuidv7();
  const { claimed } = await claimNow(token, [id!]);
  expect(claimed.map((m) => m.id)).toEqual([id]);
  expect(await ctx.store.release(token, [id!])).toEqual([id]);
  const row = await ctx.store.get(id!);
  expect(row).toMatchObject({ status: 'pending', attempts: 0 });
  expect(await relayClaims(uuidv7(), id!)).toContain(id);
});
