import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import type { DataSource, EntityManager } from 'typeorm';
import { createTestDatabase, dataSourceOptions, type TestDatabase } from '@test/support/pg';
import { InvalidOptionsError } from '../../core/errors';
import { OutboxPublisher } from '../../core/outbox/outbox-publisher';
import type { NewSaga } from '../../core/ports/saga-store';
import { createSagaDataSource } from './data-source';
import { PostgresInboxStore } from './postgres-inbox-store';
import { PostgresOutboxStore } from './postgres-outbox-store';
import { PostgresOperatorQueries } from './postgres-operator-queries';
import { PostgresSagaStore } from './postgres-saga-store';

jest.setTimeout(60_000);

describe('PostgresOperatorQueries', () => {
  let db: TestDatabase;
  let dataSource: DataSource;
  let sagas: PostgresSagaStore;
  let outbox: PostgresOutboxStore;

  beforeAll(async () => {
    db = await createTestDatabase();
    dataSource = await createSagaDataSource(
      dataSourceOptions(db.name, { poolSize: 4 }),
    ).initialize();
    sagas = new PostgresSagaStore(dataSource);
    outbox = new PostgresOutboxStore(dataSource);
  });

  afterAll(async () => {
    if (dataSource?.isInitialized) await dataSource.destroy();
    await db?.drop();
  });

  const newSaga = (overrides: Partial<NewSaga>): NewSaga => ({
    id: randomUUID(),
    name: 'stalls',
    version: 'v1',
    input: {},
    idempotencyKey: null,
    stepNames: ['a'],
    owner: 'w1',
    leaseMs: 600_000,
    timeoutMs: null,
    ...overrides,
  });

  it('counts a live saga as stalled only once it has been due and unclaimed past the grace', async () => {
    const unowned = newSaga({ owner: null });
    const expired = newSaga({ leaseMs: 1 }); // lease ran out at once: its owner "died"
    const healthy = newSaga({});
    const parked = newSaga({});
    for (const s of [unowned, expired, healthy, parked]) await sagas.create(s);
    const fence = { sagaId: parked.id, owner: 'w1' };
    await sagas.runStepTransaction(fence, 'a', 'forward', 1, () =>
      Promise.resolve({ result: null, value: null, awaitReply: { timeoutMs: null } }),
    );
    await expect(sagas.park(fence, 0)).resolves.toBe('parked'); // waits for ever: never due

    const lenient = new PostgresOperatorQueries(dataSource); // 60 s grace
    const strict = new PostgresOperatorQueries(dataSource, { stalledAfterSeconds: 0 });
    const stalledIds = async (q: PostgresOperatorQueries) =>
      (await q.oldestLiveSagas(100)).filter((s) => s.stalled).map((s) => s.id);

    // Just handed to recovery / just expired: a healthy recovery loop would claim them now.
    expect(await stalledIds(lenient)).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 5)); // past the 1 ms lease on any clock
    expect((await stalledIds(strict)).sort()).toEqual([unowned.id, expired.id].sort());
    expect(await strict.liveSagaGroups()).toEqual([
      expect.objectContaining({ name: 'stalls', status: 'running', count: 3, stalled: 2 }),
      expect.objectContaining({ name: 'stalls', status: 'waiting', count: 1, stalled: 0 }),
    ]);
    expect(await strict.sagaStatusCounts()).toEqual({
      running: 3,
      waiting: 1,
      compensating: 0,
      completed: 0,
      compensated: 0,
      failed: 0,
    });
    const [waiting] = await strict.listSagas({ status: 'waiting' }, 10);
    expect(waiting).toMatchObject({ id: parked.id, awaitingSteps: ['a'], replyDeadline: null });
    expect(() => new PostgresOperatorQueries(dataSource, { stalledAfterSeconds: -1 })).toThrow(
      InvalidOptionsError,
    );
    await expect(strict.listSagas({}, 0)).rejects.toThrow(InvalidOptionsError);
  });

  it('counts messages behind their key, and names a long transaction without it holding them back', async () => {
    const q = new PostgresOperatorQueries(dataSource);
    const publisher = new OutboxPublisher<EntityManager>({ writer: outbox });
    const blocker = new Client(db.connection);
    await blocker.connect();
    try {
      // An open transaction with an xid, as a long report or an idle-in-transaction session has.
      await blocker.query("BEGIN; SELECT pg_current_xact_id(); SET application_name = 'blocker'");
      const { rows } = await blocker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await dataSource.transaction((manager) =>
        publisher.publish(
          [
            { destination: 'd', type: 't', key: 'k-1', payload: {} },
            { destination: 'd', type: 't', key: 'k-1', payload: {} },
            { destination: 'd', type: 't', key: 'k-1', payload: {} },
            { destination: 'd', type: 't', key: 'k-2', payload: {} },
            { destination: 'd', type: 't', payload: {} },
          ],
          { manager },
        ),
      );
      // The open transaction holds nothing back: every message is due, two wait for their key.
      expect(await q.outboxPendingBreakdown()).toMatchObject({
        due: 5,
        behindKey: 2,
        backingOff: 0,
        expiredClaims: 0,
      });
      // The server is shared with other test files: an even older transaction may be theirs.
      const oldest = await q.oldestTransaction();
      if (oldest?.pid === rows[0]!.pid)
        expect(oldest).toMatchObject({
          database: db.name,
          state: 'idle in transaction',
          applicationName: 'blocker',
        });
      else expect(oldest?.ageSeconds).toBeGreaterThan(0);
      await blocker.query('COMMIT');
    } finally {
      await blocker.end();
    }
  });

  it('groups outbox dead letters by destination and type and inbox dead letters by consumer', async () => {
    const q = new PostgresOperatorQueries(dataSource);
    const publisher = new OutboxPublisher<EntityManager>({ writer: outbox });
    const ids: string[] = [];
    for (const [destination, type] of [
      ['payments', 'payment.requested'],
      ['payments', 'payment.requested'],
      ['emails', 'email.send'],
    ] as const)
      ids.push(
        ...(await dataSource.transaction((manager) =>
          publisher.publish({ destination, type, payload: {} }, { manager }),
        )),
      );
    const token = randomUUID();
    const claimed = new Set<string>();
    const deadline = Date.now() + 20_000;
    while (ids.some((id) => !claimed.has(id))) {
      if (Date.now() > deadline) throw new Error('could not claim the messages');
      for (const m of await outbox.claim(token, 100, 60_000)) claimed.add(m.id);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await outbox.markFailed(
      token,
      ids.map((id, n) => ({ id, error: `refused ${n}`, delayMs: null })),
    );
    await outbox.release(
      token,
      [...claimed].filter((id) => !ids.includes(id)),
    ); // earlier tests'
    const groups = await q.outboxDeadLetterGroups(10);
    expect(groups.map((g) => [g.destination, g.type, g.count])).toEqual([
      ['payments', 'payment.requested', 2],
      ['emails', 'email.send', 1],
    ]);
    expect(groups[0]!.lastError).toMatch(/^refused \d$/);

    const inbox = new PostgresInboxStore(dataSource);
    for (const [consumer, messageId] of [
      ['b-consumer', 'm1'],
      ['a-consumer', 'm1'],
      ['a-consumer', 'm2'],
    ] as const)
      await inbox.recordFailure({
        consumer,
        messageId,
        error: 'boom',
        maxAttempts: 1,
        message: null,
      });
    expect((await q.inboxDeadLetterGroups()).map((g) => [g.consumer, g.count])).toEqual([
      ['a-consumer', 2],
      ['b-consumer', 1],
    ]);
  });
});
