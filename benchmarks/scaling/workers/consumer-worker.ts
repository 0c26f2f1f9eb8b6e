/**
 * One consumer process with the inbox, as a service instance consumes: its own DataSource and
 * Broker (`brokerFromUrl`), every delivery handled through InboxProcessor, the handler's one write
 * (a row in the effect table) in the inbox transaction. `prepare {brokerUrl, destination, group}`
 * connects; `go` subscribes (a member of the consumer group / a reader of the durable consumer /
 * of the queue); `stop` unsubscribes and answers with the inbox's counters.
 */
import {
  brokerFromUrl,
  InboxProcessor,
  PostgresInboxStore,
  type Broker,
  type Subscription,
} from '@sage/saga-outbox';
import type { EntityManager } from 'typeorm';
import { sagaDataSource } from '../../harness/database';
import { INSERT_EFFECT } from '../scaling-tables';
import {
  emit,
  runWorker,
  serveCommands,
  stderrSageLogger,
  workerConfig,
  type ScalingWorkerConfig,
} from './worker-protocol';

runWorker(async () => {
  const config = workerConfig<ScalingWorkerConfig>();
  const logger = stderrSageLogger(config.name);
  const ds = sagaDataSource(config.target, config.poolSize, config.applicationName);
  await ds.initialize();
  let inbox = new InboxProcessor<EntityManager>({ store: new PostgresInboxStore(ds), logger });
  let broker: Broker | undefined;
  let subscription: Subscription | undefined;
  let round: { destination: string; group: string } | undefined;
  serveCommands({
    async prepare(command) {
      broker = brokerFromUrl(String(command.brokerUrl), 'brokerUrl', logger);
      const health = await (broker.probe ? broker.probe(10_000) : broker.health());
      if (!health.up) throw new Error(`broker down: ${health.detail ?? '?'}`);
      round = { destination: String(command.destination), group: String(command.group) };
      inbox = new InboxProcessor<EntityManager>({ store: new PostgresInboxStore(ds), logger });
      await ds.query('SELECT 1');
    },
    async go() {
      if (!broker || !round) throw new Error('go before prepare');
      const { group } = round;
      subscription = await broker.subscribe(
        round.destination,
        async (message) => {
          // Rejects (InboxHandlerFailedError) when the broker should redeliver.
          await inbox.process({ consumer: group, messageId: message.id }, ({ tx }) =>
            tx.query(INSERT_EFFECT, [message.id, config.name]),
          );
        },
        { group },
      );
    },
    async stop() {
      await subscription?.unsubscribe();
      await broker?.close();
      subscription = broker = undefined;
      return { ...inbox.stats };
    },
    async exit() {
      await ds.destroy();
    },
  });
  emit('ready');
});
