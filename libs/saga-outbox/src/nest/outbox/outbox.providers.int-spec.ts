import { Test } from '@nestjs/testing';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { OutboxTransactionRequiredError } from '../../core/outbox/outbox-errors';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';
import { SageDatabase } from '../sage-database';
import {
  OUTBOX_AMBIENT_TRANSACTION,
  OUTBOX_BROKER,
  OUTBOX_OPTIONS,
  OutboxDeadLettersService,
  OutboxRelayService,
  OutboxRepository,
  outboxProviders,
} from './outbox.providers';

jest.setTimeout(60_000);

let db: TestDatabase;
let ctx: OutboxTestContext;
beforeAll(async () => {
  db = await createTestDatabase();
  ctx = await openOutboxTestContext(db.connection);
});
afterAll(async () => {
  await ctx?.close();
  await db?.drop();
});

it('wires repository, relay (started on bootstrap, drained on shutdown) and dead letters', async () => {
  const broker = new InMemoryBroker();
  const moduleRef = await Test.createTestingModule({
    providers: [
      {
        provide: SageDatabase,
        useValue: new SageDatabase(ctx.dataSource, 'sage', { dataSource: false }),
      },
      { provide: OUTBOX_BROKER, useValue: broker },
      {
        provide: OUTBOX_OPTIONS,
        useValue: { relay: { pollIntervalMs: 20 }, retention: { enabled: false } },
      },
      { provide: OUTBOX_AMBIENT_TRANSACTION, useValue: () => undefined },
      ...outboxProviders,
    ],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  try {
    const outbox = app.get(OutboxRepository);
    const [id] = await ctx.dataSource.transaction((manager) =>
      outbox.publish(
        { destination: 'nest', type: 'wired', key: 'k', payload: { ok: true } },
        { manager },
      ),
    );
    await expect(
      outbox.publish({ destination: 'nest', type: 'x', payload: 1 }),
    ).rejects.toBeInstanceOf(OutboxTransactionRequiredError);
    await broker.waitFor((published) => published.some((m) => m.id === id));
    expect(app.get(OutboxRelayService).relay?.stats.listening).toBe(true);
    await expect(app.get(OutboxDeadLettersService).list()).resolves.toMatchObject({ messages: [] });
  } finally {
    await app.close();
  }
  expect(app.get(OutboxRelayService).relay?.stats.listening).toBe(false);
});
