import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { createTestDatabase, pgConnection, type TestDatabase } from '@test/support/pg';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { OutboxRelay } from '../../core/outbox/outbox-relay';
import { waitUntil } from '../../testing/async';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';

/**
 * The relay wakes on NOTIFY, not on its poll (10 minutes here, so only the notification path can
 * deliver in time):
 * - an unrelated transaction open anywhere on the server holds nothing back (there is no commit
 *   watermark: per-key order comes from the writers' key locks);
 * - a notified row that cannot be claimed yet, because an earlier message of its key is in flight
 *   elsewhere (an optimistic sender, another relay), is looked at again after a short backoff:
 *   finishing that earlier message sends no NOTIFY.
 */
describe('outbox relay: notified rows', () => {
  let db: TestDatabase;
  let ctx: OutboxTestContext;
  let relay: OutboxRelay | undefined;
  let blocker: Client | undefined;
  const broker = new InMemoryBroker();
  const received: string[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    ctx = await openOutboxTestContext(db.connection);
    await broker.subscribe('orders', (m) => {
      received.push(m.id);
      return Promise.resolve();
    });
  });
  const startRelay = async (): Promise<void> => {
    await relay?.stop();
    relay = new OutboxRelay({ store: ctx.store, broker, pollIntervalMs: 600_000 });
    relay.start();
    await waitUntil(() => relay!.stats.listening, 'the relay is listening');
  };
  afterAll(async () => {
    await relay?.stop();
    await blocker?.end().catch(() => undefined);
    await ctx?.close();
    await db?.drop();
  });

  it('publishes at once while an older, unrelated transaction stays open', async () => {
    await startRelay();
    // An unrelated transaction with an xid, older than the outbox row, stays open.
    blocker = new Client(pgConnection(db.name));
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('SELECT pg_current_xact_id()');
    try {
      const [id] = await ctx.commit({
        destination: 'orders',
        type: 'order.placed',
        key: 'o-1',
        payload: { n: 1 },
      });
      await waitUntil(() => received.includes(id!), 'the message is relayed', 10_000);
    } finally {
      await blocker.query('COMMIT');
    }
  });

  it('publishes a row held behind its key soon after the earlier message is sent elsewhere', async () => {
    const key = `k-${randomUUID()}`;
    await relay?.stop();
    const [head] = await ctx.commit({ destination: 'held', type: 'head', key, payload: 1 });
    // Another claimant takes the key's head (as an optimistic sender would) and keeps it a while.
    const token = randomUUID();
    const { claimed } = await ctx.store.claimByIds(token, [head!], 60_000);
    expect(claimed.map((m) => m.id)).toEqual([head]);
    await startRelay();
    const [next] = await ctx.commit({ destination: 'orders', type: 'next', key, payload: 2 });
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(received).not.toContain(next);
    // Marking the head sent sends no NOTIFY: the relay's follow-up finds the row.
    expect(await ctx.store.markSent(token, [head!])).toEqual([head]);
    await waitUntil(() => received.includes(next!), 'the held message is relayed', 10_000);
  });
});
