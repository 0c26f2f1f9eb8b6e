import pg from 'pg';
import type { DataSource } from 'typeorm';
import { createSagaDataSource, runMigrationsLocked } from '@sage/saga-outbox';

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

/** Sage's DataSource on the bench database, as an app creates it (not yet initialised). */
export function sagaDataSource(
  target: PgTarget,
  poolSize: number,
  applicationName: string,
  schema?: string,
): DataSource {
  return createSagaDataSource({
    host: target.host,
    port: target.port,
    username: target.user,
    password: target.password,
    database: target.database,
    poolSize,
    applicationName,
    ...(schema === undefined ? {} : { schema }),
  });
}

/** `count` initialised DataSources (one per relay / worker), opened one after the other. */
export async function openSagaDataSources(
  target: PgTarget,
  count: number,
  poolSize: number,
  applicationName: string,
): Promise<DataSource[]> {
  const dataSources: DataSource[] = [];
  for (let i = 0; i < count; i++) {
    const ds = sagaDataSource(target, poolSize, applicationName);
    await ds.initialize();
    dataSources.push(ds);
  }
  return dataSources;
}

/**
 * The producer's DataSource and the relay's own one (as a standalone relay deployment has):
 * producer load never delays a claim waiting for a pool slot. Initialised producer first.
 */
export async function openProducerAndRelayDataSources(
  target: PgTarget,
  applicationName: string,
  producerPoolSize: number,
  relayPoolSize: number,
): Promise<{ producerDs: DataSource; relayDs: DataSource }> {
  const producerDs = sagaDataSource(target, producerPoolSize, applicationName);
  const relayDs = sagaDataSource(target, relayPoolSize, applicationName);
  await producerDs.initialize();
  await relayDs.initialize();
  return { producerDs, relayDs };
}

/** Runs `work` in one transaction on a pooled client: BEGIN, COMMIT (ROLLBACK on error), release. */
export async function inTransaction(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<void>,
): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    try {
      await work(client);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  } finally {
    client.release();
  }
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
    // A replication slot left in the bench database by a run that died (WAL relay, peer) retains
    // WAL and makes DROP DATABASE fail: drop them first.
    await admin.query(
      `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
       WHERE database = $1 AND NOT active`,
      [target.database],
    );
    await admin.query(`DROP DATABASE IF EXISTS ${target.database} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${target.database}`);
  } finally {
    await admin.end();
  }

  const dataSource = sagaDataSource(target, 1, 'sage-bench-migrate');
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
