/**
 * The inbox store conformance suite on PostgreSQL (a database of its own, cloned from the migrated
 * template) and on embedded PGlite (over its socket, the way apps use it), the same SQL on both.
 */
import type { EntityManager } from 'typeorm';
import {
  openEmbeddedDatabase,
  openPostgresDatabase,
  type OpenedDatabase,
} from '@test/support/sage-databases';
import {
  describeInboxStoreConformance,
  type InboxStoreConformanceHarness,
} from '../../testing/inbox-store-conformance';
import { PostgresInboxStore, type PostgresInboxStoreOptions } from './postgres-inbox-store';

/** The handlers' business table: a handler's write is a row here, in the inbox transaction. */
const WRITES = 'public.conformance_write';

/** Each test gets a new PostgresInboxStore on emptied inbox tables and an empty business table. */
function postgresHarness(
  open: () => Promise<OpenedDatabase>,
  options: PostgresInboxStoreOptions = {},
): InboxStoreConformanceHarness<EntityManager> {
  let db: OpenedDatabase | undefined;
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
      const store = new PostgresInboxStore(dataSource, options);
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
  postgresHarness(() => openPostgresDatabase(12)),
);

// The dedup statement as a named prepared statement (`preparedStatements`): the same behaviour.
describeInboxStoreConformance(
  'PostgreSQL, prepared statements',
  postgresHarness(() => openPostgresDatabase(12), { preparedStatements: true }),
);

// PGlite serialises transactions of different connections; the suite never holds one open while
// waiting on another, so every case runs there too.
describeInboxStoreConformance(
  'PGlite (embedded)',
  postgresHarness(() => openEmbeddedDatabase({ maxConnections: 12, poolSize: 10 })),
);
