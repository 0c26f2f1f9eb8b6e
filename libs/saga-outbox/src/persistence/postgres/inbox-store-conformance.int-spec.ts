/**
 * The inbox store conformance suite on PostgreSQL (a database of its own, cloned from the migrated
 * template) and on embedded PGlite (over its socket, the way apps use it), the same SQL on both.
 */
import type { DataSource, EntityManager } from 'typeorm';
import { createTestDatabase, dataSourceOptions } from '@test/support/pg';
import { spawnEmbeddedPostgres } from '@test/support/embedded-postgres-process';
import {
  describeInboxStoreConformance,
  type InboxStoreConformanceHarness,
} from '../../testing/inbox-store-conformance';
import { createSagaDataSource, runMigrationsLocked } from './data-source';
import { PostgresInboxStore } from './postgres-inbox-store';

/** An open, migrated database for the whole file, and how to let it go. */
interface OpenDatabase {
  dataSource: DataSource;
  close(): Promise<void>;
}

/** The handlers' business table: a handler's write is a row here, in the inbox transaction. */
const WRITES = 'public.conformance_write';

/** Each test gets a new PostgresInboxStore on emptied inbox tables and an empty business table. */
function postgresHarness(
  open: () => Promise<OpenDatabase>,
): InboxStoreConformanceHarness<EntityManager> {
  let db: OpenDatabase | undefined;
  return {
    setup: async () => {
      db = await open();
      await db.dataSource.query(
        `CREATE TABLE ${WRITES} (id bigserial PRIMARY KEY, note text NOT NULL)`,
      );
    },
    teardown: async () => {
      await db?.close();
    },
    create: async () => {
      const dataSource = db!.dataSource;
      const store = new PostgresInboxStore(dataSource);
      await dataSource.query(
        `TRUNCATE ${store.tables.inboxMessage}, ${store.tables.inboxFailure}, ${WRITES}`,
      );
      return {
        store,
        write: async (tx, note) => {
          await tx.query(`INSERT INTO ${WRITES} (note) VALUES ($1)`, [note]);
        },
        committedWrites: async () =>
          (
            (await dataSource.query(`SELECT note FROM ${WRITES} ORDER BY id`)) as { note: string }[]
          ).map((r) => r.note),
      };
    },
  };
}

describeInboxStoreConformance(
  'PostgreSQL',
  postgresHarness(async () => {
    const database = await createTestDatabase();
    const dataSource = await createSagaDataSource(
      dataSourceOptions(database.name, { poolSize: 12 }),
    ).initialize();
    return {
      dataSource,
      close: async () => {
        await dataSource.destroy();
        await database.drop();
      },
    };
  }),
);

// PGlite serialises transactions of different connections; the suite never holds one open while
// waiting on another, so every case runs there too.
describeInboxStoreConformance(
  'PGlite (embedded)',
  postgresHarness(async () => {
    const pg = await spawnEmbeddedPostgres({ maxConnections: 12 });
    const dataSource = await createSagaDataSource({
      host: pg.host,
      port: pg.port,
      username: pg.username,
      password: pg.password,
      database: pg.database,
      poolSize: 10,
    }).initialize();
    await runMigrationsLocked(dataSource);
    return {
      dataSource,
      close: async () => {
        await dataSource.destroy();
        await pg.stop();
      },
    };
  }),
);
