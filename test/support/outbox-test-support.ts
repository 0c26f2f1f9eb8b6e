/**
 * Shared setup for the outbox integration and chaos tests: a DataSource on a test database, the
 * store and a publisher (waits: waitUntil from @sage/saga-outbox/testing).
 */
import type { DataSource, EntityManager } from 'typeorm';
import {
  createSagaDataSource,
  OutboxPublisher,
  PostgresOutboxStore,
  type OutboxMessageInput,
} from '@sage/saga-outbox';

export interface OutboxTestContext {
  dataSource: DataSource;
  store: PostgresOutboxStore;
  publisher: OutboxPublisher<EntityManager>;
  /** Publishes `messages` in one committed transaction; returns their ids. */
  commit(messages: OutboxMessageInput | OutboxMessageInput[]): Promise<string[]>;
  close(): Promise<void>;
}

export async function openOutboxTestContext(
  connection: {
    host: string;
    port: number;
    user: string;
    password: string;
    database: string;
  },
  poolSize = 10,
): Promise<OutboxTestContext> {
  const dataSource = createSagaDataSource({
    host: connection.host,
    port: connection.port,
    username: connection.user,
    password: connection.password,
    database: connection.database,
    poolSize,
  });
  await dataSource.initialize();
  const store = new PostgresOutboxStore(dataSource);
  const publisher = new OutboxPublisher<EntityManager>({ writer: store });
  return {
    dataSource,
    store,
    publisher,
    commit: (messages) =>
      dataSource.transaction((manager) => publisher.publish(messages, { manager })),
    close: async () => {
      if (dataSource.isInitialized) await dataSource.destroy();
    },
  };
}
