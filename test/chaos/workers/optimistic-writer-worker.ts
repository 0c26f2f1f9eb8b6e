/**
 * A producing process with optimistic sending, for chaos tests (kill -9): commits transactions of
 * 1–3 outbox messages in a loop and publishes each right after its commit through the optimistic
 * publisher (no relay in this process: the test runs one, as another process would). Configured by environment:
 *   PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE   the test database
 *   MAX_CONCURRENT LEASE_MS TIMEOUT_MS PUBLISH_BATCH_SIZE  optimistic sender tuning
 *   PUBLISH_DELAY_MS                             sleep after each broker write (widens the kill window)
 *   KEYS                                         ordering keys to spread messages over
 *   TRANSACTIONS                                 how many to commit (then it idles until killed)
 * Prints one JSON line per event on stdout: {"event":"ready"}, {"event":"published","ids":[...]}.
 */
import type { EntityManager } from 'typeorm';
import {
  OptimisticSender,
  withOptimisticSend,
} from '../../../libs/saga-outbox/src/core/outbox/optimistic-sender';
import { OutboxPublisher } from '../../../libs/saga-outbox/src/core/outbox/outbox-publisher';
import { PostgresOutboxStore } from '../../../libs/saga-outbox/src/persistence/postgres/postgres-outbox-store';
import { TypeOrmCommitHooks } from '../../../libs/saga-outbox/src/persistence/postgres/typeorm-commit-hooks';
import {
  emit,
  env,
  openWorkerDatabase,
  reportPublished,
  runWorker,
} from '../../support/chaos-worker';
import { TableBroker } from './outbox-table-broker';

async function main(): Promise<void> {
  const { dataSource, pool } = await openWorkerDatabase({ poolSize: 8, poolMax: 4 });
  const store = new PostgresOutboxStore(dataSource);
  const optimistic = new OptimisticSender({
    store,
    broker: new TableBroker(pool, 'optimistic', reportPublished()),
    enabled: true,
    maxConcurrent: Number(env('MAX_CONCURRENT', '4')),
    leaseMs: Number(env('LEASE_MS', '1000')),
    timeoutMs: Number(env('TIMEOUT_MS', '500')),
    publishBatchSize: Number(env('PUBLISH_BATCH_SIZE', '100')),
  });
  const outbox = new OutboxPublisher<EntityManager>({
    writer: withOptimisticSend(store, new TypeOrmCommitHooks(), optimistic),
  });
  const keys = Number(env('KEYS', '40'));
  emit({ event: 'ready' });
  const transactions = Number(env('TRANSACTIONS', '2000'));
  for (let tx = 0; tx < transactions; tx++) {
    const size = (tx % 3) + 1;
    await dataSource.transaction((manager) =>
      outbox.publish(
        Array.from({ length: size }, (_, i) => ({
          destination: 'chaos',
          type: 'chaos.optimistic',
          key: `k${(tx * 3 + i) % keys}`,
          payload: { tx, i },
        })),
        { manager },
      ),
    );
  }
  emit({ event: 'done' });
  await new Promise(() => undefined); // idle until killed
}

runWorker(main);
