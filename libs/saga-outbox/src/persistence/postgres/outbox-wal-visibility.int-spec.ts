/**
 * PostgreSQL streams a commit to logical replication once its WAL is flushed, a moment before the
 * committing session makes it visible to other sessions. A WAL relay that publishes that fast and
 * marks the row sent sees no row to mark: it must record it again once the row is visible, and not
 * confirm the slot past it meanwhile (else the row stays `pending` for ever although its message
 * went out).
 *
 * The moment is made long, on a server of this file's own: a synchronous standby that never comes
 * holds the writer's commit after its local flush (a synchronous-replication wait), so the stream
 * carries the transaction while no other session can see it, until the wait is cancelled.
 */
import { randomUUID } from 'node:crypto';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';
import { createWalTestDatabase, type WalTestDatabase } from '@test/support/wal-postgres';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { WalOutboxRelay } from '../../core/outbox/wal-outbox-relay';
import { waitUntil } from '../../testing/async';
import { PostgresWalSource } from './postgres-wal-source';

jest.setTimeout(90_000);

let db: WalTestDatabase;
let ctx: OutboxTestContext;
let relay: WalOutboxRelay | undefined;

beforeAll(async () => {
  db = await createWalTestDatabase({ privateServer: true });
  ctx = await openOutboxTestContext(db.connection, 4);
  // Every session commits locally (no wait) unless it asks for synchronous replication itself.
  await ctx.dataSource.query(`ALTER SYSTEM SET synchronous_commit = 'local'`);
  await ctx.dataSource.query(`ALTER SYSTEM SET synchronous_standby_names = 'sage_absent_standby'`);
  await ctx.dataSource.query(`SELECT pg_reload_conf()`);
});
afterAll(async () => {
  await relay?.stop();
  await ctx?.close();
  await db?.cleanup();
});

const visibleStatus = async (id: string): Promise<string | undefined> =>
  (
    (await ctx.dataSource.query(`SELECT status FROM sage.outbox_message WHERE id = $1`, [id])) as {
      status: string;
    }[]
  )[0]?.status;

it('marks a streamed row sent once it becomes visible, and does not confirm the slot past it before', async () => {
  const broker = new InMemoryBroker();
  relay = new WalOutboxRelay({
    source: new PostgresWalSource(ctx.dataSource, db.connection, {
      slot: `t_${randomUUID().replace(/-/g, '').slice(0, 16)}`,
    }),
    broker,
    standbyRetryMs: 100,
  });
  relay.start();
  await waitUntil(() => relay!.stats.leader, 'the relay streams', 15_000);
  const destination = `d-${randomUUID().slice(0, 8)}`;

  const writer = ctx.dataSource.createQueryRunner();
  await writer.connect();
  try {
    await writer.query(`SET synchronous_commit = on`);
    const [{ pid }] = (await writer.query(`SELECT pg_backend_pid() AS pid`)) as [{ pid: number }];
    await writer.startTransaction();
    const [id] = await ctx.publisher.publish(
      { destination, type: 't', key: 'k', payload: { n: 1 } },
      { manager: writer.manager },
    );
    // Flushed and streamed, but held in the synchronous-replication wait: not visible yet.
    const committing = writer.commitTransaction();
    await waitUntil(
      () => broker.published.some((m) => m.destination === destination),
      'the stream carries the transaction before it is visible',
      15_000,
    );
    const confirmedAtPublish = relay.stats.confirmedLsn;
    await waitUntil(
      async () => (await visibleStatus(id!)) === undefined && relay!.stats.sent === 0,
      'published, the row still invisible',
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await visibleStatus(id!)).toBeUndefined();
    expect(relay.stats.sent).toBe(0);
    // Not confirmed past the unrecorded message: a crash now would stream it again.
    expect(relay.stats.confirmedLsn).toBe(confirmedAtPublish);

    // The wait ends (the commit was local already): the row becomes visible, and is marked sent.
    await ctx.dataSource.query(`SELECT pg_cancel_backend($1)`, [pid]);
    await committing;
    await waitUntil(async () => (await visibleStatus(id!)) === 'sent', 'marked sent', 15_000);
    // The relay counts it once the mark's reply is back (a moment after the row reads `sent`).
    await waitUntil(() => relay!.stats.sent === 1, 'counted sent');
    await waitUntil(
      () => relay!.stats.confirmedLsn !== confirmedAtPublish,
      'the slot confirmed past it',
    );
    expect(broker.published.filter((m) => m.destination === destination)).toHaveLength(1);
  } finally {
    await writer.release();
  }
});
