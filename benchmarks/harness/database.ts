import pg from 'pg';
import {
  createSagaDataSource,
  runMigrationsLocked,
} from '@sage/saga-outbox/persistence/postgres/data-source';

/** Where the benchmark runs. Defaults match `scripts/services.sh` (PGPORT/PGUSER/PGPASSWORD honoured). */
export interface PgTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  /** An existing database to connect to while (re)creating the bench database. */
  adminDatabase: string;
  /** Dropped and created fresh on every run. */
  database: string;
}

export function pgTargetFromEnv(env: NodeJS.ProcessEnv = process.env): PgTarget {
  return {
    host: env.PGHOST ?? '127.0.0.1',
    port: Number(env.PGPORT ?? 54329),
    user: env.PGUSER ?? 'sage',
    password: env.PGPASSWORD ?? 'sage',
    adminDatabase: env.PGDATABASE ?? 'sage',
    database: env.SAGE_BENCH_DATABASE ?? 'sage_bench',
  };
}

export function clientConfig(
  target: PgTarget,
  applicationName: string,
  database = target.database,
): pg.ClientConfig {
  return {
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password,
    database,
    application_name: applicationName,
  };
}

/** The business table the saga steps write to: one row per step. `bench` keeps it out of Sage's schema. */
export const BUSINESS_TABLE = 'bench.business_row';

/** The write every step (engine and raw alike) does inside its step transaction. */
export const INSERT_BUSINESS_ROW = `INSERT INTO ${BUSINESS_TABLE} (saga_id, step) VALUES ($1, $2)`;

/**
 * Drops and recreates the bench database, runs Sage's migrations on it exactly as an app would
 * (createSagaDataSource + runMigrationsLocked), and creates the business table.
 */
export async function prepareDatabase(target: PgTarget): Promise<void> {
  if (!/^[a-z_][a-z0-9_]*$/.test(target.database)) {
    throw new Error(
      `bench database name ${JSON.stringify(target.database)} must be a plain lower-case identifier`,
    );
  }
  const admin = new pg.Client(clientConfig(target, 'sage-bench-admin', target.adminDatabase));
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${target.database} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${target.database}`);
  } finally {
    await admin.end();
  }

  const dataSource = createSagaDataSource({
    host: target.host,
    port: target.port,
    username: target.user,
    password: target.password,
    database: target.database,
    poolSize: 1,
    applicationName: 'sage-bench-migrate',
  });
  await dataSource.initialize();
  try {
    await runMigrationsLocked(dataSource);
    await dataSource.query(`CREATE SCHEMA bench`);
    await dataSource.query(
      `CREATE TABLE ${BUSINESS_TABLE} (
         id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
         saga_id    uuid        NOT NULL,
         step       text        NOT NULL,
         created_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
  } finally {
    await dataSource.destroy();
  }
}

/**
 * Same starting state for every point: empty tables, then a CHECKPOINT so no point pays for the
 * previous one's dirty pages (the warm-up absorbs the full-page writes that follow a checkpoint).
 */
export async function resetTables(admin: pg.Client): Promise<void> {
  await admin.query(`TRUNCATE sage.saga_step, sage.saga_instance, ${BUSINESS_TABLE}`);
  await admin.query('CHECKPOINT');
}
