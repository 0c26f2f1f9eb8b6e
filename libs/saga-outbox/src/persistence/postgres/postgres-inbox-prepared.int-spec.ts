/**
 * `preparedStatements`: the inbox's dedup statement runs as a named prepared statement on each
 * pooled connection (parsed once, plan reused), with the same outcomes as the unprepared one. The
 * whole store contract runs that way in inbox-store-conformance.int-spec.ts; here, what only this
 * mode has: the statement really is prepared on the server, a redelivery on the same connection
 * reuses it, and a failure still surfaces as TypeORM's QueryFailedError.
 */
import { randomUUID } from 'node:crypto';
import { QueryFailedError, type EntityManager } from 'typeorm';
import { openPostgresDatabase, type OpenedDatabase } from '@test/support/sage-databases';
import { InvalidOptionsError } from '../../core/errors';
import { InboxProcessor } from '../../core/inbox/inbox-processor';
import { PostgresInboxStore } from './postgres-inbox-store';
import { markInboxProcessed } from './inbox-queries.sql';
import { preparedStatementName } from './run-statement';
import { inboxTables } from './inbox-tables';
import { sagaSchema } from './schema-name';

jest.setTimeout(30_000);

let db: OpenedDatabase;

beforeAll(async () => {
  // One connection: every transaction below runs on the same server session.
  db = await openPostgresDatabase(1);
});
afterAll(async () => {
  await db?.close();
});

const preparedOnSession = async (tx: EntityManager): Promise<string[]> =>
  ((await tx.query('SELECT name FROM pg_prepared_statements ORDER BY name')) as { name: string }[])
    .map((r) => r.name)
    .filter((n) => n.startsWith('sage_inbox_mark_'));

describe('PostgresInboxStore with preparedStatements', () => {
  it('prepares the dedup statement once per connection and reuses it for every delivery', async () => {
    const store = new PostgresInboxStore(db.dataSource, { preparedStatements: true });
    const consumer = `prepared.${randomUUID().slice(0, 8)}`;
    const seen: string[][] = [];
    const attempts: (number | null)[] = [];
    for (const messageId of ['m-1', 'm-2', 'm-1']) {
      await store.transaction(async (tx) => {
        attempts.push(await store.markProcessed(tx, { consumer, messageId }));
        seen.push(await preparedOnSession(tx));
      });
    }
    // First delivery of m-1 and m-2 recorded (attempt 1), the redelivery of m-1 a duplicate.
    expect(attempts).toEqual([1, 1, null]);
    const name = preparedStatementName(
      'sage_inbox_mark',
      markInboxProcessed(inboxTables(sagaSchema()), { consumer: '', messageId: '' }),
    );
    // The same single prepared statement on the session each time: prepared once, reused.
    expect(seen).toEqual([[name], [name], [name]]);
  });

  it('leaves the session without prepared statements when the option is off (the default)', async () => {
    const ds = await openPostgresDatabase(1);
    try {
      const store = new PostgresInboxStore(ds.dataSource);
      const names = await store.transaction(async (tx) => {
        await store.markProcessed(tx, { consumer: 'plain', messageId: 'm-1' });
        return preparedOnSession(tx);
      });
      expect(names).toEqual([]);
    } finally {
      await ds.close();
    }
  });

  it('runs the inbox protocol the same way: a handler failure rolls the row back, the retry gets attempt 2', async () => {
    const store = new PostgresInboxStore(db.dataSource, { preparedStatements: true });
    const inbox = new InboxProcessor<EntityManager>({ store, maxAttempts: 3 });
    const delivery = { consumer: `prepared.${randomUUID().slice(0, 8)}`, messageId: 'order-1' };
    await expect(
      inbox.process(delivery, () => Promise.reject(new Error('payment service down'))),
    ).rejects.toThrow('payment service down');
    await expect(
      inbox.process(delivery, ({ attempt }) => Promise.resolve(attempt)),
    ).resolves.toEqual({ outcome: 'processed', attempt: 2, value: 2 });
    await expect(inbox.process(delivery, () => Promise.resolve(0))).resolves.toEqual({
      outcome: 'duplicate',
    });
  });

  it('reports a failing prepared statement as QueryFailedError, as the unprepared path does', async () => {
    const store = new PostgresInboxStore(db.dataSource, { preparedStatements: true });
    // NUL is not storable in text: PostgreSQL rejects the Bind (the processor refuses such ids
    // earlier; the store itself does not check).
    const error = await store
      .transaction((tx) => store.markProcessed(tx, { consumer: 'c', messageId: 'a\u0000b' }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QueryFailedError);
  });

  it('refuses a non-boolean option, naming it', () => {
    expect(
      () =>
        new PostgresInboxStore(db.dataSource, {
          preparedStatements: 'yes' as unknown as boolean,
        }),
    ).toThrow(InvalidOptionsError);
    expect(
      () =>
        new PostgresInboxStore(db.dataSource, {
          preparedStatements: 'yes' as unknown as boolean,
        }),
    ).toThrow(/preparedStatements/);
  });
});
