/**
 * PostgreSQL for integration tests, isolated by construction: a template database is migrated once
 * (per migration change) and every test file gets its own clone, dropped when the file is done.
 *
 * Connection settings come from PGHOST / PGPORT / PGUSER / PGPASSWORD / PGDATABASE, defaulting to
 * the server `scripts/services.sh start` runs (127.0.0.1:54329, sage/sage, database sage).
 */
import { createHash, randomBytes } from 'node:crypto';
import { Client } from 'pg';
import type { QueryRunner } from 'typeorm';
import { sagaOutboxMigrations } from '../../libs/saga-outbox/src/migrations';
import {
  createSagaDataSource,
  runMigrationsLocked,
  type SagaDataSourceOptions,
} from '../../libs/saga-outbox/src/persistence/postgres/data-source';

export interface PgConnection {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export const TEMPLATE_DATABASE = 'sage_template';

/** Serialises template (re)creation and cloning across jest workers ("sagetmpl" as an int8). */
const TEMPLATE_LOCK_KEY = '8314040072545333356';

/** The server from the environment; `database` defaults to PGDATABASE (the admin database). */
export function pgConnection(database?: string): PgConnection {
  return {
    host: process.env.PGHOST ?? '127.0.0.1',
    port: Number(process.env.PGPORT ?? 54329),
    user: process.env.PGUSER ?? 'sage',
    password: process.env.PGPASSWORD ?? 'sage',
    database: database ?? process.env.PGDATABASE ?? 'sage',
  };
}

/** Options for `createSagaDataSource` pointing at `database`. */
export function dataSourceOptions(
  database: string,
  extra: Partial<SagaDataSourceOptions> = {},
): SagaDataSourceOptions {
  const c = pgConnection(database);
  return { host: c.host, port: c.port, username: c.user, password: c.password, database, ...extra };
}

/** `SagaOutboxModule.forRoot({ postgres })` options for a connection (tuning such as `poolSize` on top). */
export function sagePostgresOptions(c: PgConnection): PgConnection {
  return { host: c.host, port: c.port, user: c.user, password: c.password, database: c.database };
}

export async function withClient<T>(
  database: string | undefined,
  fn: (client: Client) => Promise<T>,
): Promise<T> {
  const client = new Client(pgConnection(database));
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  readonly name: string;
  readonly connection: PgConnection;
  /** Drops the database, disconnecting anything still connected. Idempotent. */
  drop(): Promise<void>;
}

/**
 * A fresh database for one test file: a clone of the migrated template (default), or with
 * `{ migrated: false }` an empty one (for migration tests).
 */
export async function createTestDatabase(
  options: { migrated?: boolean } = {},
): Promise<TestDatabase> {
  const name = `sage_t_${process.pid}_${randomBytes(5).toString('hex')}`;
  await withClient(undefined, async (admin) => {
    if (options.migrated === false) {
      await admin.query(`CREATE DATABASE ${quote(name)} TEMPLATE template0`);
      return;
    }
    await admin.query('SELECT pg_advisory_lock($1)', [TEMPLATE_LOCK_KEY]);
    try {
      await ensureTemplate(admin);
      // Nobody is connected to the template while we hold the lock, as CREATE DATABASE requires.
      await admin.query(`CREATE DATABASE ${quote(name)} TEMPLATE ${quote(TEMPLATE_DATABASE)}`);
    } finally {
      await admin.query('SELECT pg_advisory_unlock($1)', [TEMPLATE_LOCK_KEY]);
    }
  });
  let dropped = false;
  return {
    name,
    connection: pgConnection(name),
    async drop() {
      if (dropped) return;
      dropped = true;
      await withClient(undefined, (admin) =>
        admin.query(`DROP DATABASE IF EXISTS ${quote(name)} WITH (FORCE)`),
      );
    },
  };
}

/**
 * (Re)builds the template when it is missing or was migrated with different migrations: its
 * comment holds a fingerprint of the DDL the migrations run, so editing a migration rebuilds it.
 */
async function ensureTemplate(admin: Client): Promise<void> {
  const fingerprint = await migrationsFingerprint();
  const { rows } = await admin.query<{ comment: string | null }>(
    `SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1`,
    [TEMPLATE_DATABASE],
  );
  if (rows[0]?.comment === fingerprint) return;
  await admin.query(`DROP DATABASE IF EXISTS ${quote(TEMPLATE_DATABASE)} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${quote(TEMPLATE_DATABASE)} TEMPLATE template0`);
  const dataSource = createSagaDataSource(dataSourceOptions(TEMPLATE_DATABASE, { poolSize: 2 }));
  await dataSource.initialize();
  try {
    await runMigrationsLocked(dataSource);
  } finally {
    await dataSource.destroy();
  }
  // Written last: a template whose migration failed half-way has no fingerprint and is rebuilt.
  await admin.query(`COMMENT ON DATABASE ${quote(TEMPLATE_DATABASE)} IS '${fingerprint}'`);
}

/** sha256 over every statement the default-schema migrations' `up` runs, captured without a database. */
async function migrationsFingerprint(): Promise<string> {
  const hash = createHash('sha256');
  for (const Migration of sagaOutboxMigrations()) {
    const migration = new Migration();
    hash.update(migration.name ?? Migration.name);
    const recorder = {
      isTransactionActive: true,
      query: (sql: string) => {
        hash.update(sql);
        return Promise.resolve([]);
      },
    };
    await migration.up(recorder as unknown as QueryRunner);
  }
  return hash.digest('hex');
}

/** Test database names are generated here ([a-z0-9_]); quoting keeps them identifiers regardless. */
function quote(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`;
}
