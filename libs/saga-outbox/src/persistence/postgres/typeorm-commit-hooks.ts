import type {
  DataSource,
  EntityManager,
  EntitySubscriberInterface,
  QueryRunner,
  TransactionCommitEvent,
  TransactionRollbackEvent,
} from 'typeorm';
import type { TransactionCommitHooks } from '../../core/ports/outbox-store';

/**
 * Observes the end of TypeORM transactions, keyed by query runner: a TypeORM subscriber
 * (`afterTransactionCommit` / `afterTransactionRollback`) added to the DataSource of the first
 * EntityManager it is asked about. Every way of running a transaction ends in the query runner's
 * `commitTransaction()` / `rollbackTransaction()`, so one hook covers `dataSource.transaction()`,
 * `@nestjs-cls/transactional` (its TypeORM adapter) and hand-driven query runners (saga steps).
 *
 * Nested transactions are savepoints in TypeORM: their commit or rollback fires the same events
 * while the outer transaction is still active, so only the event that leaves the runner with no
 * active transaction counts as the end. A row written inside a savepoint that was rolled back no
 * longer exists; whoever acts on the commit must go by the database, not by the list of ids.
 *
 * A COMMIT that throws fires neither event: the callbacks are not called (a failed COMMIT may or
 * may not have committed; the relay will know). If the same runner later ends another transaction,
 * they run then; otherwise they are dropped with the runner (weakly held).
 */
export class TypeOrmCommitHooks implements TransactionCommitHooks<EntityManager> {
  private readonly attached = new Set<DataSource>();
  private readonly callbacks = new WeakMap<QueryRunner, ((committed: boolean) => void)[]>();
  private readonly subscriber: EntitySubscriberInterface = {
    afterTransactionCommit: (event: TransactionCommitEvent) => this.ended(event.queryRunner, true),
    afterTransactionRollback: (event: TransactionRollbackEvent) =>
      this.ended(event.queryRunner, false),
  };

  onTransactionEnd(tx: EntityManager, callback: (committed: boolean) => void): boolean {
    const runner = tx?.queryRunner;
    const dataSource = tx?.connection as DataSource | undefined;
    if (!runner || !dataSource?.subscribers) return false;
    // Checked on every call rather than once: DataSource.initialize() replaces the array.
    if (!dataSource.subscribers.includes(this.subscriber)) {
      dataSource.subscribers.push(this.subscriber);
      this.attached.add(dataSource);
    }
    const list = this.callbacks.get(runner);
    if (list) list.push(callback);
    else this.callbacks.set(runner, [callback]);
    return true;
  }

  /** Removes the subscriber from every DataSource it was added to (application shutdown). */
  detachAll(): void {
    for (const dataSource of this.attached) {
      const list = dataSource.subscribers;
      const i = list.indexOf(this.subscriber);
      if (i >= 0) list.splice(i, 1);
    }
    this.attached.clear();
  }

  private ended(runner: QueryRunner, committed: boolean): void {
    if (runner.isTransactionActive) return; // a savepoint, not the end
    const list = this.callbacks.get(runner);
    if (!list) return;
    this.callbacks.delete(runner);
    for (const callback of list) {
      try {
        callback(committed);
      } catch {
        // Callbacks must not throw (TransactionCommitHooks); if one does, the commit has happened
        // all the same and must not be reported as failed to the caller.
      }
    }
  }
}
