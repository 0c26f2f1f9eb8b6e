import { Client } from 'pg';
import { createTestDatabase, pgConnection, type TestDatabase } from '@test/support/pg';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { OutboxRelay } from '../../core/outbox/outbox-relay';
import { waitUntil } from '../../testing/async';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';

/**
 * A NOTIFY can arrive while the committed rows are still above the commit watermark, because some
 * unrelated older transaction is open (anywhere on the server). That transaction sends no NOTIFY
 * when it ends, so a relay that only waited for the next poll would sit out a whole interval.
 */
describe('outbox relay: notified rows held back by the watermark', () => {
  let db: TestDatabase;
  let ctx: OutboxTestContext;
  let relay: OutboxRelay | undefined;
  let blocker: Client | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
    ctx = await openOutboxTestContext(db.connection);
  });
  afterAll(async () => {
    await relay?.stop();
    await blocker?.end().catch(() => undefined);
    await ctx?.close();
    await db?.drop();
  });

  it('publishes them soon after the blocking transaction ends, not at the next poll', async () => {
    const broker = new InMemoryBroker();
    const received: string[] = [];
    await broker.subscribe('orders', (m) => {
      received.push(m.id);
      return Promise.resolve();
    });
    // Polling alone would take 10 minutes: only NOTIFY (and its follow-up) can deliver in time.
    relay = new OutboxRelay({ store: ctx.store, broker, pollIntervalMs: 600_000 });
    relay.start();
    await waitUntil(() => relay!.stats.listening, 'the relay is listening');

    // An unrelated transaction with an xid, older than the outbox row, stays open.
    blocker = new Client(pgConnection(db.name));
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('SELECT pg_current_xact_id()');

    const [id] = await ctx.commit({
      destination: 'orders',
      type: 'order.placed',
      key: 'o-1',
      payload: { n: 1 },
    });
    // Held back while the older transaction is open (that is the watermark doing its job)...
    await new Promise((r) => setTimeout(r, 200));
    expect(received).toEqual([]);
    // ...and relayed once it ends, although it sends no NOTIFY.
    await blocker.query('COMMIT');
    await waitUntil(() => received.includes(id!), 'the message is relayed', 10_000);
  });
});
