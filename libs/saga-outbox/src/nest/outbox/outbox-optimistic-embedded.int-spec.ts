/**
 * Optimistic sending on the embedded default (PGlite behind its socket multiplexer, in-memory
 * broker): the same SQL and the same after-commit hook as on PostgreSQL. The app runs no relay, so
 * a published message can only have been sent optimistically.
 */
import 'reflect-metadata';
import { Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import type { OutboxEvent } from '../../core/outbox/outbox-events';
import { SagaOutboxModule } from '../saga-outbox.module';
import { SageDatabase } from '../sage-database';
import { OUTBOX_BROKER, OutboxRelayService, OutboxRepository } from './outbox.providers';

jest.setTimeout(60_000);

let app: INestApplicationContext;

beforeAll(async () => {
  @Module({
    imports: [
      SagaOutboxModule.forRoot({
        outbox: {
          relay: { enabled: false },
          retention: { enabled: false },
          optimistic: { enabled: true, timeoutMs: 2000 },
        },
      }),
    ],
  })
  class AppModule {}
  app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  await app.init();
});
afterAll(async () => {
  await app?.close();
});

it('embedded PGlite: committed messages are sent optimistically; rolled-back ones are not', async () => {
  const db = app.get(SageDatabase);
  expect(db.embedded).toBe(true);
  const broker = app.get<InMemoryBroker>(OUTBOX_BROKER);
  const service = app.get(OutboxRelayService);
  const events: OutboxEvent[] = [];
  service.onEvent((e) => events.push(e));
  const outbox = app.get(OutboxRepository);
  const message = (key: string) => ({
    destination: 'demo',
    type: 'demo.happened',
    key,
    payload: { key },
  });

  const ids = await db.dataSource.transaction((manager) =>
    outbox.publish([message('a'), message('a'), message('b')], { manager }),
  );
  await expect(
    db.dataSource.transaction(async (manager) => {
      await outbox.publish(message('rolled-back'), { manager });
      throw new Error('rollback');
    }),
  ).rejects.toThrow('rollback');
  await service.optimistic!.idle();

  // Key 'a' in commit order (one per key per round), 'b' alongside; nothing rolled back.
  expect(broker.published.map((m) => m.id).sort()).toEqual([...ids].sort());
  expect(broker.published.filter((m) => m.key === 'a').map((m) => m.id)).toEqual(ids.slice(0, 2));
  expect(
    events.filter((e) => e.type === 'outbox.published' && e.path === 'optimistic'),
  ).toHaveLength(3);
  const rows = (await db.dataSource.query(
    `SELECT status, count(*)::int AS n FROM sage.outbox_message GROUP BY status`,
  )) as { status: string; n: number }[];
  expect(rows).toEqual([{ status: 'sent', n: 3 }]);
});
