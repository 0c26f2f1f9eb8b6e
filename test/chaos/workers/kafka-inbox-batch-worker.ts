/**
 * A Kafka consumer through the inbox in batches, in its own process, for the kill -9 test
 * (test/chaos/kafka-inbox-batch.int-spec.ts). Configured by environment:
 *   PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE   the test database (with public.effect)
 *   SAGE_KAFKA_BROKERS                           bootstrap servers (default 127.0.0.1:19092)
 *   TOPIC GROUP                                  what to consume, as which consumer (inbox + group)
 *   BATCH_SIZE                                   the inbox's batchSize
 *   HANDLER_DELAY_MS                             sleep in each handler's transaction (widens the kill window)
 * The handler writes one `public.effect` row per message in its inbox transaction. Prints JSON
 * lines on stdout: {"event":"ready"}.
 */
import { KafkaBroker } from '../../../libs/saga-outbox/src/brokers/kafka/kafka-broker';
import { InboxProcessor } from '../../../libs/saga-outbox/src/core/inbox/inbox-processor';
import { InboxSubscriptions } from '../../../libs/saga-outbox/src/core/inbox/inbox-subscription';
import { PostgresInboxStore } from '../../../libs/saga-outbox/src/persistence/postgres/postgres-inbox-store';
import { emit, env, openWorkerDatabase, runWorker } from '../../support/chaos-worker';

async function main(): Promise<void> {
  const { dataSource, pool } = await openWorkerDatabase({ poolSize: 6, poolMax: 1 });
  const consumer = env('GROUP');
  const delayMs = Number(env('HANDLER_DELAY_MS', '0'));
  const inbox = new InboxProcessor({
    store: new PostgresInboxStore(dataSource),
    batchSize: Number(env('BATCH_SIZE', '16')),
  });
  const broker = new KafkaBroker({
    brokers: env('SAGE_KAFKA_BROKERS', '127.0.0.1:19092').split(','),
    clientId: `inbox-batch-worker-${process.pid}`,
    // The killed member's partitions return to the group after this long.
    consumer: { sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, maxWaitTimeMs: 100 },
  });
  const subscriptions = new InboxSubscriptions({ inbox, batches: true });
  await subscriptions.subscribe(broker, [
    {
      destination: env('TOPIC'),
      consumer,
      handle: async (message, { tx, messageId }) => {
        await tx.query(
          'INSERT INTO public.effect (consumer, message_id, key, seq) VALUES ($1, $2, $3, $4)',
          [consumer, messageId, message.key, (message.payload as { seq: number }).seq],
        );
        if (delayMs) await tx.query('SELECT pg_sleep($1)', [delayMs / 1000]);
      },
      deliveryError: { message: 'batch worker could not take a message', event: 'worker.error' },
    },
  ]);
  process.once('SIGTERM', () => {
    void subscriptions
      .unsubscribeAll()
      .then(() => broker.close())
      .then(() => Promise.all([dataSource.destroy(), pool.end()]))
      .finally(() => process.exit(0));
  });
  emit({ event: 'ready' });
}

runWorker(main);
