import type { TlsOptions } from 'node:tls';
import { DataSource, MigrationExecutor, type Migration } from 'typeorm';
import { sagaOutboxMigrations } from '../../migrations';
import { InvalidOptionsError } from '../../core/errors';
import type { PostgresPassword } from './postgres-ssl';
import { LOCK_MIGRATIONS_FOR_SESSION, UNLOCK_MIGRATIONS_FOR_SESSION } from './migration-lock.sql';

export interface SagaDataSourceOptions {
  /** `postgres://user:password@host:port/db`; overrides the separate fields it sets. */
  url?: string;
  host?: string;
  port?: number;
  username?: string;
  /** A string, or a function called for each new connection (rotation). */
  password?: PostgresPassword;
  database?: string;
  /** node-postgres' `ssl` (see pgSslOptions). */
  ssl?: boolean | TlsOptions;
  /** Schema holding Sage's tables (default `sage`). */
  schema?: string;
  /** Connections in the pool (default 10). On embedded PGlite keep it within the server's `maxConnections`. */
  poolSize?: number;
  /** Shown in pg_stat_activity (default `sage`). */
  applicationName?: string;
  /** TypeORM's table recording executed migrations (TypeORM's default `migrations`). */
  migrationsTableName?: string;
  /**
   * Schema TypeORM keeps its migrations table in, and uses for entities that name none (default
   * `public`). Pinned rather than taken from `current_schema()`, which TypeORM reads once when the
   * DataSource connects: with PostgreSQL's default search_path (`"$user", public`) and a database
   * role named like the Sage schema (role `sage`, schema `sage`), every process started after the
   * first migration would look for the migrations table in the Sage schema, not find it, and run
   * all migrations again.
   */
  defaultSchema?: string;
  connectTimeoutMS?: number;
}

/**
 * A TypeORM DataSource for Sage on PostgreSQL (or PGlite over its socket): no entities,
 * `synchronize` off (the schema is created only by migrations), Sage's migrations registered.
 * Not initialised: call `initialize()`, then `runMigrationsLocked()`.
 */
export function createSagaDataSource(options: SagaDataSourceOptions = {}): DataSource {
  const poolSize = options.poolSize ?? 10;
  if (!Number.isInteger(poolSize) || poolSize < 1) {
    throw new InvalidOptionsError(
      'poolSize',
      `must be an integer >= 1, got ${String(options.poolSize)}`,
    );
  }
  return new DataSource({
    type: 'postgres',
    url: options.url,
    host: options.host,
    port: options.port,
    username: options.username,
    // pg awaits what the function returns; TypeORM's type splits sync and async functions.
    password: options.password as string | (() => Promise<string>) | undefined,
    database: options.database,
    ssl: options.ssl,
    applicationName: options.applicationName ?? 'sage',
    connectTimeoutMS: options.connectTimeoutMS,
    poolSize,
    synchronize: false,
    migrationsRun: false,
    entities: [],
    migrations: sagaOutboxMigrations({ schema: options.schema }),
    migrationsTableName: options.migrationsTableName,
    schema: options.defaultSchema ?? 'public',
  });
}

/**
 * `dataSource.runMigrations()`, serialised across processes. Each Sage migration already takes the
 * migration advisory lock, but TypeORM creates its `migrations` table and decides what is pending
 * before any migration runs; two fresh app instances starting together can collide there (both
 * CREATE the table) or both run a migration and record it twice. Holding the same lock, at session
 * level on the connection that runs everything, makes the whole run one critical section.
 * Runs every migration the DataSource knows (the app's too), with its configured transaction mode.
 */
export async function runMigrationsLocked(dataSource: DataSource): Promise<Migration[]> {
  const runner = dataSource.createQueryRunner();
  try {
    await runner.query(LOCK_MIGRATIONS_FOR_SESSION);
    let migrated: Migration[];
    try {
      const executor = new MigrationExecutor(dataSource, runner);
      executor.transaction = dataSource.options.migrationsTransactionMode ?? 'all';
      migrated = await executor.executePendingMigrations();
    } catch (error) {
      // Report the migration failure, not a secondary unlock failure on a broken connection
      // (closing the connection releases the lock anyway).
      await runner.query(UNLOCK_MIGRATIONS_FOR_SESSION).catch(() => undefined);
      throw error;
    }
    await runner.query(UNLOCK_MIGRATIONS_FOR_SESSION);
    return migrated;
  } finally {
    await runner.release();
  }
}
