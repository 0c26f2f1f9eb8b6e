/**
 * A relay in its own process, for chaos tests (kill -9, SIGSTOP). Configured by environment:
 *   PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE   the test database
 *   RELAY_ID                                     publisher name in chaos_published
 *   LEASE_MS BATCH_SIZE PUBLISH_BATCH_SIZE PIPELINE_DEPTH  relay tuning
 *   PUBLISH_DELAY_MS                             sleep after each broker write (widens the kill window)
 * Prints one JSON line per event on stdout: {"event":"ready"}, {"event":"published","ids":[...]},
 * {"event":"batch", ...OutboxBatchReport}. SIGTERM → graceful stop, then exit.
 */
import { Pool } from 'pg';
import { OutboxRelay } from '../../../libs/saga-outbox/src/core/outbox/outbox-relay';
import { createSagaDataSource } from '../../../libs/saga-outbox/src/persistence/postgres/data-source';
import { PostgresOutboxStore } from '../../../libs/saga-outbox/src/persistence/postgres/outbox-postgres-store';
import { TableBroker } from './outbox-table-broker';

const env = (name: string, fallback?: string): string => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is required`);
  return v;
};
const emit = (event: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(event)}\n`);
};

async function main(): Promise<void> {
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
    poolSize: 4,
  });
  await dataSource.initialize();
  const pool = new Pool({ ...connection, max: 2 });
  const delay = Number(env('PUBLISH_DELAY_MS', '0'));
  const broker = new TableBroker(pool, env('RELAY_ID'), async (batch) => {
    emit({ event: 'published', ids: batch.map((m) => m.id) });
    if (delay) await new Promise((resolve) => setTimeout(resolve, delay));
  });
  const relay = new OutboxRelay({
    store: new PostgresOutboxStore(dataSource),
    broker,
    relayId: env('RELAY_ID'),
    leaseMs: Number(env('LEASE_MS', '30000')),
    batchSize: Number(env('BATCH_SIZE', '100')),
    publishBatchSize: Number(env('PUBLISH_BATCH_SIZE', '20')),
    maxInFlight: 1,
    pipelineDepth: Number(env('PIPELINE_DEPTH', '2')),
    pollIntervalMs: 20,
    reapIntervalMs: 100,
    onBatch: (report) => emit({ event: 'batch', ...report }),
  });
  process.once('SIGTERM', () => {
    void relay
      .stop()
      .then(() => Promise.all([dataSource.destroy(), pool.end()]))
      .then(() => emit({ event: 'stopped' }))
      .finally(() => process.exit(0));
  });
  relay.start();
  emit({ event: 'ready' });
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error instanceof Error ? error.stack : error)}\n`);
  process.exit(1);
});
