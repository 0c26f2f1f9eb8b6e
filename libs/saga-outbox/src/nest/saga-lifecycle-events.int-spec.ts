/**
 * Saga lifecycle events through the outbox (`sagaEvents: { destination }`), on real PostgreSQL:
 * each event is written in the transaction of the state change it describes, so it exists exactly
 * once per change, and the relay publishes a saga's events in order (key = saga id).
 */
import 'reflect-metadata';
import { Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { EntityManager } from 'typeorm';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { InMemoryBroker } from '../brokers/memory/in-memory-broker';
import { InvalidOptionsError } from '../core/errors';
import { defineSaga } from '../core/saga/saga-builder';
import type { SagaLifecycleEventPayload } from '../core/saga/saga-lifecycle-events';
import { waitUntil } from '../testing/async';
import { SagaOutboxModule } from './saga-outbox.module';
import type { SagaOutboxModuleOptions } from './saga-outbox.options';
import { SagaService } from './saga.service';
import { SageDatabase } from './sage-database';

jest.setTimeout(60_000);

const DESTINATION = 'saga-lifecycle';
const fast = { initialDelayMs: 1, maxDelayMs: 5 };

/** a → (b ‖ c); b fails its first attempt: a failed attempt must announce nothing. */
let bAttempts = 0;
const completing = defineSaga<{ n: number }, EntityManager>('ev-completing')
  .step('a', { run: () => ({ a: 1 }), compensate: () => undefined })
  .step('b', {
    dependsOn: ['a'],
    retry: { maxAttempts: 3, ...fast },
    run: () => {
      if (++bAttempts === 1) throw new Error('transient');
      return { b: 1 };
    },
    compensate: () => undefined,
  })
  .step('c', { dependsOn: ['a'], run: () => ({ c: 1 }), compensate: () => undefined })
  .build();

const compensating = defineSaga<{ n: number }, EntityManager>('ev-compensating')
  .step('reserve', { run: () => ({ reserved: true }), compensate: () => undefined })
  .step('charge', {
    dependsOn: ['reserve'],
    retry: { maxAttempts: 1 },
    run: () => {
      throw new Error('card declined');
    },
    compensate: () => undefined,
  })
  .build();

const failing = defineSaga<{ n: number }, EntityManager>('ev-failing')
  .step('reserve', {
    run: () => ({ reserved: true }),
    compensationRetry: { maxAttempts: 1 },
    compensate: () => {
      throw new Error('release refused');
    },
  })
  .step('charge', {
    dependsOn: ['reserve'],
    retry: { maxAttempts: 1 },
    run: () => {
      throw new Error('card declined');
    },
    compensate: () => undefined,
  })
  .build();

let db: TestDatabase;
let app: INestApplicationContext;
let broker: InMemoryBroker;

async function boot(options: SagaOutboxModuleOptions): Promise<INestApplicationContext> {
  @Module({ imports: [SagaOutboxModule.forRoot(options)] })
  class AppModule {}
  const instance = await NestFactory.createApplicationContext(AppModule, {
    logger: false,
    abortOnError: false,
  });
  await instance.init();
  return instance;
}

function postgres(): SagaOutboxModuleOptions['postgres'] {
  const c = db.connection;
  return { host: c.host, port: c.port, user: c.user, password: c.password, database: c.database };
}

interface EventRow {
  type: string;
  key: string;
  saga_id: string;
  payload: SagaLifecycleEventPayload;
}

/** A saga's lifecycle events in publish order: (txid, seq) is the order the relay keeps per key. */
async function eventsOf(sagaId: string): Promise<EventRow[]> {
  return (await app.get(SageDatabase).dataSource.query(
    `SELECT type, key, saga_id, payload FROM sage.outbox_message
      WHERE destination = $1 AND saga_id = $2 ORDER BY txid, seq`,
    [DESTINATION, sagaId],
  )) as EventRow[];
}

const summary = (rows: EventRow[]) =>
  rows.map(
    (r) => `${r.type.replace('sage.saga.', '')}${r.payload.step ? `:${r.payload.step}` : ''}`,
  );

/** The broker saw the saga's events exactly once each, in the stored order. */
async function expectPublishedInOrder(sagaId: string, rows: EventRow[]): Promise<void> {
  const ids = new Set((await eventIds(sagaId)).map((r) => r.id));
  await broker.waitFor((published) => published.filter((m) => ids.has(m.id)).length >= ids.size);
  const published = broker.published.filter(
    (m) => m.key === sagaId && m.destination === DESTINATION,
  );
  expect(published.map((m) => m.type)).toEqual(rows.map((r) => r.type));
  expect(new Set(published.map((m) => m.id)).size).toBe(published.length);
}
async function eventIds(sagaId: string): Promise<{ id: string }[]> {
  return (await app
    .get(SageDatabase)
    .dataSource.query(
      `SELECT id FROM sage.outbox_message WHERE destination = $1 AND saga_id = $2`,
      [DESTINATION, sagaId],
    )) as { id: string }[];
}

beforeAll(async () => {
  db = await createTestDatabase();
  broker = new InMemoryBroker();
  app = await boot({
    postgres: postgres(),
    sagas: [completing, compensating, failing] as never[],
    broker,
    sagaEvents: { destination: DESTINATION },
    saga: { recoveryIntervalMs: 50 },
    outbox: { relay: { pollIntervalMs: 20 }, retention: { enabled: false } },
  });
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

it('a completed saga: started, one step-completed per step, completed — once each, in order', async () => {
  const sagas = app.get(SagaService);
  const { sagaId } = await sagas.start('ev-completing', { n: 1 });
  expect((await sagas.waitFor(sagaId)).status).toBe('completed');
  expect(bAttempts).toBe(2);

  const rows = await eventsOf(sagaId);
  const steps = summary(rows);
  // b and c run concurrently: either order between them.
  expect(steps.slice(0, 2)).toEqual(['started', 'step-completed:a']);
  expect([...steps.slice(2, 4)].sort()).toEqual(['step-completed:b', 'step-completed:c']);
  expect(steps.slice(4)).toEqual(['completed']);
  for (const r of rows) {
    expect(r.key).toBe(sagaId);
    expect(r.payload).toMatchObject({ sagaId, saga: 'ev-completing' });
  }
  expect(rows[0]!.payload).toEqual({
    sagaId,
    saga: 'ev-completing',
    step: null,
    status: 'running',
    error: null,
  });
  expect(rows[4]!.payload).toEqual({
    sagaId,
    saga: 'ev-completing',
    step: null,
    status: 'completed',
    error: null,
  });
  await expectPublishedInOrder(sagaId, rows);
});

it('a compensated saga: started, the completed step, compensated with the reason — once each, in order', async () => {
  const sagas = app.get(SagaService);
  const { sagaId } = await sagas.start('ev-compensating', { n: 2 });
  expect((await sagas.waitFor(sagaId)).status).toBe('compensated');

  const rows = await eventsOf(sagaId);
  expect(summary(rows)).toEqual(['started', 'step-completed:reserve', 'compensated:charge']);
  expect(rows[2]!.payload).toEqual({
    sagaId,
    saga: 'ev-compensating',
    step: 'charge',
    status: 'compensated',
    error: expect.stringContaining('card declined') as unknown as string,
  });
  await expectPublishedInOrder(sagaId, rows);
});

it('a saga whose compensation fails: failed, with the compensation step and reason', async () => {
  const sagas = app.get(SagaService);
  const { sagaId } = await sagas.start('ev-failing', { n: 3 });
  expect((await sagas.waitFor(sagaId)).status).toBe('failed');

  const rows = await eventsOf(sagaId);
  expect(summary(rows)).toEqual(['started', 'step-completed:reserve', 'failed:reserve']);
  expect(rows[2]!.payload).toMatchObject({ status: 'failed', step: 'reserve' });
  expect(rows[2]!.payload.error).toContain('release refused');
  await expectPublishedInOrder(sagaId, rows);
});

it("a start rolled back with the caller's transaction announces nothing; a committed one does", async () => {
  const sagas = app.get(SagaService);
  const { dataSource } = app.get(SageDatabase);
  let rolledBack: string | undefined;
  await expect(
    dataSource.transaction(async (manager) => {
      rolledBack = (await sagas.start('ev-completing', { n: 4 }, { manager })).sagaId;
      // Inside the transaction the event is there…
      expect(
        await manager.query(
          `SELECT count(*)::int AS n FROM sage.outbox_message WHERE saga_id = $1`,
          [rolledBack],
        ),
      ).toEqual([{ n: 1 }]);
      throw new Error('caller rolls back');
    }),
  ).rejects.toThrow('caller rolls back');
  // …and gone with it.
  expect(await eventsOf(rolledBack!)).toEqual([]);
  await expect(sagas.get(rolledBack!)).rejects.toThrow();

  const { sagaId } = await dataSource.transaction((manager) =>
    sagas.start('ev-compensating', { n: 5 }, { manager }),
  );
  sagas.resumePending();
  expect((await sagas.waitFor(sagaId)).status).toBe('compensated');
  expect(summary(await eventsOf(sagaId))).toEqual([
    'started',
    'step-completed:reserve',
    'compensated:charge',
  ]);
});

it('writes no lifecycle events unless enabled, and rejects a bad sagaEvents option', async () => {
  // The three sagas above wrote only to DESTINATION; nothing else uses the sage.saga.* types.
  const [{ n }] = (await app
    .get(SageDatabase)
    .dataSource.query(
      `SELECT count(*)::int AS n FROM sage.outbox_message WHERE type LIKE 'sage.saga.%' AND destination <> $1`,
      [DESTINATION],
    )) as [{ n: number }];
  expect(n).toBe(0);

  const quiet = new InMemoryBroker();
  const other = await boot({
    postgres: postgres(),
    sagas: [
      defineSaga<unknown, EntityManager>('ev-quiet')
        .step('only', { run: () => 1, compensatable: false })
        .build(),
    ] as never[],
    broker: quiet,
    outbox: { retention: { enabled: false } },
  });
  try {
    const { sagaId } = await other.get(SagaService).start('ev-quiet', {});
    expect((await other.get(SagaService).waitFor(sagaId)).status).toBe('completed');
    const rows = (await other
      .get(SageDatabase)
      .dataSource.query(`SELECT count(*)::int AS n FROM sage.outbox_message WHERE saga_id = $1`, [
        sagaId,
      ])) as [{ n: number }];
    expect(rows[0].n).toBe(0);
  } finally {
    await other.close();
  }

  await expect(
    boot({ postgres: postgres(), sagaEvents: { destination: '' } }),
  ).rejects.toBeInstanceOf(InvalidOptionsError);
});

it('keeps every event sent (relay) and none claimed or dead', async () => {
  await waitUntil(
    async () => {
      const [row] = (await app
        .get(SageDatabase)
        .dataSource.query(
          `SELECT count(*) FILTER (WHERE status <> 'sent')::int AS unsent FROM sage.outbox_message WHERE destination = $1`,
          [DESTINATION],
        )) as [{ unsent: number }];
      return row.unsent === 0;
    },
    'all lifecycle events to be sent',
    10_000,
  );
});
