/**
 * Chaos: SagaOptions.firstStepInStart under kill -9. A process is killed while one saga's first
 * step runs inside start()'s transaction (nothing committed yet) and another's second step runs
 * (its start and first step committed). Guarantee under test (DESIGN.md §1, docs/sagas.md): the
 * first leaves no saga and no effect (its caller saw start() fail), the second is a started saga
 * that a new process completes, every step's effect exactly once; the first, started again with
 * the same idempotency key, completes too.
 */
import type { DataSource } from 'typeorm';
import { createSagaDataSource } from '../../libs/saga-outbox/src/persistence/postgres/data-source';
import { createTestDatabase, dataSourceOptions, type TestDatabase } from '../support/pg';
import { pollUntil, type WorkerHandle } from './workers/saga-worker';
import { INLINE_EFFECTS_DDL, spawnInlineWorker } from './workers/first-step-in-start-worker';

const LEASE_MS = 1_000;

describe('firstStepInStart: kill -9 inside the start transaction and after it (PostgreSQL)', () => {
  let db: TestDatabase | undefined;
  let ds: DataSource | undefined;
  const workers: WorkerHandle[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    ds = createSagaDataSource(
      dataSourceOptions(db.name, { poolSize: 2, applicationName: 'chaos-test' }),
    );
    await ds.initialize();
    await ds.query(INLINE_EFFECTS_DDL);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(workers.splice(0).map((w) => w.kill('SIGKILL')));
    await ds?.destroy();
    await db?.drop();
  }, 60_000);

  const sagas = async (): Promise<{ key: string; id: string; status: string }[]> =>
    ds!.query(
      `SELECT idempotency_key AS key, id, status FROM sage.saga_instance ORDER BY idempotency_key`,
    );
  const effects = async (): Promise<{ key: string; step: string; n: number }[]> =>
    ds!.query(`
      SELECT i.idempotency_key AS key, e.step, count(*)::int AS n
      FROM public.effects e JOIN sage.saga_instance i ON i.id = e.saga_id
      GROUP BY 1, 2 ORDER BY 1, 2`);

  it('leaves no saga for the uncommitted start, and a started saga that a new process completes', async () => {
    const a = spawnInlineWorker({
      database: db!.name,
      ownerId: 'A',
      mode: 'start',
      leaseMs: LEASE_MS,
    });
    workers.push(a);
    const blockedX = await a.waitForMessage((m) => m.blocked === 'a' && m.key === 'x', 60_000);
    await a.waitForMessage((m) => m.blocked === 'b' && m.key === 'y', 60_000);
    await a.kill('SIGKILL');

    // x: its insert and first step were one open transaction, gone with the process.
    const afterKill = await sagas();
    expect(afterKill.map((s) => [s.key, s.status])).toEqual([['y', 'running']]);
    const [orphans] = await ds!.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM public.effects WHERE saga_id = $1`,
      [blockedX.sagaId],
    );
    expect(orphans!.n).toBe(0);
    // y: its start and first step committed together; its second step's write did not.
    expect(await effects()).toEqual([{ key: 'y', step: 'a', n: 1 }]);

    const b = spawnInlineWorker({
      database: db!.name,
      ownerId: 'B',
      mode: 'recover',
      leaseMs: LEASE_MS,
    });
    workers.push(b);
    await b.waitForMessage((m) => m.started === 'x', 60_000);
    const done = await pollUntil(
      'both sagas completed',
      sagas,
      (rows) => rows.length === 2 && rows.every((r) => r.status === 'completed'),
      60_000,
    );
    expect(done.map((s) => s.key)).toEqual(['x', 'y']);
    expect(await effects()).toEqual([
      { key: 'x', step: 'a', n: 1 },
      { key: 'x', step: 'b', n: 1 },
      { key: 'x', step: 'c', n: 1 },
      { key: 'y', step: 'a', n: 1 },
      { key: 'y', step: 'b', n: 1 },
      { key: 'y', step: 'c', n: 1 },
    ]);
    const owners = await ds!.query<{ key: string; step: string; owner: string }[]>(`
      SELECT i.idempotency_key AS key, e.step, e.owner
      FROM public.effects e JOIN sage.saga_instance i ON i.id = e.saga_id
      WHERE i.idempotency_key = 'y' ORDER BY e.step`);
    // y's first step ran in A's start; B resumed it from its second step.
    expect(owners.map((o) => o.owner)).toEqual(['A', 'B', 'B']);
  }, 180_000);
});
