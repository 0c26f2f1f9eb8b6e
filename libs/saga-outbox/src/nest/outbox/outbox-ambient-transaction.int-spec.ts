/**
 * The outbox joins the ambient `@nestjs-cls/transactional` transaction (TypeORM adapter) on its
 * own: an app that registers ClsModule with ClsPluginTransactional calls `outbox.publish(message)`
 * inside `@Transactional()` methods, without a manager. Real PostgreSQL, real Nest app.
 */
import 'reflect-metadata';
import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Transactional, TransactionHost } from '@nestjs-cls/transactional';
import { TransactionalAdapterTypeOrm } from '@nestjs-cls/transactional-adapter-typeorm';
import { ClsService } from 'nestjs-cls';
import { DataSource } from 'typeorm';
import { clsTransactionalModule, typeOrmTestModule } from '@test/support/nest-typeorm';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { OutboxTransactionRequiredError } from '../../core/outbox/outbox-errors';
import { waitUntil } from '../../testing/async';
import { SagaOutboxModule } from '../saga-outbox.module';
import { OutboxRelayService, OutboxRepository } from './outbox.providers';

jest.setTimeout(60_000);

@Injectable()
class AccountService {
  constructor(
    private readonly txHost: TransactionHost<TransactionalAdapterTypeOrm>,
    private readonly outbox: OutboxRepository,
  ) {}

  /** Business row + message, no manager passed anywhere. */
  @Transactional()
  async open(id: string, fail = false): Promise<string> {
    await this.txHost.tx.query(`INSERT INTO public.account (id) VALUES ($1)`, [id]);
    const [messageId] = await this.outbox.publish({
      destination: 'accounts',
      type: 'account.opened',
      key: id,
      payload: { id },
    });
    if (fail) throw new Error(`opening ${id} failed after publishing`);
    return messageId!;
  }

  /** Nested @Transactional() (REQUIRED joins the outer one): still one transaction. */
  @Transactional()
  async openTwo(a: string, b: string): Promise<void> {
    await this.open(a);
    await this.open(b);
  }
}

let db: TestDatabase;
let app: INestApplicationContext;
let broker: InMemoryBroker;

async function boot(withCls: boolean): Promise<INestApplicationContext> {
  @Module({
    imports: [
      typeOrmTestModule(db.connection),
      ...(withCls ? [clsTransactionalModule()] : []),
      SagaOutboxModule.forRootAsync({
        inject: [DataSource],
        useFactory: (dataSource: DataSource) => ({
          dataSource,
          runMigrations: true,
          broker,
          // A poll interval far beyond the test: only the NOTIFY sent at commit wakes the relay.
          outbox: { relay: { pollIntervalMs: 600_000 }, retention: { enabled: false } },
        }),
      }),
    ],
    providers: withCls ? [AccountService] : [],
  })
  class AppModule {}
  const instance = await NestFactory.createApplicationContext(AppModule, {
    logger: false,
    abortOnError: false,
  });
  await instance.init();
  return instance;
}

const rows = async (sql: string, params: unknown[]): Promise<number> => {
  const result = (await app.get(DataSource).query(sql, params)) as { n: number }[];
  return result[0]!.n;
};
const accounts = (id: string): Promise<number> =>
  rows(`SELECT count(*)::int AS n FROM public.account WHERE id = $1`, [id]);
const messages = (key: string): Promise<number> =>
  rows(`SELECT count(*)::int AS n FROM sage.outbox_message WHERE key = $1`, [key]);

beforeAll(async () => {
  // Empty database: Sage's migrations run through the app's DataSource (runMigrations: true).
  db = await createTestDatabase({ migrated: false });
  broker = new InMemoryBroker();
  app = await boot(true);
  await app.get(DataSource).query(`CREATE TABLE public.account (id text PRIMARY KEY)`);
  // The relay has done its first round and now sleeps until a NOTIFY (or 10 minutes).
  const relay = app.get(OutboxRelayService).relay!;
  const deadline = Date.now() + 10_000;
  while (!relay.stats.listening || relay.stats.loop.ticks < 1) {
    if (Date.now() > deadline) throw new Error('relay did not start listening');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

it('@Transactional(): the business row and the message commit together; NOTIFY wakes the relay', async () => {
  const id = await app.get(AccountService).open('acc-1');
  expect(await accounts('acc-1')).toBe(1);
  // Relayed long before the 10-minute poll: the commit's NOTIFY woke the relay.
  await broker.waitFor((published) => published.some((m) => m.id === id), 10_000);
  const sent = broker.published.filter((m) => m.id === id);
  expect(sent).toHaveLength(1);
  expect(sent[0]).toMatchObject({ destination: 'accounts', type: 'account.opened', key: 'acc-1' });
  // The broker ack is recorded right after the publish returns.
  await waitUntil(
    async () =>
      (await rows(
        `SELECT count(*)::int AS n FROM sage.outbox_message WHERE id = $1 AND status = 'sent'`,
        [id],
      )) === 1,
    'the message to be marked sent',
    10_000,
  );
});

it('nested @Transactional() methods publish into the one outer transaction', async () => {
  await app.get(AccountService).openTwo('acc-2a', 'acc-2b');
  await broker.waitFor(
    (published) =>
      published.some((m) => m.key === 'acc-2a') && published.some((m) => m.key === 'acc-2b'),
    10_000,
  );
  // The same transaction wrote both rows: one txid.
  await expect(
    rows(
      `SELECT count(DISTINCT txid)::int AS n FROM sage.outbox_message WHERE key IN ('acc-2a', 'acc-2b')`,
      [],
    ),
  ).resolves.toBe(1);
});

it('a @Transactional() method that throws leaves neither the row nor the message', async () => {
  await expect(app.get(AccountService).open('acc-3', true)).rejects.toThrow(
    'opening acc-3 failed after publishing',
  );
  expect(await accounts('acc-3')).toBe(0);
  expect(await messages('acc-3')).toBe(0);
  // And a later commit still flows: nothing is stuck behind the rolled-back write.
  const id = await app.get(AccountService).open('acc-3');
  await broker.waitFor((published) => published.some((m) => m.id === id), 10_000);
  expect(broker.published.filter((m) => m.key === 'acc-3')).toHaveLength(1);
});

it('outside any transaction: OutboxTransactionRequiredError, nothing written', async () => {
  const outbox = app.get(OutboxRepository);
  const message = { destination: 'accounts', type: 'account.orphan', key: 'acc-4', payload: 1 };
  // No CLS context at all.
  await expect(outbox.publish(message)).rejects.toBeInstanceOf(OutboxTransactionRequiredError);
  // A CLS context, but no transaction in it.
  await expect(app.get(ClsService).run(() => outbox.publish(message))).rejects.toBeInstanceOf(
    OutboxTransactionRequiredError,
  );
  // Explicitly outside the surrounding transaction.
  const txHost = app.get(TransactionHost);
  await expect(
    txHost.withTransaction(() => txHost.withoutTransaction(() => outbox.publish(message))),
  ).rejects.toBeInstanceOf(OutboxTransactionRequiredError);
  expect(await messages('acc-4')).toBe(0);
});

it('an explicit manager still wins inside a @Transactional() method', async () => {
  const txHost = app.get(TransactionHost);
  const dataSource = app.get(DataSource);
  const outbox = app.get(OutboxRepository);
  const message = { destination: 'accounts', type: 'account.other', key: 'acc-5', payload: 1 };
  // The ambient transaction rolls back; the message went through another, committed one.
  await expect(
    txHost.withTransaction(async () => {
      await dataSource.transaction((manager) => outbox.publish(message, { manager }));
      throw new Error('ambient rolls back');
    }),
  ).rejects.toThrow('ambient rolls back');
  expect(await messages('acc-5')).toBe(1);
});

it('without ClsModule the app still starts; publish without a manager throws', async () => {
  const other = await boot(false);
  try {
    await expect(
      other.get(OutboxRepository).publish({ destination: 'accounts', type: 'x', payload: 1 }),
    ).rejects.toBeInstanceOf(OutboxTransactionRequiredError);
  } finally {
    await other.close();
  }
});
