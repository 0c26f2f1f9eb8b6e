/**
 * A migrated DataSource on a fresh database, for suites that run the same cases on PostgreSQL and
 * on PGlite (the store conformance suites): one opener per backend, closed with `close()`.
 */
import type { DataSource } from 'typeorm';
import { createSagaDataSource, runMigrationsLocked } from '@sage/saga-outbox';
import { spawnEmbeddedPostgres } from './embedded-postgres-process';
import { createTestDatabase, dataSourceOptions } from './pg';

export interface OpenedDatabase {
  dataSource: DataSource;
  close(): Promise<void>;
}

/** A database cloned from the migrated template on the test server. */
export async function openPostgresDatabase(poolSize: number): Promise<OpenedDatabase> {
  const database = await createTestDatabase();
  const dataSource = await createSagaDataSource(
    dataSourceOptions(database.name, { poolSize }),
  ).initialize();
  return {
    dataSource,
    close: async () => {
      await dataSource.destroy();
      await database.drop();
    },
  };
}

/** PGlite in a child process, with Sage's migrations run. */
export async function openEmbeddedDatabase(options: {
  maxConnections: number;
  poolSize: number;
}): Promise<OpenedDatabase> {
  const pg = await spawnEmbeddedPostgres({ maxConnections: options.maxConnections });
  const dataSource = await createSagaDataSource({
    host: pg.host,
    port: pg.port,
    username: pg.username,
    password: pg.password,
    database: pg.database,
    poolSize: options.poolSize,
  }).initialize();
  await runMigrationsLocked(dataSource);
  return {
    dataSource,
    close: async () => {
      await dataSource.destroy();
      await pg.stop();
    },
  };
}
