import { randomUUID } from 'node:crypto';
import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createTestDatabase, withClient, type TestDatabase } from '@test/support/pg';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { ContractViolationError } from '../../core/contracts/contract-errors';
import {
  DATASCHEMA_HEADER,
  dataschemaOf,
  defineContract,
} from '../../core/contracts/message-contract';
import type { DeliveredMessage } from '../../core/ports/broker';
import { uuidv7 } from '../../core/uuid';
import { waitUntil } from '../../testing/async';
import { IdempotentHandler } from '../inbox/idempotent-handler.decorator';
import { InboxService } from '../inbox/inbox.service';
import { OutboxRepository } from '../outbox/outbox.repository';
import { SagaOutboxModule } from '../saga-outbox.module';
import { SageDatabase } from '../sage-database';

jest.setTimeout(40_000);

const TOPIC = `orders-${randomUUID().slice(0, 8)}`;
const TYPE = 'order.confirmed';
const CONSUMER = 'billing.on-order-confirmed';

const V1 = defineContract({
  type: TYPE,
  version: 1,
  schema: {
    type: 'object',
    required: ['orderId', 'total'],
    properties: { orderId: { type: 'string' }, total: { type: 'number' } },
  },
});
const V2 = defineContract({
  type: TYPE,
  version: 2,
  schema: {
    type: 'object',
    required: ['orderId', 'amount'],
    properties: {
      orderId: { type: 'string' },
      amount: {
        type: 'object',
        required: ['value', 'currency'],
        properties: { value: { type: 'number' }, currency: { type: 'string' } },
      },
    },
  },
  upcast: (previous) => {
    const p = previous as { orderId: string; total: number };
    return { orderId: p.orderId, amount: { value: p.total, currency: 'EUR' } };
  },
});

const seen: DeliveredMessage[] = [];

@Injectable()
class Billing {
  @IdempotentHandler(TOPIC, { consumer: CONSUMER })
  onConfirmed(message: DeliveredMessage): Promise<void> {
    seen.push(message);
    return Promise.resolve();
  }
}

let db: TestDatabase;
let app: INestApplicationContext;
const broker = new InMemoryBroker();

beforeAll(async () => {
  db = await createTestDatabase();
  await withClient(db.name, (c) =>
    c.query('CREATE TABLE public.orders (id text PRIMARY KEY, total numeric NOT NULL)'),
  );
  const c = db.connection;
  @Module({
    imports: [
      SagaOutboxModule.forRoot({
        postgres: { ...c, poolSize: 4 },
        broker,
        outbox: { relay: { pollIntervalMs: 20 }, retention: { enabled: false } },
        contracts: { publishes: [V1, V2], consumes: [V1, V2] },
      }),
    ],
    providers: [Billing],
  })
  class AppModule {}
  app = await NestFactory.createApplicationContext(AppModule, { logger: false });
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

/** Puts a message on the broker directly, as a producer without contracts (or a forger) would. */
async function onBroker(payload: unknown, headers: Record<string, string> = {}): Promise<string> {
  const id = uuidv7();
  const [result] = await broker.publish([
    {
      id,
      destination: TOPIC,
      key: null,
      type: TYPE,
      payload: payload as never,
      headers,
      time: new Date(),
    },
  ]);
  expect(result?.ok).toBe(true);
  return id;
}

const rows = (sql: string): Promise<unknown[]> =>
  withClient(db.name, async (client) => (await client.query<Record<string, unknown>>(sql)).rows);

it('refuses an invalid payload at publish inside the transaction: nothing written, the business write rolled back', async () => {
  const outbox = app.get(OutboxRepository);
  const orderId = `o-${randomUUID()}`;
  const error = await app
    .get(SageDatabase)
    .dataSource.transaction(async (manager) => {
      await manager.query('INSERT INTO public.orders (id, total) VALUES ($1, 10)', [orderId]);
      await outbox.publish(
        { destination: TOPIC, type: TYPE, payload: { orderId, amount: { value: '10' } } },
        { manager },
      );
    })
    .catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ContractViolationError);
  expect((error as ContractViolationError).message).toMatch(
    /^Outbox message #0 of type "order.confirmed" does not match its contract \(version 2\): payload \/amount must have required property 'currency'; \/amount\/value must be number/,
  );
  expect(await rows(`SELECT id FROM public.orders`)).toEqual([]);
  expect(await rows(`SELECT id FROM sage.outbox_message WHERE type = '${TYPE}'`)).toEqual([]);
});

it('dead-letters an invalid message from the broker on its first delivery, without running the handler', async () => {
  const before = seen.length;
  const id = await onBroker({ orderId: 42, amount: { value: 10, currency: 'EUR' } });
  const inbox = app.get(InboxService);
  await waitUntil(
    async () => (await inbox.get({ consumer: CONSUMER, messageId: id })) !== undefined,
    'the dead letter',
  );
  const entry = await inbox.get({ consumer: CONSUMER, messageId: id });
  expect(entry).toMatchObject({ status: 'dead_letter', attempts: 1 });
  expect(entry?.lastError).toMatch(
    /^contract-invalid: "order.confirmed" does not match its contract \(version 2\): \/orderId must be string\. The message was dead-lettered without being handled; /,
  );
  // Kept as received.
  expect(JSON.stringify(entry?.message)).toContain('"orderId":42');
  expect(seen.length).toBe(before);
});

it('dead-letters a version the consumer does not accept', async () => {
  const id = await onBroker({ orderId: 'o-3' }, { [DATASCHEMA_HEADER]: dataschemaOf(TYPE, 3) });
  const inbox = app.get(InboxService);
  await waitUntil(
    async () => (await inbox.get({ consumer: CONSUMER, messageId: id })) !== undefined,
    'the dead letter',
  );
  const entry = await inbox.get({ consumer: CONSUMER, messageId: id });
  expect(entry).toMatchObject({ status: 'dead_letter', attempts: 1 });
  expect(entry?.lastError).toMatch(/^contract-version-unknown: "order.confirmed" version 3 /);
});

it('hands a v1 message to the handler upcast to v2', async () => {
  const id = await onBroker(
    { orderId: 'o-1', total: 12.5 },
    { [DATASCHEMA_HEADER]: dataschemaOf(TYPE, 1) },
  );
  await waitUntil(() => seen.some((m) => m.id === id), 'the v1 message handled');
  const message = seen.find((m) => m.id === id)!;
  expect(message.payload).toEqual({ orderId: 'o-1', amount: { value: 12.5, currency: 'EUR' } });
  expect(message.headers[DATASCHEMA_HEADER]).toBe(dataschemaOf(TYPE, 2));
});

it('publishes a valid payload with its version, and the consumer handles it', async () => {
  const orderId = `o-${randomUUID()}`;
  const payload = { orderId, amount: { value: 3, currency: 'EUR' } };
  await app
    .get(SageDatabase)
    .dataSource.transaction((manager) =>
      app.get(OutboxRepository).publish({ destination: TOPIC, type: TYPE, payload }, { manager }),
    );
  const mine = (m: DeliveredMessage) => (m.payload as { orderId?: string }).orderId === orderId;
  await waitUntil(() => seen.some(mine), 'the published message handled');
  const message = seen.find(mine)!;
  expect(message.payload).toEqual(payload);
  expect(message.headers[DATASCHEMA_HEADER]).toBe(dataschemaOf(TYPE, 2));
});
