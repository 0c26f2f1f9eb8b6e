/**
 * Bootstrap shared by the chaos tests' worker processes (test/chaos/workers): configuration from
 * the environment, JSON-line events on stdout, and the test database (PGHOST PGPORT PGUSER
 * PGPASSWORD PGDATABASE, the last required) opened as a Sage data source plus a raw `pg` pool.
 */
import { Pool } from 'pg';
import type { DataSource } from 'typeorm';
import type { BrokerMessage } from '../../libs/saga-outbox/src/core/ports/broker';
import { createSagaDataSource } from '../../libs/saga-outbox/src/persistence/postgres/data-source';

/** The environment variable `name`, else `fallback`; neither → throws. */
export function env(name: string, fallback?: string): string {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is required`);
  return v;
}

/** One JSON line on stdout. */
export function emit(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

/** The test database as a Sage data source (initialised) and a `pg` pool. */
export async function openWorkerDatabase(sizes: {
  poolSize: number;
  poolMax: number;
}): Promise<{ dataSource: DataSource; pool: Pool }> {
  const connection = {
    host: env('PGHOST', '127.0.0.1'),
    port: Number(env('PGPORT', '54329')),
    user: env('PGUSER', 'sage'),
    password: env('PGPASSWORD', 'sage'),
    database: env('PGDATABASE'),
  };
  const dataSource = createSagaDataSource({
    ...connection,
    username: connection.user,
    poolSize: sizes.poolSize,
  });
  await dataSource.initialize();
  const pool = new Pool({ ...connection, max: sizes.poolMax });
  return { dataSource, pool };
}

/**
 * A TableBroker `afterWrite`: emits `{"event":"published","ids":[...]}`, then sleeps
 * PUBLISH_DELAY_MS (widens the kill window).
 */
export function reportPublished(): (batch: readonly BrokerMessage[]) => Promise<void> {
  const delay = Number(env('PUBLISH_DELAY_MS', '0'));
  return async (batch) => {
    emit({ event: 'published', ids: batch.map((m) => m.id) });
    if (delay) await new Promise((resolve) => setTimeout(resolve, delay));
  };
}

/** Runs the worker's `main`; a failure → stack on stderr, exit code 1. */
export function runWorker(main: () => Promise<void>): void {
  main().catch((error: unknown) => {
    process.stderr.write(`${String(error instanceof Error ? error.stack : error)}\n`);
    process.exit(1);
  });
}
