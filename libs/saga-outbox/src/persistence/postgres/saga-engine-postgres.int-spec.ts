/**
 * The saga engine on real PostgreSQL (PostgresSagaStore, TypeORM): the transactional promises of
 * local steps, retries, timeouts, starting inside a caller's transaction, idempotent starts.
 *
 * Lives beside the store rather than in core/saga because it needs TypeORM and the PostgreSQL
 * adapter, which core/ must not import (DESIGN.md §2, enforced by ESLint).
 *
 * Nothing here asserts a duration: waits are on conditions (a step reached a point, a saga became
 * terminal), and the backoff is checked through the delays the engine reports with an injected
 * random source.
 */
import type { DataSource, EntityManager } from 'typeorm';
import { createTestDatabase, dataSourceOptions, type TestDatabase } from '@test/support/pg';
import {
  defineSaga,
  PostgresSagaStore,
  SagaEngine,
  SagaNotFoundError,
  SagaTimeoutError,
  StepTimeoutError,
  type SagaEvent,
  type SagaRecord,
  type StepContext,
} from '../../index';
import { createSagaDataSource } from './data-source';
import { waitUntil } from '../../testing/async';

type Ctx = StepContext<{ n?: number }, EntityManager>;

interface Deferred<T = void> {
  promise: Promise<T>;
  resolve(value: T): void;
}
function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Resolves (never rejects) once `signal` aborts: for step bodies that wait for their timeout. */
function aborted(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(signal.reason);
    signal.addEventListener('abort', () => resolve(signal.reason), { once: true });
  });
}

/** Rejects with the abort reason once `signal` aborts: a step body that honours its signal. */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    void aborted(signal).then((reason) => reject(reason as Error));
  });
}

class Rollback extends Error {}
class PermanentError extends Error {}

const RANDOM = 0.5;
const TEST_TIMEOUT_MS = 30_000;

describe('SagaEngine on PostgreSQL', () => {
  let db: TestDatabase | undefined;
  let ds: DataSource | undefined;
  let engine: SagaEngine<EntityManager> | undefined;
  const events: SagaEvent[] = [];
  /** Gates a test opened; released on failure too, so no step body is left hanging. */
  const gates: Deferred[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    ds = createSagaDataSource(
      dataSourceOptions(db.name, { poolSize: 12, applicationName: 'engine-int' }),
    );
    await ds.initialize();
    await ds.query(`
      CREATE TABLE public.effects (
        id      bigserial PRIMARY KEY,
        saga_id uuid      NOT NULL,
        step    text      NOT NULL,
        kind    text      NOT NULL,
        attempt integer   NOT NULL,
        note    text      NULL
      )`);
    engine = new SagaEngine<EntityManager>({
      store: new PostgresSagaStore(ds),
      ownerId: 'engine-int',
      leaseMs: 10_000,
      recoveryIntervalMs: 50,
      shutdownTimeoutMs: 500,
      random: () => RANDOM,
    });
    engine.onEvent((e) => events.push(e));
    await engine.startBackground();
  }, 30_000);

  afterEach(() => {
    for (const g of gates.splice(0)) g.resolve();
  });

  afterAll(async () => {
    await engine?.shutdown();
    await ds?.destroy();
    await db?.drop();
  }, 30_000);

  const sagas = (): SagaEngine<EntityManager> => engine!;
  const gate = (): Deferred => {
    const g = deferred();
    gates.push(g);
    return g;
  };

  /** One business row per call, written in the step's own transaction. */
  const effect = async (ctx: Ctx, kind = 'do', note: string | null = null): Promise<void> => {
    await ctx.manager.query(
      'INSERT INTO public.effects (saga_id, step, kind, attempt, note) VALUES ($1, $2, $3, $4, $5)',
      [ctx.sagaId, ctx.stepName, kind, ctx.attempt, note],
    );
  };
  const effects = (
    sagaId: string,
  ): Promise<{ step: string; kind: string; attempt: number; note: string | null }[]> =>
    ds!.query(
      'SELECT step, kind, attempt, note FROM public.effects WHERE saga_id = $1 ORDER BY id',
      [sagaId],
    );
  const stepOf = (saga: SagaRecord, name: string) => {
    const s = saga.steps.find((x) => x.name === name);
    if (!s) throw new Error(`saga ${saga.id} has no step ${name}`);
    return s;
  };
  const eventsOf = (sagaId: string, type: SagaEvent['type']) =>
    events.filter((e) => e.sagaId === sagaId && e.type === type);

  it(
    'rolls back a step that throws after its write (no row, no result) and the retry commits once',
    async () => {
      const secondAttempt = gate();
      const release = gate();
      sagas().register(
        defineSaga<{ n?: number }, EntityManager>('throw-after-write')
          .step('charge', {
            compensatable: false,
            retry: { maxAttempts: 3, initialDelayMs: 1 },
            run: async (ctx: Ctx) => {
              await effect(ctx);
              if (ctx.attempt === 1) throw new Error('gateway hiccup after the write');
              secondAttempt.resolve();
              await release.promise;
              return { charged: true, attempt: ctx.attempt };
            },
          })
          .build(),
      );
      const { sagaId } = await sagas().start('throw-after-write', {});
      await secondAttempt.promise;

      // Attempt 1 failed after writing; attempt 2 has written but not committed: nothing is visible.
      expect(await effects(sagaId)).toEqual([]);
      const during = await sagas().get(sagaId);
      expect(during.status).toBe('running');
      expect(stepOf(during, 'charge')).toMatchObject({
        status: 'pending',
        attempts: 1,
        result: null,
        error: expect.stringContaining('gateway hiccup after the write'),
      });

      release.resolve();
      const done = await sagas().waitFor(sagaId, { timeoutMs: 10_000 });
      expect(done.status).toBe('completed');
      expect(stepOf(done, 'charge')).toMatchObject({
        status: 'completed',
        attempts: 2,
        result: { charged: true, attempt: 2 },
      });
      expect(await effects(sagaId)).toEqual([
        { step: 'charge', kind: 'do', attempt: 2, note: null },
      ]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'retries exactly as configured (attempts, capped exponential backoff), then compensates',
    async () => {
      let runs = 0;
      sagas().register(
        defineSaga<{ n?: number }, EntityManager>('retry-as-configured')
          .step('reserve', {
            run: (ctx: Ctx) => effect(ctx).then(() => ({ reserved: true })),
            compensate: (ctx) => effect(ctx, 'undo'),
          })
          .step('charge', {
            dependsOn: ['reserve'],
            compensatable: false,
            retry: { maxAttempts: 4, initialDelayMs: 10, multiplier: 2, maxDelayMs: 25 },
            run: async (ctx: Ctx) => {
              runs++;
              await effect(ctx);
              throw new Error(`declined (attempt ${ctx.attempt})`);
            },
          })
          .build(),
      );
      const { sagaId } = await sagas().start('retry-as-configured', {});
      const saga = await sagas().waitFor(sagaId, { timeoutMs: 10_000 });

      expect(saga.status).toBe('compensated');
      expect(runs).toBe(4);
      expect(stepOf(saga, 'charge')).toMatchObject({
        status: 'failed',
        attempts: 4,
        error: expect.stringContaining('attempt 4'),
      });
      expect(stepOf(saga, 'reserve')).toMatchObject({
        status: 'compensated',
        compensationAttempts: 1,
      });
      // Full jitter with random() = 0.5: floor(0.5 * min(25, 10 * 2^(attempt-1))).
      const retries = eventsOf(sagaId, 'step.retrying').map((e) =>
        e.type === 'step.retrying' ? [e.attempt, e.delayMs] : [],
      );
      expect(retries).toEqual([
        [1, 5],
        [2, 10],
        [3, 12],
      ]);
      expect(eventsOf(sagaId, 'step.failed')).toHaveLength(1);
      // Every failed attempt rolled back its write; the compensation ran once.
      expect(await effects(sagaId)).toEqual([
        { step: 'reserve', kind: 'do', attempt: 1, note: null },
        { step: 'reserve', kind: 'undo', attempt: 1, note: null },
      ]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'records a step error containing NUL (PostgreSQL text cannot hold it) and still ends the saga',
    async () => {
      sagas().register(
        defineSaga<{ n?: number }, EntityManager>('nul-in-error')
          .step('validate', {
            compensatable: false,
            retry: { maxAttempts: 2, initialDelayMs: 1 },
            run: () => Promise.reject(new Error('bad byte \u0000 from a driver')),
          })
          .build(),
      );
      const { sagaId } = await sagas().start('nul-in-error', {});
      const saga = await sagas().waitFor(sagaId, { timeoutMs: 10_000 });
      expect(saga.status).toBe('compensated');
      expect(stepOf(saga, 'validate')).toMatchObject({ status: 'failed', attempts: 2 });
      expect(stepOf(saga, 'validate')?.error).toBe('bad byte \\0 from a driver');
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'does not retry an error the retry policy calls permanent',
    async () => {
      let runs = 0;
      sagas().register(
        defineSaga<{ n?: number }, EntityManager>('permanent-failure')
          .step('validate', {
            compensatable: false,
            retry: {
              maxAttempts: 5,
              initialDelayMs: 1,
              retryable: (e) => !(e instanceof PermanentError),
            },
            run: async (ctx: Ctx) => {
              runs++;
              await effect(ctx);
              throw new PermanentError('card number is invalid');
            },
          })
          .build(),
      );
      const { sagaId } = await sagas().start('permanent-failure', {});
      const saga = await sagas().waitFor(sagaId, { timeoutMs: 10_000 });
      expect(saga.status).toBe('compensated');
      expect(runs).toBe(1);
      expect(stepOf(saga, 'validate')).toMatchObject({ status: 'failed', attempts: 1 });
      expect(await effects(sagaId)).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'fires the per-step timeout on a step that honours ctx.signal, and retries it',
    async () => {
      const reasons: unknown[] = [];
      sagas().register(
        defineSaga<{ n?: number }, EntityManager>('step-timeout-honoured')
          .step('call-bank', {
            compensatable: false,
            timeoutMs: 150,
            retry: { maxAttempts: 3, initialDelayMs: 1 },
            run: async (ctx: Ctx) => {
              await effect(ctx);
              if (ctx.attempt === 1) {
                ctx.signal.addEventListener('abort', () => reasons.push(ctx.signal.reason), {
                  once: true,
                });
                await untilAborted(ctx.signal); // hangs until the timeout aborts it
              }
              return { attempt: ctx.attempt };
            },
          })
          .build(),
      );
      const { sagaId } = await sagas().start('step-timeout-honoured', {});
      const saga = await sagas().waitFor(sagaId, { timeoutMs: 10_000 });

      expect(saga.status).toBe('completed');
      expect(reasons).toHaveLength(1);
      expect(reasons[0]).toBeInstanceOf(StepTimeoutError);
      expect(stepOf(saga, 'call-bank')).toMatchObject({
        status: 'completed',
        attempts: 2,
        result: { attempt: 2 },
      });
      const retries = eventsOf(sagaId, 'step.retrying');
      expect(retries).toHaveLength(1);
      expect(retries[0]).toMatchObject({
        attempt: 1,
        error: expect.stringContaining('exceeded its timeout of 150 ms'),
      });
      expect(await effects(sagaId)).toEqual([
        { step: 'call-bank', kind: 'do', attempt: 2, note: null },
      ]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'does not commit the writes of a step that ignores the timeout and finishes late',
    async () => {
      sagas().register(
        defineSaga<{ n?: number }, EntityManager>('step-timeout-ignored')
          .step('stubborn', {
            compensatable: false,
            timeoutMs: 100,
            retry: { maxAttempts: 2, initialDelayMs: 1 },
            run: async (ctx: Ctx) => {
              await effect(ctx, 'do', 'before the timeout');
              if (ctx.attempt === 1) {
                await aborted(ctx.signal); // keeps going past its timeout...
                await effect(ctx, 'do', 'after the timeout'); // ...writes more, and returns normally
                return { late: true };
              }
              return { late: false };
            },
          })
          .build(),
      );
      const { sagaId } = await sagas().start('step-timeout-ignored', {});
      const saga = await sagas().waitFor(sagaId, { timeoutMs: 10_000 });

      expect(saga.status).toBe('completed');
      expect(stepOf(saga, 'stubborn')).toMatchObject({
        status: 'completed',
        attempts: 2,
        result: { late: false },
      });
      expect(eventsOf(sagaId, 'step.retrying')).toMatchObject([
        { attempt: 1, error: expect.stringContaining('timeout') },
      ]);
      expect(await effects(sagaId)).toEqual([
        { step: 'stubborn', kind: 'do', attempt: 2, note: 'before the timeout' },
      ]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'compensates a saga that runs past its saga-level timeout',
    async () => {
      const reasons: unknown[] = [];
      sagas().register(
        defineSaga<{ n?: number }, EntityManager>('saga-timeout', { timeoutMs: 400 })
          .step('reserve', {
            run: (ctx: Ctx) => effect(ctx).then(() => ({ reserved: true })),
            compensate: (ctx) => effect(ctx, 'undo'),
          })
          .step('wait-for-stock', {
            dependsOn: ['reserve'],
            run: async (ctx: Ctx) => {
              await effect(ctx);
              ctx.signal.addEventListener('abort', () => reasons.push(ctx.signal.reason), {
                once: true,
              });
              return untilAborted(ctx.signal);
            },
            compensate: (ctx) => effect(ctx, 'undo'),
          })
          .build(),
      );
      const { sagaId } = await sagas().start('saga-timeout', {});
      const saga = await sagas().waitFor(sagaId, { timeoutMs: 10_000 });

      expect(saga.status).toBe('compensated');
      expect(saga.error).toMatch(/timed out/);
      expect(reasons).toHaveLength(1);
      expect(reasons[0]).toBeInstanceOf(SagaTimeoutError);
      expect(stepOf(saga, 'reserve')).toMatchObject({ status: 'compensated' });
      expect(stepOf(saga, 'wait-for-stock').status).toBe('pending');
      expect(await effects(sagaId)).toEqual([
        { step: 'reserve', kind: 'do', attempt: 1, note: null },
        { step: 'reserve', kind: 'undo', attempt: 1, note: null },
      ]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "a step's database connection killed mid-step: not compensated, resumed after the lease, its effect once",
    async () => {
      // Its own engine with a short lease: the lease is what brings the saga back.
      const ownDs = createSagaDataSource(
        dataSourceOptions(db!.name, { poolSize: 4, applicationName: 'engine-int-kill' }),
      );
      await ownDs.initialize();
      const own = new SagaEngine<EntityManager>({
        store: new PostgresSagaStore(ownDs),
        ownerId: 'engine-int-kill',
        leaseMs: 500,
        recoveryIntervalMs: 50,
        shutdownTimeoutMs: 500,
      });
      const ownEvents: SagaEvent[] = [];
      own.onEvent((e) => ownEvents.push(e));
      const killed = gate();
      const pids: number[] = [];
      let chargeRuns = 0;
      own.register(
        defineSaga<{ n?: number }, EntityManager>('connection-killed')
          .step('reserve', {
            run: (ctx: Ctx) => effect(ctx),
            compensate: (ctx) => effect(ctx, 'undo'),
          })
          .step('charge', {
            dependsOn: ['reserve'],
            // One attempt: counting the lost connection as a failure would compensate at once.
            retry: { maxAttempts: 1 },
            run: async (ctx: Ctx) => {
              chargeRuns++;
              await effect(ctx);
              const [row] = await ctx.manager.query<{ pid: number }[]>(
                'SELECT pg_backend_pid() AS pid',
              );
              pids.push(row!.pid);
              if (chargeRuns === 1) await killed.promise; // the test kills this backend meanwhile
              return { charged: true };
            },
            compensate: (ctx) => effect(ctx, 'undo'),
          })
          .build(),
      );
      try {
        const { sagaId } = await own.start('connection-killed', {});
        await waitUntil(() => pids.length === 1, 'the charge step to report its backend');
        await ds!.query('SELECT pg_terminate_backend($1)', [pids[0]]);
        await waitUntil(
          async () =>
            (await ds!.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pids[0]])).length ===
            0,
          'the backend to exit',
        );
        killed.resolve();
        await waitUntil(
          () => ownEvents.some((e) => e.sagaId === sagaId && e.type === 'saga.interrupted'),
          'the engine to stop driving the saga',
        );
        expect(ownEvents.find((e) => e.type === 'saga.interrupted')).toMatchObject({
          reason: 'store-error',
        });
        const stopped = await own.get(sagaId);
        expect(stopped.status).toBe('running');
        expect(stepOf(stopped, 'charge')).toMatchObject({
          status: 'pending',
          attempts: 0,
          error: null,
        });

        await own.startBackground();
        const saga = await own.waitFor(sagaId, { timeoutMs: 10_000 });
        expect(saga.status).toBe('completed');
        expect(stepOf(saga, 'charge')).toMatchObject({
          status: 'completed',
          attempts: 1,
          result: { charged: true },
        });
        expect(chargeRuns).toBe(2);
        expect(pids[1]).not.toBe(pids[0]);
        expect(await effects(sagaId)).toEqual([
          { step: 'reserve', kind: 'do', attempt: 1, note: null },
          { step: 'charge', kind: 'do', attempt: 1, note: null },
        ]);
        const types = ownEvents.filter((e) => e.sagaId === sagaId).map((e) => e.type);
        expect(types.filter((t) => t === 'saga.resumed')).toHaveLength(1);
        for (const never of ['step.failed', 'step.retrying', 'saga.compensating'] as const)
          expect(types).not.toContain(never);
      } finally {
        killed.resolve();
        await own.shutdown();
        await ownDs.destroy();
      }
    },
    TEST_TIMEOUT_MS,
  );

  describe('started inside the caller’s transaction ({ manager })', () => {
    beforeAll(() => {
      sagas().register(
        defineSaga<{ n?: number }, EntityManager>('in-caller-tx')
          .step('one', { run: (ctx: Ctx) => effect(ctx), compensate: (ctx) => effect(ctx, 'undo') })
          .step('two', { dependsOn: ['one'], compensatable: false, run: (ctx: Ctx) => effect(ctx) })
          .build(),
      );
    });
    const businessRows = (key: string): Promise<unknown[]> =>
      ds!.query(`SELECT 1 FROM public.effects WHERE step = 'order-row' AND note = $1`, [key]);
    const sagasWithKey = async (key: string): Promise<number> => {
      const [row] = await ds!.query<{ n: number }[]>(
        `SELECT count(*)::int AS n FROM sage.saga_instance WHERE name = 'in-caller-tx' AND idempotency_key = $1`,
        [key],
      );
      return row!.n;
    };

    it(
      'does not exist when that transaction rolls back',
      async () => {
        let sagaId = '';
        await expect(
          ds!.transaction(async (manager) => {
            ({ sagaId } = await sagas().start(
              'in-caller-tx',
              { n: 1 },
              { manager, idempotencyKey: 'tx-rolled-back' },
            ));
            await manager.query(
              `INSERT INTO public.effects (saga_id, step, kind, attempt, note) VALUES ($1, 'order-row', 'do', 0, 'tx-rolled-back')`,
              [sagaId],
            );
            throw new Rollback('the business write failed');
          }),
        ).rejects.toBeInstanceOf(Rollback);

        expect(sagaId).not.toBe('');
        await expect(sagas().get(sagaId)).rejects.toBeInstanceOf(SagaNotFoundError);
        expect(await sagasWithKey('tx-rolled-back')).toBe(0);
        expect(await businessRows('tx-rolled-back')).toEqual([]);

        // The recovery loop has nothing to find: a saga committed after it runs, this one never does.
        const { sagaId: later } = await ds!.transaction((manager) =>
          sagas().start('in-caller-tx', { n: 2 }, { manager, idempotencyKey: 'tx-after-rollback' }),
        );
        sagas().resumePending();
        expect((await sagas().waitFor(later, { timeoutMs: 10_000 })).status).toBe('completed');
        expect(await effects(sagaId)).toEqual([]);
        expect(await sagasWithKey('tx-rolled-back')).toBe(0);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'is invisible until that transaction commits, then is picked up and completed',
      async () => {
        let sagaId = '';
        await ds!.transaction(async (manager) => {
          ({ sagaId } = await sagas().start(
            'in-caller-tx',
            { n: 3 },
            { manager, idempotencyKey: 'tx-committed' },
          ));
          await manager.query(
            `INSERT INTO public.effects (saga_id, step, kind, attempt, note) VALUES ($1, 'order-row', 'do', 0, 'tx-committed')`,
            [sagaId],
          );
          // Another connection (the engine's pool) cannot see it yet.
          await expect(sagas().get(sagaId)).rejects.toBeInstanceOf(SagaNotFoundError);
        });
        sagas().resumePending();
        const saga = await sagas().waitFor(sagaId, { timeoutMs: 10_000 });

        expect(saga.status).toBe('completed');
        expect(eventsOf(sagaId, 'saga.resumed')).toHaveLength(1); // claimed by the recovery loop
        expect(await businessRows('tx-committed')).toHaveLength(1);
        expect((await effects(sagaId)).filter((e) => e.step !== 'order-row')).toEqual([
          { step: 'one', kind: 'do', attempt: 1, note: null },
          { step: 'two', kind: 'do', attempt: 1, note: null },
        ]);
      },
      TEST_TIMEOUT_MS,
    );
  });

  it(
    'creates one saga for 10 concurrent starts with the same idempotency key, from two pools',
    async () => {
      const definition = () =>
        defineSaga<{ n?: number }, EntityManager>('idempotent-start')
          .step('a', { run: (ctx: Ctx) => effect(ctx), compensate: (ctx) => effect(ctx, 'undo') })
          .step('b', { run: (ctx: Ctx) => effect(ctx), compensate: (ctx) => effect(ctx, 'undo') })
          .step('c', {
            dependsOn: ['a', 'b'],
            compensatable: false,
            run: (ctx: Ctx) => effect(ctx),
          })
          .build();
      sagas().register(definition());
      // A second engine on its own DataSource (own pool), as another app instance would be.
      const otherDs = createSagaDataSource(
        dataSourceOptions(db!.name, { poolSize: 6, applicationName: 'engine-int-2' }),
      );
      await otherDs.initialize();
      const other = new SagaEngine<EntityManager>({
        store: new PostgresSagaStore(otherDs),
        ownerId: 'engine-int-2',
        leaseMs: 10_000,
      });
      other.register(definition());
      try {
        // The same request (same key, same input) retried from two instances; a different input
        // under the key is a conflict (saga-idempotency.int-spec.ts).
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            (i % 2 ? other : sagas()).start(
              'idempotent-start',
              { n: 42 },
              { idempotencyKey: 'order-42' },
            ),
          ),
        );
        const ids = new Set(results.map((r) => r.sagaId));
        expect(ids.size).toBe(1);
        expect(results.filter((r) => r.created)).toHaveLength(1);
        const [sagaId] = [...ids] as [string];

        const saga = await sagas().waitFor(sagaId, { timeoutMs: 10_000 });
        expect(saga.status).toBe('completed');
        expect(saga.steps.map((s) => [s.name, s.status, s.attempts])).toEqual([
          ['a', 'completed', 1],
          ['b', 'completed', 1],
          ['c', 'completed', 1],
        ]);
        const [rows] = await ds!.query<{ sagas: number; steps: number }[]>(
          `SELECT (SELECT count(*) FROM sage.saga_instance WHERE name = 'idempotent-start')::int AS sagas,
                (SELECT count(*) FROM sage.saga_step s JOIN sage.saga_instance i ON i.id = s.saga_id
                  WHERE i.name = 'idempotent-start')::int AS steps`,
        );
        expect(rows).toEqual({ sagas: 1, steps: 3 });
        expect((await effects(sagaId)).map((e) => e.step).sort()).toEqual(['a', 'b', 'c']);
      } finally {
        await other.shutdown();
        await otherDs.destroy();
      }
    },
    TEST_TIMEOUT_MS,
  );
});
