/**
 * Optimistic sending in a real Nest app on real PostgreSQL: after-commit publishing through an
 * explicit EntityManager, through `@nestjs-cls/transactional`, nested transactions (savepoints)
 * and saga-free plain code; nothing for rolled-back transactions; a failing or hanging broker never
 * blocks the caller and leaves the rows to the relay. The app runs NO relay, so whatever reaches
 * the broker was sent by the optimistic sender (and `path: 'optimistic'` says so).
 */
import 'reflect-metadata';
import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Transactional } from '@nestjs-cls/transactional';
import { DataSource, type EntityManager } from 'typeorm';
import { clsTransactionalModule, typeOrmTestModule } from '@test/support/nest-typeorm';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { InvalidOptionsError } from '../../core/errors';
import type { OptimisticSender } from '../../core/outbox/optimistic-sender';
import type { OutboxEvent } from '../../core/outbox/outbox-events';
import type { OutboxMessageInput } from '../../core/outbox/outbox-message';
import { OutboxRelay } from '../../core/outbox/outbox-relay';
import type { Broker, BrokerMessage, PublishResult } from '../../core/ports/broker';
import { defineSaga } from '../../core/saga/saga-builder';
import { PostgresOutboxStore } from '../../persistence/postgres/postgres-outbox-store';
import { waitUntil } from '../../testing/async';
import { SagaOutboxModule } from '../saga-outbox.module';
import { validateModuleOptions } from '../saga-outbox.options';
import { SagaService } from '../saga.service';
import { OutboxRelayService, OutboxRepository } from './outbox.providers';

jest.setTimeout(60_000);

/** The in-memory broker, plus a switch that makes publishes hang (ignoring the abort signal). */
class ControllableBroker implements Broker {
  readonly name = 'controllable';
  readonly inner = new InMemoryBroker();
  calls = 0;
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  hang(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }
  resume(): void {
    this.open?.();
    this.gate = undefined;
  }
  async publish(batch: readonly BrokerMessage[], signal?: AbortSignal): Promise<PublishResult[]> {
    this.calls++;
    if (this.gate) await this.gate;
    return this.inner.publish(batch, signal);
  }
  subscribe: Broker['subscribe'] = (d, h, o) => this.inner.subscribe(d, h, o);
  health: Broker['health'] = () => this.inner.health();
  close: Broker['close'] = () => this.inner.close();
}

const message = (key: string, type = 'account.opened'): OutboxMessageInput => ({
  destination: 'accounts',
  type,
  key,
  payload: { key },
});

@Injectable()
class AccountService {
  constructor(private readonly outbox: OutboxRepository) {}

  /** No manager anywhere: the ambient CLS transaction. */
  @Transactional()
  async open(key: string, fail = false): Promise<string> {
    const [id] = await this.outbox.publish(message(key));
    if (fail) throw new Error(`opening ${key} failed after publishing`);
    return id!;
  }

  @Transactional()
  async openTwo(a: string, b: string): Promise<void> {
    await this.open(a);
    await this.open(b);
  }
}

/** A local step that emits a message in its own step transaction (the saga store runs it). */
const emitting = defineSaga<{ n: number }, EntityManager>('optimistic-emitting')
  .step('announce', {
    compensatable: false,
    run: async (ctx) => {
      await ctx.emit({ destination: 'accounts', type: 'saga.announced', payload: ctx.input });
      return { done: true };
    },
  })
  .build();

let db: TestDatabase;
let app: INestApplicationContext;
let broker: ControllableBroker;
let optimistic: OptimisticSender;
let dataSource: DataSource;
let outbox: OutboxRepository;
const events: OutboxEvent[] = [];

beforeAll(async () => {
  db = await createTestDatabase({ migrated: true });
  broker = new ControllableBroker();
  @Module({
    imports: [
      typeOrmTestModule(db.connection),
      clsTransactionalModule(),
      SagaOutboxModule.forRootAsync({
        inject: [DataSource],
        useFactory: (ds: DataSource) => ({
          dataSource: ds,
          broker,
          sagas: [emitting] as never[],
          outbox: {
            relay: { enabled: false },
            retention: { enabled: false },
            optimistic: { enabled: true, timeoutMs: 1000 },
          },
        }),
      }),
    ],
    providers: [AccountService],
  })
  class AppModule {}
  app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  await app.init();
  dataSource = app.get(DataSource);
  outbox = app.get(OutboxRepository);
  const service = app.get(OutboxRelayService);
  expect(service.relay).toBeUndefined();
  optimistic = service.optimistic!;
  expect(optimistic).toBeDefined();
  service.onEvent((e) => events.push(e));
});
afterAll(async () => {
  broker?.resume();
  await app?.close();
  await db?.drop();
});
beforeEach(() => {
  events.length = 0;
});

const status = async (id: string): Promise<string | undefined> => {
  const rows = (await dataSource.query(`SELECT status FROM sage.outbox_message WHERE id = $1`, [
    id,
  ])) as { status: string }[];
  return rows[0]?.status;
};
const publishedKeys = (): (string | null)[] => broker.inner.published.map((m) => m.key);

it('explicit EntityManager: published right after commit by the optimistic path, marked sent', async () => {
  const [id] = await dataSource.transaction((manager) =>
    outbox.publish(message('explicit-1'), { manager }),
  );
  await optimistic.idle();
  expect(broker.inner.published.filter((m) => m.id === id)).toHaveLength(1);
  expect(await status(id!)).toBe('sent');
  expect(events).toContainEqual(
    expect.objectContaining({ type: 'outbox.published', path: 'optimistic', messageId: id }),
  );
});

it('@Transactional() (ambient CLS transaction): published after commit; nested methods in one attempt', async () => {
  const id = await app.get(AccountService).open('cls-1');
  await optimistic.idle();
  expect(await status(id)).toBe('sent');

  const attempts = optimistic.stats.attempts;
  await app.get(AccountService).openTwo('cls-2a', 'cls-2b');
  await optimistic.idle();
  expect(publishedKeys()).toEqual(expect.arrayContaining(['cls-2a', 'cls-2b']));
  expect(optimistic.stats.attempts).toBe(attempts + 1);
});

it('rolled-back transactions publish nothing (explicit manager and @Transactional())', async () => {
  const attempts = optimistic.stats.attempts;
  await expect(
    dataSource.transaction(async (manager) => {
      await outbox.publish(message('rollback-1'), { manager });
      throw new Error('explicit rollback');
    }),
  ).rejects.toThrow('explicit rollback');
  await expect(app.get(AccountService).open('rollback-2', true)).rejects.toThrow(
    'opening rollback-2 failed',
  );
  // The end of the transaction has been observed synchronously: an attempt would be running now.
  await optimistic.idle();
  expect(optimistic.stats.attempts).toBe(attempts);
  expect(publishedKeys()).not.toContain('rollback-1');
  expect(publishedKeys()).not.toContain('rollback-2');
  const [row] = (await dataSource.query(
    `SELECT count(*)::int AS n FROM sage.outbox_message WHERE key IN ('rollback-1', 'rollback-2')`,
  )) as { n: number }[];
  expect(row!.n).toBe(0);
});

it('savepoints: nothing goes out when a nested transaction ends, only when the outer one commits', async () => {
  const attempts = optimistic.stats.attempts;
  let afterSavepoints = -1;
  await dataSource.transaction(async (manager) => {
    await manager.transaction((inner) => outbox.publish(message('sp-kept'), { manager: inner }));
    await expect(
      manager.transaction(async (inner) => {
        await outbox.publish(message('sp-rolled-back'), { manager: inner });
        throw new Error('savepoint rolls back');
      }),
    ).rejects.toThrow('savepoint rolls back');
    await outbox.publish(message('sp-outer'), { manager });
    afterSavepoints = optimistic.stats.attempts;
  });
  expect(afterSavepoints).toBe(attempts);
  await optimistic.idle();
  expect(optimistic.stats.attempts).toBe(attempts + 1);
  expect(publishedKeys()).toEqual(expect.arrayContaining(['sp-kept', 'sp-outer']));
  expect(publishedKeys()).not.toContain('sp-rolled-back');
});

it('a hanging broker never blocks the caller; after the timeout the relay publishes the rows', async () => {
  broker.hang();
  const callsBefore = broker.calls;
  const [id] = await dataSource.transaction((manager) =>
    outbox.publish(message('hang-1'), { manager }),
  );
  // The commit has returned; the optimistic publish (claim, then broker call) runs behind it and
  // gets stuck in the broker, which never answers until resumed.
  await waitUntil(() => broker.calls > callsBefore, 'the optimistic publish to reach the broker');
  expect(await status(id!)).toBe('claimed');

  await optimistic.idle(); // gives up at timeoutMs (1 s)
  expect(await status(id!)).toBe('pending');
  expect(events).toContainEqual(
    expect.objectContaining({ type: 'outbox.failed', path: 'optimistic', reason: 'timeout' }),
  );
  expect(events).toContainEqual(expect.objectContaining({ type: 'outbox.released', count: 1 }));

  broker.resume();
  const relay = new OutboxRelay({ store: app.get(PostgresOutboxStore), broker });
  expect((await relay.runOnce()).sent).toBe(1);
  expect(await status(id!)).toBe('sent');
});

it('a failing broker: the rows go back to pending (attempts unchanged) and the relay publishes them', async () => {
  broker.inner.setAvailable(false);
  const [id] = await dataSource.transaction((manager) =>
    outbox.publish(message('fail-1'), { manager }),
  );
  await optimistic.idle();
  const [row] = (await dataSource.query(
    `SELECT status, attempts, next_attempt_at <= clock_timestamp() AS due FROM sage.outbox_message WHERE id = $1`,
    [id],
  )) as { status: string; attempts: number; due: boolean }[];
  expect(row).toEqual({ status: 'pending', attempts: 0, due: true });
  expect(events).toContainEqual(
    expect.objectContaining({ type: 'outbox.failed', reason: 'broker_error', messageId: id }),
  );

  broker.inner.setAvailable(true);
  const relay = new OutboxRelay({ store: app.get(PostgresOutboxStore), broker });
  expect((await relay.runOnce()).sent).toBe(1);
  expect(broker.inner.published.filter((m) => m.id === id)).toHaveLength(1);
});

it("saga steps' ctx.emit: sent optimistically when the step transaction commits", async () => {
  const { sagaId } = await app.get(SagaService).start('optimistic-emitting', { n: 7 });
  await app.get(SagaService).waitFor(sagaId, { timeoutMs: 10_000 });
  await optimistic.idle();
  const sent = broker.inner.published.filter((m) => m.type === 'saga.announced');
  expect(sent).toHaveLength(1);
  expect(sent[0]).toMatchObject({ key: sagaId, payload: { n: 7 } });
  expect(events).toContainEqual(
    expect.objectContaining({
      type: 'outbox.published',
      path: 'optimistic',
      messageId: sent[0]!.id,
    }),
  );
});

it('invalid optimistic options fail at the module boundary with InvalidOptionsError', () => {
  expect(() => validateModuleOptions({ outbox: { optimistic: { percent: 150 } } })).toThrow(
    InvalidOptionsError,
  );
  expect(() =>
    validateModuleOptions({ outbox: { optimistic: { enabled: true, types: { a: -5 } } } }),
  ).toThrow('outbox.optimistic.types.a');
  expect(() => validateModuleOptions({ outbox: { optimistic: { timeoutMs: 0 } } })).toThrow(
    'outbox.optimistic.timeoutMs',
  );
});
