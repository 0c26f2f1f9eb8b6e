/**
 * The opt-in publication migration of the WAL relay: concurrent runs create one publication (the
 * outbox table's INSERTs only), `down` drops it, and it works for another schema.
 */
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import type { DataSource } from 'typeorm';
import { createSagaDataSource } from '../persistence/postgres/data-source';
import { outboxWalPublicationMigration, sagaOutboxMigrations } from './index';

jest.setTimeout(60_000);

let db: TestDatabase;
let dataSource: DataSource;

beforeAll(async () => {
  db = await createTestDatabase();
  const c = db.connection;
  dataSource = createSagaDataSource({
    host: c.host,
    port: c.port,
    username: c.user,
    password: c.password,
    database: c.database,
    poolSize: 4,
  });
  await dataSource.initialize();
});
afterAll(async () => {
  await dataSource?.destroy();
  await db?.drop();
});

async function up(schema?: string): Promise<void> {
  const Migration = outboxWalPublicationMigration({ schema });
  const runner = dataSource.createQueryRunner();
  try {
    await runner.startTransaction();
    await new Migration().up(runner);
    await runner.commitTransaction();
  } finally {
    await runner.release();
  }
}

const publications = async (): Promise<
  { pubname: string; pubinsert: boolean; pubupdate: boolean; pubdelete: boolean; table: string }[]
> =>
  (await dataSource.query(
    `SELECT p.pubname, p.pubinsert, p.pubupdate, p.pubdelete, t.schemaname || '.' || t.tablename AS table
     FROM pg_publication p JOIN pg_publication_tables t USING (pubname) ORDER BY p.pubname`,
  )) as never;

it('creates one INSERT-only publication of the outbox table, even when run concurrently', async () => {
  await Promise.all([up(), up(), up()]);
  expect(await publications()).toEqual([
    {
      pubname: 'sage_outbox',
      pubinsert: true,
      pubupdate: false,
      pubdelete: false,
      table: 'sage.outbox_message',
    },
  ]);
  const Migration = outboxWalPublicationMigration();
  const runner = dataSource.createQueryRunner();
  try {
    await new Migration().down(runner);
  } finally {
    await runner.release();
  }
  expect(await publications()).toEqual([]);
});

it('names the publication after another schema', async () => {
  const runner = dataSource.createQueryRunner();
  try {
    for (const Migration of sagaOutboxMigrations({ schema: 'orders' }))
      await new Migration().up(runner);
  } finally {
    await runner.release();
  }
  await up('orders');
  expect((await publications()).map((p) => [p.pubname, p.table])).toEqual([
    ['sage_outbox_orders', 'orders.outbox_message'],
  ]);
  expect(new (outboxWalPublicationMigration({ schema: 'orders' }))().name).toBe(
    'SageOutboxWalPublication_orders_1764921600000',
  );
});
