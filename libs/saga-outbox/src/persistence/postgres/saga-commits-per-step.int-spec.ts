/**
 * Fewer commits per saga (issue 17): on real PostgreSQL, the statements the engine sends for a
 * saga are counted at the driver (test/support/statement-counter), so the number of write
 * transactions per saga is asserted exactly, not timed. A saga completes in its last step's
 * transaction (no commit of its own at the end); its start still commits on its own, so start()
 * returns before the first step runs (SagaOptions.firstStepInStart joins the two:
 * saga-first-step-in-start.int-spec; a remote saga's last reply completes it:
 * saga-remote-commits.int-spec). The behaviour around it (a failing first step, a repeated
 * start) is checked here too. A crash at that shared commit is the crash harness's boundary "crash
 * after <last step> committed" (saga-crash-harness.int-spec, order-saga-crash-harness e2e).
 */
import type { EntityManager } from 'typeorm';
import { countedSagas, deleteEffects, insertEffect } from '@test/support/counted-sagas';
import { defineSaga, type StepContext } from '../../index';

const APP = 'sage-commits-per-step';
type Ctx = StepContext<{ n: number }, EntityManager>;

describe('a saga commits once per step (PostgreSQL)', () => {
  const sagas = countedSagas(APP);
  const { events, effectsOf, typesOf, perSaga } = sagas;
  /** Attempts that must fail before a step succeeds, by step name. */
  const failFirst = new Map<string, number>();

  const effect = async (ctx: Ctx): Promise<void> => {
    await insertEffect(ctx);
    const left = failFirst.get(ctx.stepName) ?? 0;
    if (left > 0) {
      failFirst.set(ctx.stepName, left - 1);
      throw new Error(`step ${ctx.stepName} fails its attempt ${ctx.attempt} on purpose`);
    }
  };

  beforeAll(async () => {
    // No background loops: nothing but the sagas' own statements is counted.
    const engine = await sagas.open(() => ({ leaseMs: 60_000, random: () => 0 }));
    engine.register(
      defineSaga<{ n: number }, EntityManager>('three-local')
        .step('a', { run: effect, compensate: deleteEffects })
        .step('b', { dependsOn: ['a'], run: effect, compensate: deleteEffects })
        .step('c', { dependsOn: ['b'], run: effect, compensate: deleteEffects })
        .build(),
    );
    engine.register(
      defineSaga<{ n: number }, EntityManager>('one-local')
        .step('only', { run: effect, compensate: deleteEffects })
        .build(),
    );
    engine.register(
      defineSaga<{ n: number }, EntityManager>('flaky-first')
        .step('first', {
          run: effect,
          compensate: deleteEffects,
          retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 1 },
        })
        .step('second', { dependsOn: ['first'], run: effect, compensate: deleteEffects })
        .build(),
    );
  }, 30_000);

  afterAll(() => sagas.close(), 30_000);

  const run = async (saga: string, n: number, key?: string): Promise<string> => {
    const { sagaId } = await sagas.engine.start(saga, { n }, { idempotencyKey: key });
    const done = await sagas.engine.waitFor(sagaId, { timeoutMs: 20_000 });
    expect(done.status).toBe('completed');
    return sagaId;
  };

  it('a local 3-step saga commits 4 transactions: its start, then one per step, the last completing it', async () => {
    await run('three-local', -1); // warm-up: connections opened, nothing counted
    const m = await perSaga('three-local', 4);
    // Before issue 17: 17 statements and 5 write transactions (the completion committed on its own).
    expect(m.transactions).toBe(4);
    expect(m.commits).toBe(3);
    expect(m.statements).toBe(17);
    expect(m.byKeyword.UPDATE).toBe(m.ids.length); // the completion, inside the last COMMIT
    for (const id of m.ids) {
      expect(await effectsOf(id)).toEqual([
        { step: 'a', attempt: 1 },
        { step: 'b', attempt: 1 },
        { step: 'c', attempt: 1 },
      ]);
      const types = typesOf(id);
      expect(types).toEqual([
        'saga.started',
        'step.started',
        'step.completed',
        'step.started',
        'step.completed',
        'step.started',
        'step.completed',
        'saga.completed',
      ]);
    }
  });

  it('a 1-step saga is two transactions: stored, then run and completed together', async () => {
    await run('one-local', -1);
    const m = await perSaga('one-local', 3);
    expect(m.transactions).toBe(2);
    // insert; BEGIN, step lock, the step's insert, record, complete, COMMIT
    expect(m.statements).toBe(7);
    for (const id of m.ids) expect(await effectsOf(id)).toEqual([{ step: 'only', attempt: 1 }]);
  });

  it('a step that fails and is retried: the failure recorded, the retry commits once, the saga completes with it', async () => {
    failFirst.set('first', 1);
    const id = await run('flaky-first', 1);
    // The failed attempt's insert rolled back with the saga's; the retry's stayed.
    expect(await effectsOf(id)).toEqual([
      { step: 'first', attempt: 2 },
      { step: 'second', attempt: 1 },
    ]);
    const saga = await sagas.engine.get(id);
    expect(saga.steps.map((s) => [s.name, s.status, s.attempts])).toEqual([
      ['first', 'completed', 2],
      ['second', 'completed', 1],
    ]);
    const types = typesOf(id);
    expect(types.slice(0, 4)).toEqual([
      'saga.started',
      'step.started',
      'step.retrying',
      'step.started',
    ]);
    expect(types.filter((t) => t === 'saga.started')).toHaveLength(1);
  });

  it('a repeated start with the same key runs nothing again, also when both race', async () => {
    const first = await run('three-local', 7, 'same-key-1');
    const again = await sagas.engine.start(
      'three-local',
      { n: 7 },
      { idempotencyKey: 'same-key-1' },
    );
    expect(again).toEqual({ sagaId: first, created: false });

    const racing = await Promise.all(
      [0, 1, 2].map(() =>
        sagas.engine.start('three-local', { n: 8 }, { idempotencyKey: 'same-key-2' }),
      ),
    );
    const ids = new Set(racing.map((r) => r.sagaId));
    expect(ids.size).toBe(1);
    expect(racing.filter((r) => r.created)).toHaveLength(1);
    const [id] = [...ids];
    await sagas.engine.waitFor(id!, { timeoutMs: 20_000 });
    expect((await effectsOf(id!)).map((e) => e.step)).toEqual(['a', 'b', 'c']);
    const rows = await sagas.ds.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM sage.saga_instance WHERE idempotency_key = 'same-key-2'`,
    );
    expect(rows[0]!.n).toBe(1);
    // The losers announced nothing.
    expect(events.filter((e) => e.sagaId === id && e.type === 'saga.started')).toHaveLength(1);
  });
});
