/**
 * The outbox store conformance suite on PostgreSQL (a database of its own, cloned from the migrated
 * template) and on embedded PGlite (over its socket, the way apps use it), the same SQL on both.
 */
import type { EntityManager } from 'typeorm';
import {
  openEmbeddedDatabase,
  openPostgresDatabase,
  type OpenedDatabase,
} from '@test/support/sage-databases';
import {
  describeOutboxStoreConformance,
  type OutboxStoreConformanceHarness,
} from '../../testing/outbox-store-conformance';
import { PostgresOutboxStore } from './postgres-outbox-store';

/**
 * Each test gets a new PostgresOutboxStore on an emptied outbox table. Committed rows are
 * claimable at once (no `untilCommittedClaimable`): transactions other test files keep open on the
 * shared server must not hold them back.
 */
function postgresHarness(
  open: () => Promise<OpenedDatabase>,
  capabilities: Pick<OutboxStoreConformanceHarness, 'concurrentTransactions' | 'notifications'>,
): OutboxStoreConformanceHarness<EntityManager> {
  let db: OpenedDatabase | undefined;
  return {
    ...capabilities,
    setup: async () => {
      db = await open();
    },
    teardown: async () => {
      await db?.close();
    },
    create: async () => {
      const dataSource = db!.dataSource;
      const store = new PostgresOutboxStore(dataSource);
      await dataSource.query(`TRUNCATE ${store.tables.outboxMessage}`);
      return {
        store,
        writer: store,
        transaction: (body) => dataSource.transaction(body),
        notATransaction: dataSource.manager,
      };
    },
  };
}

describeOutboxStoreConformance(
  'PostgreSQL',
  postgresHarness(() => openPostgresDatabase(10), {
    concurrentTransactions: true,
    notifications: true,
  }),
);

// PGlite serialises transactions of different connections and delivers no NOTIFY across its
// socket multiplexer (see embedded-postgres.ts): the two capabilities the suite asks about.
describeOutboxStoreConformance(
  'PGlite (embedded)',
  postgresHarness(() => openEmbeddedDatabase({ maxConnections: 12, poolSize: 10 }), {
    concurrentTransactions: false,
    notifications: false,
  }),
);
