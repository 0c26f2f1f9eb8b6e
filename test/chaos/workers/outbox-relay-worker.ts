/**
 * A relay in its own process, for chaos tests (kill -9, SIGSTOP). Configured by environment:
 *   PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE   the test database
 *   RELAY_ID                                     publisher name in chaos_published
 *   LEASE_MS BATCH_SIZE PUBLISH_BATCH_SIZE PIPELINE_DEPTH  relay tuning
 *   PUBLISH_DELAY_MS                             sleep after each broker write (widens the kill window)
 * Prints one JSON line per event on stdout: {"event":"ready"}, {"event":"published","ids":[...]},
 * {"event":"batch", ...OutboxBatchReport}. SIGTERM → graceful stop, then exit.
 */
import { OutboxRelay } from '../../../libs/saga-outbox/src/core/outbox/outbox-relay';
import { PostgresOutboxStore } from '../../../libs/saga-outbox/src/persistence/postgres/postgres-outbox-store';
import {
  emit,
  env,
  openWorkerDatabase,
  reportPublished,
  runWorker,
} from '../../support/chaos-worker';
import { TableBroker } from './outbox-table-broker';

async function main(): Promise<void> {
  const { dataSource, pool } = await openWorkerDatabase({ poolSize: 4, poolMax: 2 });
  const broker = new TableBroker(pool, env('RELAY_ID'), reportPublished());
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

runWorker(main);
