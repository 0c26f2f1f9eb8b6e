import type { DataSource, EntityManager } from 'typeorm';
import {
  OptimisticSender,
  OutboxPublisher,
  PostgresOutboxStore,
  TypeOrmCommitHooks,
  withOptimisticSend,
  type Broker,
} from '@sage/saga-outbox';
import { sageCommit } from './outbox-load';

/**
 * The 'optimistic' variant of outbox-commit-to-ack: OutboxPublisher writing through
 * `withOptimisticSend(store, TypeOrmCommitHooks, OptimisticSender)` — what
 * `SagaOutboxModule.forRoot({ outbox: { optimistic: { enabled: true } } })` wires — so the
 * producing process claims and publishes its own rows right after COMMIT (library defaults:
 * 100 %, timeout 500 ms, maxConcurrent 32), with the relay (started by the scenario, same broker
 * adapter) as the fallback.
 *
 * `broker` is the scenario's ack-stamping wrapper of the shared Sage adapter, so an optimistic
 * ack is timed exactly like a relay ack. `commit(n, destination)` is `sageCommit` (one business
 * insert + `publisher.publish(...)` in `dataSource.transaction`); `stop()` stops the publisher
 * (in-flight attempts hand their rows back) and returns its counters for the results file.
 */
export interface OptimisticWiring {
  create(deps: { dataSource: DataSource; broker: Broker }): {
    commit(n: number, destination: string): Promise<string[]>;
    stop(): Promise<Record<string, number>>;
  };
}

export function optimisticVariant(): OptimisticWiring | { unavailable: string } {
  return {
    create({ dataSource, broker }) {
      const store = new PostgresOutboxStore(dataSource);
      const optimistic = new OptimisticSender({ store, broker, enabled: true, percent: 100 });
      const hooks = new TypeOrmCommitHooks();
      const publisher = new OutboxPublisher<EntityManager>({
        writer: withOptimisticSend(store, hooks, optimistic),
      });
      const commits = new Map<string, ReturnType<typeof sageCommit>>();
      return {
        commit(n, destination) {
          let commit = commits.get(destination);
          if (!commit)
            commits.set(destination, (commit = sageCommit(dataSource, publisher, 1, destination)));
          return commit(n);
        },
        async stop() {
          await optimistic.stop();
          hooks.detachAll();
          const s = optimistic.stats;
          return {
            optimisticSelected: s.selected,
            optimisticSent: s.sent,
            optimisticReleased: s.released,
            optimisticLeftToRelay: s.leftToRelay,
            optimisticSkippedSaturated: s.skippedSaturated,
            optimisticStaleMarks: s.staleMarks,
            optimisticErrors: s.errors,
          };
        },
      };
    },
  };
}
