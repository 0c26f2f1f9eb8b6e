/**
 * Shared setup for the outbox integration and chaos tests: a DataSource on a test database, the
 * store, a publisher, and helpers that wait on conditions (never fixed sleeps).
 */
import type { DataSource, EntityManager } from 'typeorm';
import { OutboxPublisher } from '../../core/outbox/outbox-publisher';
import type { OutboxMessageInput } from '../../core/outbox/outbox-message';
import { createSagaDataSource } from './data-source';
import { PostgresOutboxStore } from './outbox-postgres-store';

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

/** Polls `check` until it returns true (every `everyMs`), or throws after `timeoutMs` with `what`. */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
  everyMs = 10,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
