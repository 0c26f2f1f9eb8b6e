/**
 * `autoStart: false` starts no background work (issue 12): on real PostgreSQL, with optimistic
 * sending enabled, a committed outbox row is neither relayed nor sent optimistically, no retention
 * runs (outbox or inbox) and no `@IdempotentHandler` is subscribed, until each part is started the
 * documented way (docs/outbox.md, "`autoStart: false`"): the optimistic sender's
 * `setRollout({ enabled: true })`, `IdempotentHandlerExplorer.subscribeAll()`, `relay.start()`,
 * `retention.start()`.
 */
import 'reflect-metadata';
import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { DataSource } from 'typeorm';
import { createTestDatabase, sagePostgresOptions, type TestDatabase } from '@test/support/pg';
import {
  IdempotentHandler,
  IdempotentHandlerExplorer,
  InboxService,
  InMemoryBroker,
  OutboxRelayService,
  OutboxRepository,
  SagaOutboxModule,
  SageDatabase,
  type DeliveredMessage,
} from '../index';
import { waitUntil } from '../testing/async';
import { InboxMaintenance } from './inbox/inbox.providers';

const DESTINATION = 'auto-start.orders';
/** Relay poll and retention intervals: a started loop would tick many times in WINDOW_MS. */
const TICK_MS = 20;
const WINDOW_MS = 15 * TICK_MS;

@Injectable()
class OrdersConsumer {
  readonly seen: string[] = [];

  @IdempotentHandler(DESTINATION, { consumer: 'auto-start.orders-consumer' })
  onOrder(message: DeliveredMessage): Promise<void> {
    this.seen.push(message.id);
    return Promise.resolve();
  }
}

let db: TestDatabase;
let app: INestApplicationContext;
const broker = new InMemoryBroker();

beforeAll(async () => {
  db = await createTestDatabase();
  @Module({
    imports: [
      SagaOutboxModule.forRoot({
        postgres: { ...sagePostgresOptions(db.connection), poolSize: 4 },
        broker,
        autoStart: false,
        outbox: {
          relay: { pollIntervalMs: TICK_MS },
          optimistic: { enabled: true },
          // Everything sent is old enough: a running retention would delete it at once.
          retention: { retentionMs: 0, intervalMs: TICK_MS },
        },
        inbox: { retention: { retentionMs: 0, intervalMs: TICK_MS } },
      }),
    ],
    providers: [OrdersConsumer],
  })
  class AppModule {}
  app = await NestFactory.createApplicationContext(AppModule, { logger: false });
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
});

async function publish(type: string, key: string): Promise<string> {
  const ds: DataSource = app.get(SageDatabase).dataSource;
  const [id] = await ds.transaction((manager) =>
    app
      .get(OutboxRepository)
      .publish({ destination: DESTINATION, type, key, payload: { type } }, { manager }),
  );
  return id!;
}

async function outboxStatus(id: string): Promise<string | undefined> {
  const rows = (await app
    .get(SageDatabase)
    .dataSource.query(`SELECT status FROM sage.outbox_message WHERE id = $1`, [id])) as {
    status: string;
  }[];
  return rows[0]?.status;
}

const published = (id: string) => broker.published.some((m) => m.id === id);
const window = () => new Promise((resolve) => setTimeout(resolve, WINDOW_MS));

it('autoStart: false runs no relay, optimistic send, retention or subscription until each is started by hand', async () => {
  const outbox = app.get(OutboxRelayService);
  const relay = outbox.relay!;
  const retention = outbox.retention!;
  const optimistic = outbox.optimistic!;
  const explorer = app.get(IdempotentHandlerExplorer);
  const consumer = app.get(OrdersConsumer);
  const inbox = app.get(InboxService);
  // A processed inbox row: a running inbox retention (retentionMs 0) would delete it.
  await inbox.handle('auto-start.manual', 'inbox-row-1', () => Promise.resolve());

  // 1. Nothing starts: a committed row stays pending, the broker sees nothing.
  const first = await publish('first', 'order-1');
  await window();
  expect(broker.published).toEqual([]);
  expect(await outboxStatus(first)).toBe('pending');
  expect(optimistic.enabled).toBe(false);
  expect(optimistic.stats).toMatchObject({ selected: 0, attempts: 0, sent: 0 });
  expect(relay.stats.loop.ticks).toBe(0);
  expect(retention.stats.loop.ticks).toBe(0);
  expect(app.get(InboxMaintenance).retention).toBeUndefined();
  expect(
    await inbox.get({ consumer: 'auto-start.manual', messageId: 'inbox-row-1' }),
  ).toMatchObject({ status: 'processed' });
  expect(explorer.subscribed).toBe(0);

  // 2. Optimistic sending, switched on by hand: the next commit is sent at once, by it alone
  // (the relay is still stopped, so the first row stays pending). Another key: a row waiting
  // behind a pending one of its key is left to the relay (per-key order).
  optimistic.setRollout({ enabled: true });
  const second = await publish('second', 'order-2');
  await broker.waitFor(() => published(second), 5_000);
  // Recorded as sent just after the broker's ack.
  await waitUntil(() => optimistic.stats.sent === 1, 'the optimistic sender recorded it as sent');
  expect(published(first)).toBe(false);
  expect(await outboxStatus(first)).toBe('pending');

  // 3. Retention still stopped: the sent row, older than retentionMs 0, stays.
  await window();
  expect(await outboxStatus(second)).toBe('sent');
  expect(retention.stats.loop.ticks).toBe(0);

  // 4. Subscriptions and the relay, started by hand: the first row is delivered and handled.
  await explorer.subscribeAll();
  expect(explorer.subscribed).toBe(1);
  relay.start();
  await broker.waitFor(() => published(first), 5_000);
  await waitUntil(() => consumer.seen.includes(first), 'the @IdempotentHandler got the first row');
  expect(consumer.seen).toEqual([first]); // the second was sent before anyone subscribed

  // 5. Retention, started by hand, deletes the sent rows.
  retention.start();
  await waitUntil(
    async () =>
      (await outboxStatus(first)) === undefined && (await outboxStatus(second)) === undefined,
    'outbox retention deleted both sent rows',
  );
});
