import { randomUUID } from 'node:crypto';
import { Injectable, Module, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { EntityManager } from 'typeorm';
import {
  createTestDatabase,
  sagePostgresOptions,
  withClient,
  type TestDatabase,
} from '@test/support/pg';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import type { ReceivedSagaCommand, SagaCommand } from '../../core/saga/saga-command';
import { waitUntil } from '../../testing/async';
import { Compensate, Saga, SagaStep } from '../decorators';
import type { InboxContext } from '../inbox/idempotent-handler.decorator';
import type { SagaCompensationContext, SagaStepContext } from '../saga-context';
import { SagaOutboxModule } from '../saga-outbox.module';
import { SagaService } from '../saga.service';
import { rejectCommand, SagaCommandHandler } from './saga-command-handler.decorator';

jest.setTimeout(60_000);

// Two services on one PostgreSQL database, each with its own Sage schema (own saga state, outbox and
// inbox), talking through one in-memory broker: the orchestrator's remote step is the participant's
// command handler.
const COMMANDS = `cards-${randomUUID().slice(0, 8)}`;
const REPLIES = `checkout-replies-${randomUUID().slice(0, 8)}`;
const REPLY_TIMEOUT_MS = 400;

interface Checkout {
  orderId: string;
  card: string;
  amount: number;
}

@Saga('checkout')
@Injectable()
class CheckoutSaga {
  @SagaStep('reserve')
  async reserve(ctx: SagaStepContext<Checkout>): Promise<void> {
    await ctx.manager.query('INSERT INTO public.reservation (order_id) VALUES ($1)', [
      ctx.input.orderId,
    ]);
  }

  @Compensate('reserve')
  async release(ctx: SagaCompensationContext<Checkout>): Promise<void> {
    await ctx.manager.query('DELETE FROM public.reservation WHERE order_id = $1', [
      ctx.input.orderId,
    ]);
  }

  @SagaStep('charge', {
    kind: 'remote',
    dependsOn: ['reserve'],
    timeoutMs: REPLY_TIMEOUT_MS,
    retry: { maxAttempts: 2, initialDelayMs: 0 },
    compensationRetry: { maxAttempts: 50, initialDelayMs: 0 },
  })
  charge(ctx: SagaStepContext<Checkout>): SagaCommand {
    return {
      destination: COMMANDS,
      type: 'card.charge',
      payload: { card: ctx.input.card, amount: ctx.input.amount },
    };
  }

  @Compensate('charge')
  refund(ctx: SagaCompensationContext<Checkout>): SagaCommand {
    return { destination: COMMANDS, type: 'card.refund', payload: { orderId: ctx.input.orderId } };
  }
}

@Injectable()
class CardParticipant {
  @SagaCommandHandler('card.charge', { destination: COMMANDS, consumer: 'cards' })
  async charge(command: ReceivedSagaCommand, { manager }: InboxContext) {
    const { card, amount } = command.payload as { card: string; amount: number };
    if (card.endsWith('0002')) return rejectCommand('card declined');
    // Idempotent on the step's key: a resend (new message id, same key) charges nothing more.
    await chargeOnce(manager, command.idempotencyKey, amount);
    return { chargeId: command.idempotencyKey };
  }

  @SagaCommandHandler('card.refund', { destination: COMMANDS, consumer: 'cards' })
  async refund(command: ReceivedSagaCommand, { manager }: InboxContext) {
    // Undoing a charge that never happened is a success.
    const chargeKey = command.idempotencyKey.replace(/:compensate$/, '');
    await manager.query(
      'INSERT INTO public.refund (charge_key) VALUES ($1) ON CONFLICT (charge_key) DO NOTHING',
      [chargeKey],
    );
    return null;
  }
}

async function chargeOnce(manager: EntityManager, key: string, amount: number): Promise<void> {
  await manager.query(
    'INSERT INTO public.charge (key, amount) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING',
    [key, amount],
  );
}

let db: TestDatabase;
const apps: INestApplication[] = [];

async function boot(
  schema: string,
  broker: InMemoryBroker,
  providers: unknown[],
  saga: Record<string, unknown> = {},
): Promise<INestApplication> {
  @Module({
    imports: [
      SagaOutboxModule.forRoot({
        postgres: sagePostgresOptions(db.connection),
        schema,
        broker,
        saga: { recoveryIntervalMs: 50, ...saga },
        outbox: { relay: { pollIntervalMs: 20 }, retention: { enabled: false } },
      }),
    ],
    providers: providers as never[],
  })
  class ServiceModule {}
  const moduleRef = await Test.createTestingModule({ imports: [ServiceModule] }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  apps.push(app);
  return app;
}

const orchestrator = (broker: InMemoryBroker) =>
  boot('checkout_sage', broker, [CheckoutSaga], { replyTo: REPLIES });
const participant = (broker: InMemoryBroker) => boot('cards_sage', broker, [CardParticipant]);

const count = (sql: string, params: unknown[] = []): Promise<number> =>
  withClient(db.name, async (client) => {
    const { rows } = await client.query<{ n: number }>(sql, params);
    return Number(rows[0]!.n);
  });

beforeAll(async () => {
  db = await createTestDatabase();
  await withClient(db.name, async (client) => {
    await client.query('CREATE TABLE public.reservation (order_id text PRIMARY KEY)');
    await client.query('CREATE TABLE public.charge (key text PRIMARY KEY, amount int NOT NULL)');
    await client.query('CREATE TABLE public.refund (charge_key text PRIMARY KEY)');
  });
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});
afterAll(async () => {
  await db?.drop();
});

describe('remote saga steps between two Nest services', () => {
  it('happy path: the command is handled once in the participant and its reply completes the saga', async () => {
    const broker = new InMemoryBroker();
    const orders = await orchestrator(broker);
    await participant(broker);
    const sagas = orders.get(SagaService);
    const orderId = randomUUID();
    const { sagaId } = await sagas.start('checkout', { orderId, card: '4242', amount: 30 });
    const done = await sagas.waitFor(sagaId, { timeoutMs: 20_000 });
    expect(done.status).toBe('completed');
    expect(done.steps.find((s) => s.name === 'charge')).toMatchObject({
      status: 'completed',
      result: { chargeId: `${sagaId}:charge` },
    });
    expect(
      await count('SELECT count(*) AS n FROM public.charge WHERE key = $1', [`${sagaId}:charge`]),
    ).toBe(1);
    expect(
      await count('SELECT count(*) AS n FROM public.reservation WHERE order_id = $1', [orderId]),
    ).toBe(1);
    // The reply went through the participant's own outbox, to the orchestrator's reply destination.
    const replies = broker.published.filter((m) => m.destination === REPLIES);
    expect(replies).toHaveLength(1);
    expect(replies[0]!.headers).toMatchObject({
      'sage-saga-id': sagaId,
      'sage-reply-outcome': 'success',
    });
  });

  it('a declined card: the participant rejects, the saga compensates the reservation and charges nothing', async () => {
    const broker = new InMemoryBroker();
    const orders = await orchestrator(broker);
    await participant(broker);
    const sagas = orders.get(SagaService);
    const orderId = randomUUID();
    const { sagaId } = await sagas.start('checkout', { orderId, card: '4000 0002', amount: 30 });
    const done = await sagas.waitFor(sagaId, { timeoutMs: 20_000 });
    expect(done.status).toBe('compensated');
    expect(done.error).toContain('card declined');
    expect(done.steps.find((s) => s.name === 'charge')).toMatchObject({ status: 'failed' });
    expect(
      await count('SELECT count(*) AS n FROM public.charge WHERE key = $1', [`${sagaId}:charge`]),
    ).toBe(0);
    expect(
      await count('SELECT count(*) AS n FROM public.reservation WHERE order_id = $1', [orderId]),
    ).toBe(0);
    // A rejected step did nothing: no refund is sent for it.
    expect(
      broker.published.filter((m) => m.type === 'card.refund' && m.key === sagaId),
    ).toHaveLength(0);
  });

  it('the same command delivered twice, and concurrently, charges once and replies are applied once', async () => {
    const broker = new InMemoryBroker();
    // Each command is delivered to the participant twice at the same time (a duplicate delivery).
    const orders = await orchestrator(broker);
    await participant(broker);
    const original = broker.publish.bind(broker);
    jest.spyOn(broker, 'publish').mockImplementation((batch, signal) =>
      original(
        batch.flatMap((m) => (m.destination === COMMANDS ? [m, m] : [m])),
        signal,
      ).then((results) => batch.map((m) => results.find((r) => r.id === m.id)!)),
    );
    const sagas = orders.get(SagaService);
    const { sagaId } = await sagas.start('checkout', {
      orderId: randomUUID(),
      card: '4242',
      amount: 7,
    });
    const done = await sagas.waitFor(sagaId, { timeoutMs: 20_000 });
    expect(done.status).toBe('completed');
    expect(
      broker.published.filter((m) => m.destination === COMMANDS && m.key === sagaId),
    ).toHaveLength(2);
    expect(
      await count('SELECT count(*) AS n FROM public.charge WHERE key = $1', [`${sagaId}:charge`]),
    ).toBe(1);
    expect(
      broker.published.filter((m) => m.destination === REPLIES && m.key === sagaId),
    ).toHaveLength(1);
  });

  it('participant down: the saga waits, resends after the reply timeout, and completes once the participant is back', async () => {
    const broker = new InMemoryBroker();
    const orders = await orchestrator(broker);
    const sagas = orders.get(SagaService);
    const { sagaId } = await sagas.start('checkout', {
      orderId: randomUUID(),
      card: '4242',
      amount: 9,
    });
    await waitUntil(
      async () => (await sagas.get(sagaId)).status === 'waiting',
      'the saga to park',
      10_000,
    );
    // The first command found nobody (the in-memory broker keeps nothing for absent consumers).
    await participant(broker);
    const done = await sagas.waitFor(sagaId, { timeoutMs: 20_000 });
    expect(done.status).toBe('completed');
    const sent = broker.published.filter((m) => m.type === 'card.charge' && m.key === sagaId);
    expect(sent.map((m) => m.headers['sage-attempt'])).toEqual(['1', '2']);
    expect(new Set(sent.map((m) => m.headers['sage-idempotency-key']))).toEqual(
      new Set([`${sagaId}:charge`]),
    );
  });

  it('participant down past every attempt: the step times out, and compensation (a refund command) completes when it is back', async () => {
    const broker = new InMemoryBroker();
    const orders = await orchestrator(broker);
    const sagas = orders.get(SagaService);
    const orderId = randomUUID();
    const { sagaId } = await sagas.start('checkout', { orderId, card: '4242', amount: 11 });
    await waitUntil(
      () => broker.published.some((m) => m.type === 'card.refund' && m.key === sagaId),
      'the step to time out and the refund to be sent',
      15_000,
    );
    const compensating = await sagas.get(sagaId);
    expect(compensating.status).toBe('compensating');
    // Why it compensates is visible while it does.
    expect(compensating.error).toContain('no reply to attempt 2');
    expect(compensating.failedStep).toBe('charge');
    expect(compensating.steps.find((s) => s.name === 'charge')).toMatchObject({
      status: 'compensating',
    });
    // The reservation stays until the later step's compensation is acknowledged.
    expect(
      await count('SELECT count(*) AS n FROM public.reservation WHERE order_id = $1', [orderId]),
    ).toBe(1);
    await participant(broker);
    const done = await sagas.waitFor(sagaId, { timeoutMs: 20_000 });
    expect(done.status).toBe('compensated');
    expect(done.steps.find((s) => s.name === 'charge')).toMatchObject({ status: 'compensated' });
    expect(
      await count('SELECT count(*) AS n FROM public.reservation WHERE order_id = $1', [orderId]),
    ).toBe(0);
    expect(
      await count('SELECT count(*) AS n FROM public.refund WHERE charge_key = $1', [
        `${sagaId}:charge`,
      ]),
    ).toBe(1);
  });
});
