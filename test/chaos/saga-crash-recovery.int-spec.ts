/**
 * Chaos: a worker process running 200 sagas is killed with SIGKILL (kill -9) part-way through, and
 * a new process finishes them through the recovery loop. Guarantees under test (DESIGN.md §1):
 * every started saga ends `completed` / `compensated` across crashes, and local steps (and
 * compensations) are exactly-once for their database effects.
 */
import type { DataSource } from 'typeorm';
import { createSagaDataSource } from '../../libs/saga-outbox/src/persistence/postgres/data-source';
import { createTestDatabase, dataSourceOptions, type TestDatabase } from '../support/pg';
import {
  CHAOS_STEP_ATTEMPTS,
  CHAOS_STEPS,
  EFFECTS_DDL,
  auditSteps,
  exactlyOnceViolations,
  pollUntil,
  spawnSagaWorker,
  type WorkerHandle,
} from './workers/saga-worker';

const SAGAS = 200;
const LEASE_MS = 1_000;
/** Per test; jest's `testTimeout` is a global option, so the int project's value does not apply. */
const TEST_TIMEOUT_MS = 90_000;

describe('saga crash recovery: kill -9 mid-run, a new process finishes every saga (PostgreSQL)', () => {
  let db: TestDatabase | undefined;
  let dataSource: DataSource | undefined;
  const workers: WorkerHandle[] = [];

  beforeEach(async () => {
    db = undefined;
    dataSource = undefined;
    db = await createTestDatabase();
    dataSource = createSagaDataSource(
      dataSourceOptions(db.name, { poolSize: 2, applicationName: 'chaos-test' }),
    );
    await dataSource.initialize();
    await dataSource.query(EFFECTS_DDL);
  }, 30_000);

  afterEach(async () => {
    // Runs on failure too: no worker outlives its test, no pool or database is left behind.
    await Promise.all(workers.splice(0).map((w) => w.kill('SIGKILL')));
    await dataSource?.destroy();
    await db?.drop();
  }, 30_000);

  const ds = (): DataSource => {
    if (!dataSource?.isInitialized) throw new Error('test database not initialised');
    return dataSource;
  };

  async function counts(): Promise<{ terminal: number; stepsDone: number; sagas: number }> {
    const [row] = await ds().query<{ terminal: number; stepsDone: number; sagas: number }[]>(`
      SELECT (SELECT count(*) FROM sage.saga_instance
               WHERE status IN ('completed', 'compensated', 'failed'))::int AS terminal,
             (SELECT count(*) FROM sage.saga_instance)::int AS sagas,
             (SELECT count(*) FROM sage.saga_step WHERE status <> 'pending')::int AS "stepsDone"`);
    return row!;
  }

  /**
   * Worker A starts the sagas and is killed -9 once about a third of all steps are done; worker B
   * (the same script, recovery only) starts afterwards and finishes everything.
   */
  async function killMidRunThenRecover(failEvery: number): Promise<{
    atKill: { terminal: number; stepsDone: number; sagas: number };
    ownersBySaga: Map<string, Set<string>>;
  }> {
    const common = {
      database: db!.name,
      leaseMs: LEASE_MS,
      recoveryIntervalMs: 100,
      maxConcurrentSagas: 40,
    };
    const spawnedAt = Date.now();
    const a = spawnSagaWorker({
      ...common,
      mode: 'start',
      ownerId: 'worker-A',
      count: SAGAS,
      failEvery,
    });
    workers.push(a);
    const totalSteps = SAGAS * CHAOS_STEPS.length;
    // Every saga must exist before the kill (a saga never started cannot be recovered).
    await pollUntil(
      'worker A to start every saga and finish a third of the steps',
      async () => {
        if (a.hasExited) throw new Error(`worker A exited early; stderr:\n${a.stderr()}`);
        return counts();
      },
      (c) => c.sagas === SAGAS && c.stepsDone >= totalSteps / 3,
      45_000,
      5,
    );
    await a.kill('SIGKILL');
    expect((await a.exited).signal).toBe('SIGKILL');
    const atKill = await counts();
    // Sagas by how many of their steps were recorded done when A died (a spread of stages is wanted).
    const stages = await ds().query<{ done: number; sagas: number }[]>(`
      SELECT done, count(*)::int AS sagas FROM (
        SELECT count(*) FILTER (WHERE status <> 'pending')::int AS done
        FROM sage.saga_step GROUP BY saga_id) per_saga
      GROUP BY done ORDER BY done`);

    const killedAt = Date.now();
    const b = spawnSagaWorker({ ...common, mode: 'recover', ownerId: 'worker-B' });
    workers.push(b);
    await pollUntil(
      `all ${SAGAS} sagas terminal after recovery`,
      async () => {
        if (b.hasExited) throw new Error(`worker B exited early; stderr:\n${b.stderr()}`);
        return counts();
      },
      (c) => c.terminal === SAGAS,
      60_000,
      50,
    );
    await b.kill('SIGKILL');
    const lastProgress = (w: WorkerHandle): unknown =>
      [...w.messages].reverse().find((m) => 'progress' in m)?.progress;
    const logLines = (w: WorkerHandle): number => w.stderr().split('\n').filter(Boolean).length;
    console.log(
      `kill -9 of worker A ${killedAt - spawnedAt} ms after spawn, at ${JSON.stringify(atKill)}; ` +
        `sagas by steps done then: ${stages.map((r) => `${r.done}:${r.sagas}`).join(' ')}; ` +
        `worker B finished ${Date.now() - killedAt} ms after the kill. ` +
        `A last progress ${JSON.stringify(lastProgress(a))} (${logLines(a)} log lines), ` +
        `B last progress ${JSON.stringify(lastProgress(b))} (${logLines(b)} log lines)`,
    );

    const ownersBySaga = new Map<string, Set<string>>();
    const rows = await ds().query<{ saga_id: string; owner: string }[]>(
      'SELECT DISTINCT saga_id, owner FROM public.effects',
    );
    for (const r of rows)
      ownersBySaga.set(r.saga_id, (ownersBySaga.get(r.saga_id) ?? new Set()).add(r.owner));
    return { atKill, ownersBySaga };
  }

  /** Chaos that did not hit anything proves nothing: the kill must have interrupted real work. */
  function expectTheKillHitMidRun(
    atKill: { terminal: number; stepsDone: number; sagas: number },
    ownersBySaga: Map<string, Set<string>>,
  ): void {
    expect(atKill.stepsDone).toBeGreaterThan(0);
    expect(atKill.terminal).toBeLessThan(SAGAS);
    const owners = [...ownersBySaga.values()];
    // Worker B did resume work, and some sagas were taken over half-done (steps by A and by B).
    expect(owners.some((o) => o.has('worker-B'))).toBe(true);
    expect(owners.filter((o) => o.has('worker-A') && o.has('worker-B')).length).toBeGreaterThan(0);
  }

  it(
    'completes all 200 sagas with every step effect exactly once and no step left pending',
    async () => {
      const { atKill, ownersBySaga } = await killMidRunThenRecover(0);

      const statuses = await ds().query<{ status: string; n: number }[]>(
        'SELECT status, count(*)::int AS n FROM sage.saga_instance GROUP BY status',
      );
      expect(statuses).toEqual([{ status: 'completed', n: SAGAS }]);
      expect(await exactlyOnceViolations(ds())).toEqual([]);

      const [steps] = await ds().query<{ total: number; pending: number; effects: number }[]>(`
      SELECT (SELECT count(*) FROM sage.saga_step)::int AS total,
             (SELECT count(*) FROM sage.saga_step WHERE status = 'pending')::int AS pending,
             (SELECT count(*) FROM public.effects)::int AS effects`);
      expect(steps).toEqual({
        total: SAGAS * CHAOS_STEPS.length,
        pending: 0,
        effects: SAGAS * CHAOS_STEPS.length,
      });

      expectTheKillHitMidRun(atKill, ownersBySaga);
      // Sequence values are consumed by inserts that later roll back: a gap means some step wrote
      // its effect and was then killed (or fenced out) before commit, i.e. the scenario was exercised.
      const [seq] = await ds().query<{ issued: string }[]>(
        'SELECT last_value AS issued FROM public.effects_id_seq',
      );
      expect(Number(seq!.issued)).toBeGreaterThan(SAGAS * CHAOS_STEPS.length);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'with a step failing by design in every 4th saga: those compensate, compensations exactly once',
    async () => {
      const failEvery = 4;
      const { atKill, ownersBySaga } = await killMidRunThenRecover(failEvery);

      const audit = await auditSteps(ds());
      const sagas = new Map(audit.map((r) => [r.sagaId, r]));
      expect(sagas.size).toBe(SAGAS);
      const wrongStatus = [...sagas.values()]
        .filter((r) => r.sagaStatus !== (r.i % failEvery === 0 ? 'compensated' : 'completed'))
        .map((r) => `saga #${r.i}: ${r.sagaStatus}`);
      expect(wrongStatus).toEqual([]);
      expect(await exactlyOnceViolations(ds())).toEqual([]);

      // The failing step: exactly the configured attempts, each write rolled back, final status
      // failed; the step after it never ran; `a` (a dependency of everything) was undone.
      const failing = audit.filter((r) => r.i % failEvery === 0);
      const byStep = (name: string): typeof failing => failing.filter((r) => r.step === name);
      expect(
        byStep('c').filter(
          (r) => r.stepStatus !== 'failed' || r.attempts !== CHAOS_STEP_ATTEMPTS || r.done !== 0,
        ),
      ).toEqual([]);
      expect(byStep('d').filter((r) => r.stepStatus !== 'pending' || r.done !== 0)).toEqual([]);
      expect(byStep('a').filter((r) => r.stepStatus !== 'compensated' || r.undone !== 1)).toEqual(
        [],
      );
      // b ran beside c: it was either aborted by FAIL_FAST before committing, or completed and undone.
      expect(byStep('b').filter((r) => !['pending', 'compensated'].includes(r.stepStatus))).toEqual(
        [],
      );
      const undoRows = failing.reduce((n, r) => n + r.undone, 0);
      expect(undoRows).toBeGreaterThanOrEqual(SAGAS / failEvery);

      const pendingInCompleted = audit.filter(
        (r) => r.sagaStatus === 'completed' && r.stepStatus === 'pending',
      );
      expect(pendingInCompleted).toEqual([]);
      expectTheKillHitMidRun(atKill, ownersBySaga);
    },
    TEST_TIMEOUT_MS,
  );
});
