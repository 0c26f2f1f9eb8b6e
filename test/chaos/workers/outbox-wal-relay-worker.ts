/**
 * A WAL-streaming relay in its own process, for chaos tests (kill -9). Configured by environment:
 *   PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE   the test database (wal_level = logical)
 *   RELAY_ID SLOT                                publisher name in chaos_published, slot name
 *   PUBLISH_BATCH_SIZE MAX_IN_FLIGHT MAX_WINDOW  relay tuning
 *   PUBLISH_DELAY_MS                             sleep after each broker write (widens the kill window)
 * Prints one JSON line per event on stdout: {"event":"ready"}, {"event":"leader"},
 * {"event":"published","ids":[...]}. SIGTERM → graceful stop, then exit.
 */
import { WalOutboxRelay } from '../../../libs/saga-outbox/src/core/outbox/wal-outbox-relay';
import {
  PostgresWalSource,
  replicationConnectionOf,
} from '../../../libs/saga-outbox/src/persistence/postgres/postgres-wal-source';
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
  const relay = new WalOutboxRelay({
    source: new PostgresWalSource(dataSource, replicationConnectionOf(dataSource), {
      slot: env('SLOT'),
    }),
    broker,
    relayId: env('RELAY_ID'),
    publishBatchSize: Number(env('PUBLISH_BATCH_SIZE', '20')),
    maxInFlight: Number(env('MAX_IN_FLIGHT', '2')),
    maxWindow: Number(env('MAX_WINDOW', '10000')),
    standbyRetryMs: 50,
  });
  const leader = setInterval(() => {
    if (relay.stats.leader) {
      emit({ event: 'leader' });
      clearInterval(leader);
    }
  }, 10);
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
