import { randomUUID } from 'node:crypto';
import { Injectable, Logger, Module, Scope, type INestApplication } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { createTestDatabase, withClient, type TestDatabase } from '@test/support/pg';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { InvalidOptionsError } from '../../core/errors';
import { InboxHandlerFailedError, InboxMessageIdMissingError } from '../../core/inbox/inbox-errors';
import type { BrokerMessage, DeliveredMessage } from '../../core/ports/broker';
import { waitUntil } from '../../testing/async';
import { OutboxRepository } from '../outbox/outbox.providers';
import { SagaOutboxModule } from '../saga-outbox.module';
import type { SagaOutboxModuleOptions } from '../saga-outbox.options';
import { IdempotentHandler, type InboxContext } from './idempotent-handler.decorator';
import { IdempotentHandlerExplorer } from './idempotent-handler.explorer';
import { INBOX_OPTIONS, type InboxModuleOptions } from './inbox.options';
import { inboxProviders } from './inbox.providers';
import { InboxService } from './inbox.service';

jest.setTimeout(60_000);

// ------------------------------------------------------------------------------ the app under test

const ORDERS = `orders-${randomUUID().slice(0, 8)}`;
const PAYMENTS = `payments-${randomUUID().slice(0, 8)}`;

/** What the handlers do, per message id (set by each test). */
const behaviour = new Map<
  string,
  {
    /** Fail the first `failTimes` attempts (after writing, so the rollback is observable); -1 → always. */
    failTimes?: number;
    /** Awaited inside the transaction, after the effect row is written. */
    pause?: () => Promise<void>;
    /** Publish a payment.charged message through the outbox in the handler's transaction. */
    publish?: boolean;
  }
>();
const attemptsSeen = new Map<string, number[]>();

@Injectable()
class PaymentsConsumer {
  constructor(private readonly outbox: OutboxRepository) {}

  @IdempotentHandler(ORDERS, { consumer: 'payments.charge', maxAttempts: 3 })
  async charge(message: DeliveredMessage, { manager, messageId, consumer, attempt }: InboxContext) {
    attemptsSeen.set(messageId, [...(attemptsSeen.get(messageId) ?? []), attempt]);
    const plan = behaviour.get(messageId) ?? {};
    await manager.query(
      'INSERT INTO public.effect (consumer, message_id, note) VALUES ($1, $2, $3)',
      [consumer, messageId, `${message.type} attempt ${attempt}`],
    );
    if (plan.publish) {
      await this.outbox.publish(
        {
          destination: PAYMENTS,
          type: 'payment.charged',
          key: message.key,
          payload: { messageId },
        },
        { manager },
      );
    }
    await plan.pause?.();
    if (plan.failTimes === -1 || attempt <= (plan.failTimes ?? 0))
      throw new Error(`card service unavailable (attempt ${attempt})`);
  }

  /** No consumer option: named `PaymentsConsumer.audit`. */
  @IdempotentHandler(ORDERS)
  async audit(_message: DeliveredMessage, { manager, messageId, consumer }: InboxContext) {
    await manager.query(
      'INSERT INTO public.effect (consumer, message_id, note) VALUES ($1, $2, $3)',
      [consumer, messageId, 'audited'],
    );
  }
}

/**
 * SagaOutboxModule plus the inbox. Until inboxProviders are wired into SagaOutboxModule itself they
 * are added here, with INBOX_OPTIONS; once the module exports InboxService, both come from it (the
 * options as `forRoot({ inbox })`).
 */
function inboxModule(
  options: SagaOutboxModuleOptions,
  inbox: InboxModuleOptions | undefined,
  extraProviders: unknown[],
) {
  const exported = (Reflect.getMetadata('exports', SagaOutboxModule) ?? []) as unknown[];
  const wired = exported.includes(InboxService);
  const own = [...inboxProviders, ...(inbox ? [{ provide: INBOX_OPTIONS, useValue: inbox }] : [])];
  @Module({
    imports: [
      SagaOutboxModule.forRoot(
        wired && inbox ? ({ ...options, inbox } as SagaOutboxModuleOptions) : options,
      ),
      DiscoveryModule,
    ],
    providers: [...(wired ? [] : own), ...(extraProviders as never[])],
  })
  class InboxAppModule {}
  return InboxAppModule;
}

let db: TestDatabase;
const apps: INestApplication[] = [];

async function startApp(
  broker: InMemoryBroker | undefined,
  extraProviders: unknown[] = [PaymentsConsumer],
  inbox?: InboxModuleOptions,
): Promise<INestApplication> {
  const c = db.connection;
  const moduleRef = await Test.createTestingModule({
    imports: [
      inboxModule(
        {
          postgres: {
            host: c.host,
            port: c.port,
            user: c.user,
            password: c.password,
            database: c.database,
          },
          broker,
          outbox: { relay: { pollIntervalMs: 20 }, retention: { enabled: false } },
        },
        inbox,
        extraProviders,
      ),
    ],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  try {
    await app.init();
  } catch (error) {
    await app.close().catch(() => undefined); // release the pool Sage opened
    throw error;
  }
  apps.push(app);
  return app;
}

beforeAll(async () => {
  db = await createTestDatabase();
  await withClient(db.name, (client) =>
    client.query(
      'CREATE TABLE public.effect (id serial PRIMARY KEY, consumer text NOT NULL, message_id text NOT NULL, note text)',
    ),
  );
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});
afterAll(async () => {
  await db?.drop();
});

// ---------------------------------------------------------------------------------------- helpers

const order = (id = randomUUID(), key = 'o-1'): BrokerMessage => ({
  id,
  destination: ORDERS,
  key,
  type: 'order.placed',
  payload: { orderId: key },
  headers: { 'ce-id': id },
  time: new Date(),
});

const effects = (consumer: string, messageId: string): Promise<string[]> =>
  withClient(db.name, async (client) => {
    const { rows } = await client.query<{ note: string }>(
      'SELECT note FROM public.effect WHERE consumer = $1 AND message_id = $2 ORDER BY id',
      [consumer, messageId],
    );
    return rows.map((r) => r.note);
  });

const inboxStatus = (app: INestApplication, consumer: string, messageId: string) =>
  app.get(InboxService).get({ consumer, messageId });

// ------------------------------------------------------------------------------------------ tests

/** SubscribeOptions.batch as the inbox subscriptions pass it. */
const batchOf = (maxSize: number) => ({ maxSize, handle: expect.any(Function) as unknown });

describe('@IdempotentHandler', () => {
  it('subscribes each handler with its consumer name as the group; the default name is ClassName.methodName', async () => {
    const broker = new InMemoryBroker();
    const subscribe = jest.spyOn(broker, 'subscribe');
    const app = await startApp(broker);
    const explorer = app.get(IdempotentHandlerExplorer);
    expect(explorer.handlers.map((h) => [h.consumer, h.pattern])).toEqual([
      ['payments.charge', ORDERS],
      ['PaymentsConsumer.audit', ORDERS],
    ]);
    expect(explorer.subscribed).toBe(2);
    expect(subscribe.mock.calls.map((call) => [call[0], call[2]])).toEqual([
      // The adapter's delivery cap is twice the inbox's attempts (3 for charge, the default 5);
      // brokers that batch may hand over up to the inbox's batchSize (default 64) at once.
      [ORDERS, { group: 'payments.charge', maxDeliveries: 6, batch: batchOf(64) }],
      [ORDERS, { group: 'PaymentsConsumer.audit', maxDeliveries: 10, batch: batchOf(64) }],
    ]);

    const message = order();
    await broker.publish([message]);
    await waitUntil(async () => {
      return (
        (await effects('payments.charge', message.id)).length === 1 &&
        (await effects('PaymentsConsumer.audit', message.id)).length === 1
      );
    }, 'both consumers handled it');
  });

  it('the same message delivered twice → one effect; the duplicate is acknowledged and counted', async () => {
    const broker = new InMemoryBroker();
    const app = await startApp(broker);
    const inbox = app.get(InboxService);
    const message = order();
    await broker.publish([message]);
    await waitUntil(() => inbox.stats.processed === 2, 'processed'); // charge + audit
    await broker.publish([message]);
    await waitUntil(() => inbox.stats.duplicates === 2, 'duplicates counted');
    expect(await effects('payments.charge', message.id)).toEqual(['order.placed attempt 1']);
    expect(await effects('PaymentsConsumer.audit', message.id)).toEqual(['audited']);
    expect(broker.deadLetters).toEqual([]);
  });

  it('delivered concurrently to two app instances of one consumer group → one effect (the second waits on the first in PostgreSQL)', async () => {
    const broker = new InMemoryBroker();
    const [a, b] = [await startApp(broker), await startApp(broker)];
    const message = order();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let firstIn!: () => void;
    const firstRunning = new Promise<void>((resolve) => (firstIn = resolve));
    behaviour.set(message.id, {
      pause: () => {
        firstIn();
        return gate;
      },
    });
    // A broker-side duplicate: the group's two members (one per instance) get one copy each.
    await broker.publish([message]);
    await firstRunning;
    await broker.publish([message]);
    await waitUntil(
      () =>
        withClient(db.name, async (client) => {
          const { rows } = await client.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%inbox_failure%'`,
          );
          return rows[0]!.n >= 1;
        }),
      'the second delivery waits on the first transaction’s inbox row',
    );
    release();
    const stats = () => [a, b].map((app) => app.get(InboxService).stats);
    // Per consumer (charge, audit): one copy processed by one instance, one duplicate on the other.
    await waitUntil(() => {
      const all = stats();
      return (
        all.reduce((n, s) => n + s.processed, 0) === 2 &&
        all.reduce((n, s) => n + s.duplicates, 0) === 2
      );
    }, 'each consumer: one processed, one duplicate');
    expect(stats().map((s) => s.processed + s.duplicates)).toEqual([2, 2]);
    expect(await effects('payments.charge', message.id)).toEqual(['order.placed attempt 1']);
    expect(await effects('PaymentsConsumer.audit', message.id)).toEqual(['audited']);
  });

  it('a handler error rolls back (no effect, no inbox row) and the broker redelivers; the retry succeeds → one effect', async () => {
    const broker = new InMemoryBroker();
    const app = await startApp(broker);
    const message = order();
    behaviour.set(message.id, { failTimes: 1, publish: true });
    const rolledBack: unknown[] = [];
    app.get(InboxService).onEvent((e) => {
      if (e.type === 'inbox.failed') rolledBack.push(e);
    });
    await broker.publish([message]);
    await waitUntil(
      async () => (await inboxStatus(app, 'payments.charge', message.id))?.status === 'processed',
      'processed on the retry',
    );
    expect(attemptsSeen.get(message.id)).toEqual([1, 2]);
    // The first attempt's effect row and outbox message were rolled back with it.
    expect(await effects('payments.charge', message.id)).toEqual(['order.placed attempt 2']);
    await broker.waitFor((published) =>
      published.some(
        (m) =>
          m.destination === PAYMENTS &&
          (m.payload as { messageId?: string }).messageId === message.id,
      ),
    );
    expect(
      broker.published.filter(
        (m) =>
          m.destination === PAYMENTS &&
          (m.payload as { messageId?: string }).messageId === message.id,
      ),
    ).toHaveLength(1);
    expect(rolledBack).toEqual([
      expect.objectContaining({
        consumer: 'payments.charge',
        messageId: message.id,
        attempts: 1,
        maxAttempts: 3,
        error: 'card service unavailable (attempt 1)',
      }),
    ]);
    await expect(inboxStatus(app, 'payments.charge', message.id)).resolves.toMatchObject({
      attempts: 2,
    });
  });

  it('between the failed attempt and the redelivery nothing of the attempt exists but its failure count', async () => {
    // A long back-off before the broker's redelivery lets us look between the attempts.
    const broker = new InMemoryBroker({ redeliveryDelayMs: 5_000 });
    const app = await startApp(broker);
    const inbox = app.get(InboxService);
    const message = order();
    behaviour.set(message.id, { failTimes: 1, publish: true });
    await broker.publish([message]);
    await waitUntil(
      async () =>
        (await inbox.getFailure({ consumer: 'payments.charge', messageId: message.id })) !==
        undefined,
      'the failed attempt counted',
    );
    expect(await effects('payments.charge', message.id)).toEqual([]);
    await expect(inbox.get({ consumer: 'payments.charge', messageId: message.id })).resolves.toBe(
      undefined,
    );
    await expect(
      inbox.getFailure({ consumer: 'payments.charge', messageId: message.id }),
    ).resolves.toMatchObject({ attempts: 1, lastError: 'card service unavailable (attempt 1)' });
    const outboxRows = await withClient(db.name, (client) =>
      client.query(`SELECT 1 FROM sage.outbox_message WHERE payload->>'messageId' = $1`, [
        message.id,
      ]),
    );
    expect(outboxRows.rowCount).toBe(0);

    await waitUntil(
      async () => (await effects('payments.charge', message.id)).length === 1,
      'handled on the redelivery, after the back-off',
      15_000,
    );
    expect(await effects('payments.charge', message.id)).toEqual(['order.placed attempt 2']);
    await expect(
      inbox.getFailure({ consumer: 'payments.charge', messageId: message.id }),
    ).resolves.toBeUndefined();
  });

  it('poison: dead-lettered after maxAttempts, acknowledged, other messages keep flowing', async () => {
    const broker = new InMemoryBroker({ maxDeliveries: 10 });
    const app = await startApp(broker);
    const inbox = app.get(InboxService);
    const poison = order(randomUUID(), 'o-poison');
    const after = order(randomUUID(), 'o-after');
    behaviour.set(poison.id, { failTimes: -1 });
    await broker.publish([poison]);
    await waitUntil(
      async () => (await inboxStatus(app, 'payments.charge', poison.id))?.status === 'dead_letter',
      'dead-lettered',
    );
    await broker.publish([after]);
    await waitUntil(
      async () => (await effects('payments.charge', after.id)).length === 1,
      'the next message is handled',
    );
    expect(attemptsSeen.get(poison.id)).toEqual([1, 2, 3]);
    expect(await effects('payments.charge', poison.id)).toEqual([]);
    // Acknowledged at the third attempt: the broker never gave up on it, nor redelivered it again.
    expect(broker.deadLetters).toEqual([]);
    const entry = await inboxStatus(app, 'payments.charge', poison.id);
    expect(entry).toMatchObject({
      status: 'dead_letter',
      attempts: 3,
      lastError: 'card service unavailable (attempt 3)',
      message: {
        id: poison.id,
        destination: ORDERS,
        key: 'o-poison',
        type: 'order.placed',
        payload: { orderId: 'o-poison' },
        headers: { 'ce-id': poison.id },
      },
    });
    await expect(inbox.listDeadLetters({ consumer: 'payments.charge' })).resolves.toMatchObject({
      entries: [{ messageId: poison.id }],
    });
    // Audit (another consumer) was never affected by the poison for charge.
    expect(await effects('PaymentsConsumer.audit', poison.id)).toEqual(['audited']);
    expect(inbox.stats.deadLettered).toBe(1);

    // Operator: fix, release, redeliver → handled once.
    behaviour.delete(poison.id);
    await expect(inbox.releaseDeadLetters('payments.charge', [poison.id])).resolves.toEqual([
      poison.id,
    ]);
    await broker.publish([poison]);
    await waitUntil(
      async () => (await effects('payments.charge', poison.id)).length === 1,
      'handled after release',
    );
  });

  it('without a broker: starts, warns, subscribes nothing', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn');
    try {
      const app = await startApp(undefined);
      const explorer = app.get(IdempotentHandlerExplorer);
      expect(explorer.handlers).toHaveLength(2);
      expect(explorer.subscribed).toBe(0);
      expect(warn).toHaveBeenCalledWith(
        expect.objectContaining({
          event: 'inbox.subscribe.skipped',
          msg: expect.stringContaining('PaymentsConsumer.charge, PaymentsConsumer.audit'),
        }),
      );
    } finally {
      warn.mockRestore();
    }
  });

  it('INBOX_OPTIONS: subscribe false leaves subscribing to subscribeAll(); shutdown unsubscribes and waits for running handlers', async () => {
    const broker = new InMemoryBroker();
    const app = await startApp(broker, [PaymentsConsumer], { subscribe: false, maxAttempts: 2 });
    const explorer = app.get(IdempotentHandlerExplorer);
    expect(explorer.subscribed).toBe(0);
    expect(app.get(InboxService).processor.maxAttempts).toBe(2);
    await explorer.subscribeAll();
    await explorer.subscribeAll();
    expect(explorer.subscribed).toBe(2);

    const slow = order();
    let entered!: () => void;
    const running = new Promise<void>((resolve) => (entered = resolve));
    behaviour.set(slow.id, {
      pause: async () => {
        entered();
        await new Promise((resolve) => setTimeout(resolve, 200));
      },
    });
    await broker.publish([slow]);
    await running;
    await app.close();
    apps.splice(apps.indexOf(app), 1);
    // The running handler finished (committed) before the database closed.
    expect(await effects('payments.charge', slow.id)).toEqual(['order.placed attempt 1']);
    expect(explorer.subscribed).toBe(0);
    const late = order();
    await broker.publish([late]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await effects('payments.charge', late.id)).toEqual([]);
  });

  it('fails startup on a duplicate consumer name or a request-scoped handler, naming the methods', async () => {
    @Injectable()
    class Twin {
      @IdempotentHandler(ORDERS, { consumer: 'payments.charge' })
      handle(): Promise<void> {
        return Promise.resolve();
      }
    }
    await expect(startApp(new InMemoryBroker(), [PaymentsConsumer, Twin])).rejects.toThrow(
      /consumer "payments.charge" is declared by both PaymentsConsumer.charge and Twin.handle/,
    );

    @Injectable({ scope: Scope.REQUEST })
    class PerRequest {
      @IdempotentHandler(ORDERS, { consumer: 'per-request' })
      handle(): Promise<void> {
        return Promise.resolve();
      }
    }
    await expect(startApp(new InMemoryBroker(), [PerRequest])).rejects.toThrow(InvalidOptionsError);

    @Injectable()
    class BadOptions {
      @IdempotentHandler(ORDERS, { consumer: 'bad', maxAttempts: 0 })
      handle(): Promise<void> {
        return Promise.resolve();
      }
    }
    await expect(startApp(new InMemoryBroker(), [BadOptions])).rejects.toThrow(
      /BadOptions.handle: maxAttempts must be an integer >= 1/,
    );
  });
});

describe('InboxService.handle (for @EventPattern handlers)', () => {
  // Shaped like @nestjs/microservices' contexts (the transports themselves are tested per broker).
  const kafkaContext = (id: string) => ({
    getMessage: () => ({
      key: null,
      value: null,
      offset: '0',
      headers: { ce_id: Buffer.from(id) },
    }),
    getTopic: () => ORDERS,
  });
  const rmqContext = (id: string) => ({
    getMessage: () => ({
      content: Buffer.from('{}'),
      fields: {},
      properties: { messageId: id, headers: {} },
    }),
  });
  const natsContext = (id: string) => ({
    getSubject: () => ORDERS,
    getHeaders: () => ({ get: (name: string) => (name === 'Nats-Msg-Id' ? id : '') }),
  });

  it.each([
    ['Kafka', kafkaContext],
    ['RabbitMQ', rmqContext],
    ['NATS', natsContext],
  ])('runs the handler once per message id taken from a %s context', async (_name, contextFor) => {
    const app = await startApp(undefined, []);
    const inbox = app.get(InboxService);
    const consumer = `event-pattern.${randomUUID().slice(0, 8)}`;
    const id = randomUUID();
    const handler = async ({ manager, messageId, attempt }: InboxContext) => {
      await manager.query(
        'INSERT INTO public.effect (consumer, message_id, note) VALUES ($1, $2, $3)',
        [consumer, messageId, `attempt ${attempt}`],
      );
      return 'done';
    };
    await expect(inbox.handle(consumer, contextFor(id), handler)).resolves.toEqual({
      outcome: 'processed',
      attempt: 1,
      value: 'done',
    });
    await expect(inbox.handle(consumer, contextFor(id), handler)).resolves.toEqual({
      outcome: 'duplicate',
    });
    expect(await effects(consumer, id)).toEqual(['attempt 1']);
  });

  it('throws for redelivery, dead-letters with the given message, and refuses a context without an id', async () => {
    const app = await startApp(undefined, [], { maxAttempts: 2 });
    const inbox = app.get(InboxService);
    const consumer = `event-pattern.${randomUUID().slice(0, 8)}`;
    const id = randomUUID();
    const failing = async ({ manager, messageId }: InboxContext) => {
      await manager.query('INSERT INTO public.effect (consumer, message_id) VALUES ($1, $2)', [
        consumer,
        messageId,
      ]);
      throw new Error('downstream 500');
    };
    await expect(
      inbox.handle(consumer, id, failing, { message: { orderId: 'o-9' } }),
    ).rejects.toBeInstanceOf(InboxHandlerFailedError);
    await expect(
      inbox.handle(consumer, id, failing, { message: { orderId: 'o-9' } }),
    ).resolves.toEqual({ outcome: 'dead-lettered', attempts: 2, error: 'downstream 500' });
    expect(await effects(consumer, id)).toEqual([]);
    await expect(inbox.get({ consumer, messageId: id })).resolves.toMatchObject({
      status: 'dead_letter',
      message: { orderId: 'o-9' },
    });

    const handler = jest.fn(() => Promise.resolve());
    await expect(
      inbox.handle(consumer, { getMessage: () => ({ headers: {} }) }, handler),
    ).rejects.toBeInstanceOf(InboxMessageIdMissingError);
    await expect(inbox.handle('', id, handler)).rejects.toBeInstanceOf(InvalidOptionsError);
    expect(handler).not.toHaveBeenCalled();
  });
});
