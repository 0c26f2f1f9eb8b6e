/**
 * The subject key store conformance suite on PostgreSQL (a database of its own, cloned from the
 * migrated template) and on embedded PGlite (over its socket, as apps use it), with caller-owned
 * transactions the store joins.
 */
import { afterAll, beforeAll, describe } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import {
  openEmbeddedDatabase,
  openPostgresDatabase,
  type OpenedDatabase,
} from '@test/support/sage-databases';
import { subjectKeyStoreConformance } from '../../testing/subject-key-store-conformance';
import { PostgresSubjectKeyStore } from './postgres-subject-key-store';

jest.setTimeout(30_000);

function suiteOn(label: string, open: () => Promise<OpenedDatabase>): void {
  describe(label, () => {
    let db: OpenedDatabase | undefined;
    beforeAll(async () => {
      db = await open();
    });
    afterAll(async () => {
      await db?.close();
    });

    subjectKeyStoreConformance<EntityManager>(label, async () => {
      const dataSource = db!.dataSource;
      await dataSource.query('TRUNCATE sage.subject_key');
      return {
        store: new PostgresSubjectKeyStore(dataSource),
        inTransaction: (fn) => dataSource.transaction((manager) => fn(manager)),
      };
    });
  });
}

suiteOn('PostgreSQL', () => openPostgresDatabase(10));
suiteOn('PGlite (embedded)', () => openEmbeddedDatabase({ maxConnections: 12, poolSize: 10 }));

describe('PostgresSubjectKeyStore on a database of its own (a key store shared by services)', () => {
  let keys: OpenedDatabase | undefined;
  let app: OpenedDatabase | undefined;
  beforeAll(async () => {
    [keys, app] = await Promise.all([openPostgresDatabase(4), openPostgresDatabase(4)]);
  });
  afterAll(async () => {
    await Promise.all([keys?.close(), app?.close()]);
  });

  it("ignores a transaction of the service's own database: the key lands in the key store's", async () => {
    const store = new PostgresSubjectKeyStore(keys!.dataSource);
    const key = {
      id: '0193a9c4-0000-7000-8000-000000000001',
      subjectId: 'customer-shared',
      masterKeyId: 'k1',
      wrapped: randomBytes(60).toString('base64'),
    };
    // A write in the app's transaction (another DataSource) that then rolls back.
    await app!.dataSource
      .transaction(async (manager) => {
        await store.insertIfAbsent(key, manager);
        expect((await store.findBySubject('customer-shared', manager))?.id).toBe(key.id);
        throw new Error('roll back the app transaction');
      })
      .catch((error: Error) => expect(error.message).toBe('roll back the app transaction'));
    // The key is in the key store's database (committed on its own connection), not the app's.
    expect((await store.findBySubject('customer-shared'))?.id).toBe(key.id);
    const appRows = await app!.dataSource.query<{ n: string }[]>(
      'SELECT count(*)::text AS n FROM sage.subject_key',
    );
    expect(appRows[0]!.n).toBe('0');
  });
});
