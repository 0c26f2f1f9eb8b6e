/**
 * `outbox.relay.mode: 'wal'` through SagaOutboxModule: the WAL relay replaces the polling relay
 * (publishing through the module's broker, events on OutboxRelayService, slot lag readable), and
 * what it cannot run on fails the startup with a typed error: embedded PGlite, a server without
 * `wal_level = logical`, a database without the publication.
 */
import 'reflect-metadata';
import { Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { randomUUID } from 'node:crypto';
import { openOutboxTestContext } from '@test/support/outbox-test-support';
import { createTestDatabase, withClient } from '@test/support/pg';
import { PrivatePostgres } from '@test/support/private-postgres';
import { createWalTestDatabase, dropSlots, type WalTestDatabase } from '@test/support/wal-postgres';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import type { OutboxEvent } from '../../core/outbox/outbox-events';
import {
  WalLevelNotLogicalError,
  WalPublicationMissingError,
  WalRelayUnsupportedError,
} from '../../core/outbox/wal-relay-errors';
import { waitUntil } from '../../testing/async';
import { SagaOutboxModule } from '../saga-outbox.module';
import type { SagaOutboxModuleOptions } from '../saga-outbox.options';
import { SageDatabase } from '../sage-database';
import { OutboxDeadLettersService, OutboxRelayService, OutboxRepository } from './outbox.providers';

jest.setTimeout(90_000);

let db: WalTestDatabase;
beforeAll(async () => {
  db = await createWalTestDatabase();
});
afterAll(async () => {
  await db?.cleanup();
});

async function boot(options: SagaOutboxModuleOptions): Promise<INestApplicationContext> {
  @Module({ imports: [SagaOutboxModule.forRoot(options)] })
  class AppModule {}
  const app = await NestFactory.createApplicationContext(AppModule, {
    logger: false,
    abortOnError: false,
  });
  try {
    await app.init();
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }
  return app;
}

it('runs the WAL relay instead of the polling relay, with the same events', async () => {
  const broker = new InMemoryBroker();
  const slot = `nest_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const app = await boot({
    postgres: { ...db.connection, poolSize: 4 },
    broker,
    outbox: { relay: { mode: 'wal', wal: { slot } }, retention: { enabled: false } },
  });
  try {
    const service = app.get(OutboxRelayService);
    expect(service.relay).toBeUndefined();
    expect(service.walRelay).toBeDefined();
    const events: OutboxEvent[] = [];
    service.onEvent((e) => events.push(e));
    await waitUntil(() => service.walRelay!.stats.leader, 'the WAL relay streams', 15_000);
    const outbox = app.get(OutboxRepository);
    const { dataSource } = app.get(SageDatabase);
    const ids = await dataSource.transaction((manager) =>
      outbox.publish(
        [1, 2, 3].map((n) => ({ destination: 'wal-nest', type: 't', key: 'k', payload: { n } })),
        { manager },
      ),
    );
    await waitUntil(() => broker.published.length === 3, 'published');
    expect(broker.published.map((m) => m.id)).toEqual(ids);
    await waitUntil(
      () => events.filter((e) => e.type === 'outbox.published').length === 3,
      'published events',
    );
    expect(events.find((e) => e.type === 'outbox.published')).toMatchObject({ path: 'relay' });
    const lag = await service.walRelay!.slotLag();
    expect(lag).toMatchObject({ active: true });
  } finally {
    await app.close();
  }
});

it('publishes rows written before its slot existed (catch-up), then streams, each message once', async () => {
  const writer = await openOutboxTestContext(db.connection, 2);
  const broker = new InMemoryBroker();
  const destination = `before-${randomUUID().slice(0, 8)}`;
  const slot = `nest_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const before = await writer.commit(
    [1, 2].map((n) => ({ destination, type: 't', key: 'k', payload: { n } })),
  );
  const app = await boot({
    postgres: { ...db.connection, poolSize: 4 },
    broker,
    outbox: { relay: { mode: 'wal', wal: { slot } }, retention: { enabled: false } },
  });
  try {
    const service = app.get(OutboxRelayService);
    await waitUntil(() => service.walRelay!.stats.leader, 'the WAL relay streams', 15_000);
    const after = await writer.commit({ destination, type: 't', key: 'k', payload: { n: 3 } });
    await waitUntil(
      () => broker.published.filter((m) => m.destination === destination).length === 3,
      'all three published',
    );
    expect(broker.published.filter((m) => m.destination === destination).map((m) => m.id)).toEqual([
      ...before,
      ...after,
    ]);
  } finally {
    await app.close();
    await writer.close();
  }
});

it('sends a dead letter replayed while it streams, without a takeover (catch-up while streaming)', async () => {
  const broker = new InMemoryBroker();
  const destination = `replay-${randomUUID().slice(0, 8)}`;
  const slot = `nest_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  broker.setFault((m) =>
    m.destination === destination ? { error: 'rejected', retryable: false } : undefined,
  );
  const app = await boot({
    postgres: { ...db.connection, poolSize: 4 },
    broker,
    outbox: {
      relay: { mode: 'wal', wal: { slot, catchUpCheckMs: 100 } },
      retention: { enabled: false },
    },
  });
  try {
    const service = app.get(OutboxRelayService);
    await waitUntil(() => service.walRelay!.stats.leader, 'the WAL relay streams', 15_000);
    const outbox = app.get(OutboxRepository);
    const deadLetters = app.get(OutboxDeadLettersService);
    const { dataSource } = app.get(SageDatabase);
    const status = async (id: string): Promise<string> =>
      (
        (await dataSource.query(`SELECT status FROM sage.outbox_message WHERE id = $1`, [id])) as [
          { status: string },
        ]
      )[0].status;
    const [id] = await dataSource.transaction((manager) =>
      outbox.publish({ destination, type: 't', key: 'k', payload: {} }, { manager }),
    );
    await waitUntil(async () => (await status(id!)) === 'dead_letter', 'dead-lettered');
    const published: string[] = [];
    service.onEvent((e) => {
      if (e.type === 'outbox.published') published.push(e.messageId);
    });
    // The broker takes it now; an operator replays it (an UPDATE: the stream does not carry it).
    broker.setFault(undefined);
    await deadLetters.replay(id!);
    await waitUntil(async () => (await status(id!)) === 'sent', 'sent by the catch-up', 15_000);
    // Reported once the mark's reply is back (a moment after the row reads `sent`).
    await waitUntil(() => published.includes(id!), 'its published event');
    expect(broker.published.filter((m) => m.id === id)).toHaveLength(1);
    expect(published).toEqual([id]);
    // The stream goes on after the catch-up, each message once.
    const [next] = await dataSource.transaction((manager) =>
      outbox.publish({ destination, type: 't', key: 'k', payload: { n: 2 } }, { manager }),
    );
    await waitUntil(async () => (await status(next!)) === 'sent', 'streamed after it');
    expect(broker.published.filter((m) => m.destination === destination).map((m) => m.id)).toEqual([
      id,
      next,
    ]);
  } finally {
    await app.close();
  }
});

it('fails the startup when the publication is missing, naming the migration', async () => {
  const bare = await createTestDatabase(); // migrated, without outboxWalPublicationMigration()
  try {
    await expect(
      boot({
        postgres: { ...bare.connection, poolSize: 2 },
        broker: new InMemoryBroker(),
        outbox: { relay: { mode: 'wal' }, retention: { enabled: false } },
      }),
    ).rejects.toThrow(WalPublicationMissingError);
  } finally {
    await dropSlots(bare.name);
    await bare.drop();
  }
});

it('fails the startup on embedded PGlite, which has no logical replication', async () => {
  const error = await boot({
    broker: new InMemoryBroker(),
    outbox: { relay: { mode: 'wal' }, retention: { enabled: false } },
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WalRelayUnsupportedError);
  expect((error as Error).message).toContain('outbox.relay.mode "polling"');
});

it('fails the startup when wal_level is not logical, naming the setting and the fix', async () => {
  const server = await PrivatePostgres.start();
  const savedPort = process.env.PGPORT;
  try {
    process.env.PGPORT = String(server.port);
    await withClient(undefined, (c) => c.query(`ALTER SYSTEM SET wal_level = 'replica'`));
    await server.stop();
    await server.resume();
    const replicaDb = await createTestDatabase();
    const error = await boot({
      postgres: { ...replicaDb.connection, poolSize: 2 },
      broker: new InMemoryBroker(),
      outbox: { relay: { mode: 'wal' }, retention: { enabled: false } },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WalLevelNotLogicalError);
    expect((error as Error).message).toContain('wal_level = logical');
    expect((error as Error).message).toContain('wal_level = replica');
  } finally {
    if (savedPort === undefined) delete process.env.PGPORT;
    else process.env.PGPORT = savedPort;
    await server.destroy();
  }
});
