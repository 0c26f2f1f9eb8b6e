/**
 * One saga-worker process: its own DataSource and SagaEngine with the scaling saga registered.
 * `go` starts the engine's background loops: the recovery loop claims sagas waiting for a worker
 * (FOR UPDATE SKIP LOCKED, as it claims the sagas of a worker that died) and runs them, up to
 * `maxConcurrentSagas` at once; each saga that ends frees a slot and asks for the next one
 * (`resumePending`). `stop` shuts the engine down and answers with the sagas it completed.
 */
import { PostgresSagaStore, SagaEngine } from '@sage/saga-outbox';
import type { EntityManager } from 'typeorm';
import { sagaDataSource } from '../../harness/database';
import { scalingSaga } from '../scaling-saga';
import {
  emit,
  runWorker,
  serveCommands,
  stderrSageLogger,
  workerConfig,
  type ScalingWorkerConfig,
} from './worker-protocol';

/** Recovery rounds this often at most while idle: short, so a round's start is not a poll away. */
const RECOVERY_INTERVAL_MS = 100;

runWorker(async () => {
  const config = workerConfig<ScalingWorkerConfig>();
  const logger = stderrSageLogger(config.name);
  const ds = sagaDataSource(config.target, config.poolSize, config.applicationName);
  await ds.initialize();
  const store = new PostgresSagaStore(ds);
  let engine: SagaEngine<EntityManager> | undefined;
  let completed = 0;
  let otherEnds = 0;
  serveCommands({
    async prepare() {
      completed = otherEnds = 0;
      engine = new SagaEngine<EntityManager>({
        store,
        logger,
        ownerId: config.name,
        recoveryIntervalMs: RECOVERY_INTERVAL_MS,
      });
      engine.register(scalingSaga());
      const running = engine;
      running.onEvent((event) => {
        if (event.type === 'saga.completed') completed++;
        else if (event.type === 'saga.compensated' || event.type === 'saga.failed') otherEnds++;
        else return;
        running.resumePending();
      });
      await ds.query('SELECT 1');
    },
    async go() {
      if (!engine) throw new Error('go before prepare');
      await engine.startBackground();
    },
    async stop() {
      await engine?.shutdown();
      engine = undefined;
      return { completed, otherEnds };
    },
    async exit() {
      await ds.destroy();
    },
  });
  emit('ready');
});
