/**
 * One outbox relay process, as a deployment runs `sage-relay`: its own DataSource and Broker
 * (`brokerFromUrl`), an OutboxRelay with the library's defaults. `prepare {brokerUrl}` connects a
 * broker for the round; `go` starts the relay; `stop` stops it (in-flight publishes settle) and
 * answers with the relay's counters; the broker is closed with it.
 */
import { brokerFromUrl, OutboxRelay, PostgresOutboxStore, type Broker } from '@sage/saga-outbox';
import { sagaDataSource } from '../../harness/database';
import {
  runWorker,
  serveCommands,
  stderrSageLogger,
  workerConfig,
  emit,
  type ScalingWorkerConfig,
} from './worker-protocol';

runWorker(async () => {
  const config = workerConfig<ScalingWorkerConfig>();
  const logger = stderrSageLogger(config.name);
  const ds = sagaDataSource(config.target, config.poolSize, config.applicationName);
  await ds.initialize();
  const store = new PostgresOutboxStore(ds);
  let broker: Broker | undefined;
  let relay: OutboxRelay | undefined;
  serveCommands({
    async prepare(command) {
      broker = brokerFromUrl(String(command.brokerUrl), 'brokerUrl', logger);
      const health = await (broker.probe ? broker.probe(10_000) : broker.health());
      if (!health.up) throw new Error(`broker down: ${health.detail ?? '?'}`);
      await ds.query('SELECT 1');
    },
    // eslint-disable-next-line @typescript-eslint/require-await -- the protocol's handlers are async
    async go() {
      if (!broker) throw new Error('go before prepare');
      relay = new OutboxRelay({
        store,
        broker,
        relayId: config.name,
        logger,
      });
      relay.start();
    },
    async stop() {
      await relay?.stop();
      const stats = relay?.stats;
      await broker?.close();
      relay = broker = undefined;
      return {
        sent: stats?.sent ?? 0,
        retried: stats?.retried ?? 0,
        staleMarks: stats?.staleMarks ?? 0,
        loopErrors: stats?.loop.errors ?? 0,
      };
    },
    async exit() {
      await ds.destroy();
    },
  });
  emit('ready');
});
