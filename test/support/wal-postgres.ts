/**
 * A migrated test database on a server with `wal_level = logical`, with the WAL relay's publication:
 * the shared server when it runs with logical decoding (scripts/services.sh configures it), else a
 * private server of this test file (test/support/private-postgres.ts, same configuration). Cleanup
 * drops the file's replication slots first: a slot retains WAL, and a database with a slot cannot
 * be dropped.
 */
import type { DataSource, QueryRunner } from 'typeorm';
import { outboxWalPublicationMigration } from '../../libs/saga-outbox/src/migrations';
import { createSagaDataSource } from '../../libs/saga-outbox/src/persistence/postgres/data-source';
import { createTestDatabase, dataSourceOptions, withClient, type TestDatabase } from './pg';
import { PrivatePostgres } from './private-postgres';

export interface WalTestDatabase extends TestDatabase {
  /** The file's own server, when it runs on one (`privateServer`, or no logical decoding shared). */
  server: PrivatePostgres | undefined;
  /** Drops the database's replication slots, the database, and the private server if any. */
  cleanup(): Promise<void>;
}

/**
 * `privateServer`: on a server of the file's own even when the shared one has logical decoding,
 * for a test that changes server-wide settings.
 */
export async function createWalTestDatabase(
  options: { privateServer?: boolean } = {},
): Promise<WalTestDatabase> {
  const level = options.privateServer
    ? undefined
    : await withClient(undefined, async (c) => {
        const { rows } = await c.query<{ wal_level: string }>('SHOW wal_level');
        return rows[0]?.wal_level;
      });
  let server: PrivatePostgres | undefined;
  const savedPort = process.env.PGPORT;
  if (level !== 'logical') {
    server = await PrivatePostgres.start();
    process.env.PGPORT = String(server.port);
  }
  const db = await createTestDatabase();
  const dataSource = createSagaDataSource(dataSourceOptions(db.name, { poolSize: 1 }));
  await dataSource.initialize();
  try {
    await runWalPublicationMigration(dataSource);
  } finally {
    await dataSource.destroy();
  }
  return {
    ...db,
    server,
    async cleanup() {
      try {
        await dropSlots(db.name);
        await db.drop();
      } finally {
        if (server) {
          await server.destroy();
          if (savedPort === undefined) delete process.env.PGPORT;
          else process.env.PGPORT = savedPort;
        }
      }
    },
  };
}

/** Runs the WAL relay's publication migration (`outboxWalPublicationMigration()`) on `dataSource`. */
export async function runWalPublicationMigration(dataSource: DataSource): Promise<void> {
  const Migration = outboxWalPublicationMigration();
  const runner: QueryRunner = dataSource.createQueryRunner();
  try {
    await new Migration().up(runner);
  } finally {
    await runner.release();
  }
}

/** Drops every slot of `database`, terminating the sessions still streaming from them. */
export async function dropSlots(database: string): Promise<void> {
  await withClient(undefined, async (c) => {
    for (let i = 0; i < 50; i++) {
      const { rows } = await c.query<{ slot_name: string; active_pid: number | null }>(
        'SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = $1',
        [database],
      );
      if (!rows.length) return;
      for (const r of rows) {
        if (r.active_pid !== null) await c.query('SELECT pg_terminate_backend($1)', [r.active_pid]);
        else
          await c
            .query('SELECT pg_drop_replication_slot($1)', [r.slot_name])
            .catch(() => undefined);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`could not drop the replication slots of ${database}`);
  });
}
