/**
 * SagaOptions.firstStepInStart on real PostgreSQL: start() stores the saga and runs attempt 1 of its
 * first step in one transaction, so a local 3-step saga commits 3 times (counted at the driver by
 * test/support/statement-counter, not timed). A failing first attempt stores nothing of itself: the
 * saga is stored the normal way and the failure counts as attempt 1, retried per the step's policy.
 * What a crash in the middle of that transaction leaves is checked by
 * saga-first-step-in-start-crash.int-spec.
 */
import type { EntityManager } from 'typeorm';
import { countedSagas, deleteEffects, insertEffect } from '@test/support/counted-sagas';
import { defineSaga, type StepContext } from '../../index';

const APP = 'sage-first-step-in-start';
type Ctx = StepContext<{ n: number }, EntityManager>;

class NotRetryable extends Error {}

describe('firstStepInStart: the start and the first step commit together (PostgreSQL)', () => {
  const sagas = countedSagas(APP);
  const { events, effectsOf, typesOf, perSaga } = sagas;
  /** Attempts that must fail before a step succeeds, by step name, and how. */
  const failFirst = new Map<string, { times: number; error: () => Error }>();

  const effect = async (ctx: Ctx): Promise<{ step: string }> => {
    await insertEffect(ctx);
    const failing = failFirst.get(ctx.stepName);
    if (failing && failing.times > 0) {
      failing.times--;
      throw failing.error();
    }
    return { step: ctx.stepName };
  };
  const retry = {
    maxAttempts: 3,
    initialDelayMs: 1,
    maxDelayMs: 1,
    retryable: (e: unknown) => !(e instanceof NotRetryable),
  };

  beforeAll(async () => {
    const engine = await sagas.open(() => ({ leaseMs: 60_000, random: () => 0 }));
    const three = (name: string, firstStepInStart: boolean) =>
      defineSaga<{ n: number }, EntityManager>(name, { firstStepInStart })
        .step('a', { run: effect, compensate: deleteEffects, retry })
        .step('b', { dependsOn: ['a'], run: effect, compensate: deleteEffects })
        .step('c', { dependsOn: ['b'], run: effect, compensate: deleteEffects })
        .build();
    engine.register(three('three-inline', true));
    engine.register(three('three-default', false));
    engine.register(
      defineSaga<{ n: number }, EntityManager>('one-inline', { firstStepInStart: true })
        .step('only', { run: effect, compensate: deleteEffects })
        .build(),
    );
  }, 30_000);

  afterAll(() => sagas.close(), 30_000);

  const ended = (id: string): Promise<void> => sagas.seen(id, 'saga.completed', 'saga.compensated');

  it('a local 3-step saga commits 3 transactions (the default: 4), with the same effects and events', async () => {
    const warm = await sagas.engine.start('three-inline', { n: -1 });
    await ended(warm.sagaId);
    const inline = await perSaga('three-inline', 4);
    const byDefault = await perSaga('three-default', 4);
    expect(byDefault.transactions).toBe(4);
    expect(byDefault.statements).toBe(17);
    expect(inline.transactions).toBe(3);
    expect(inline.commits).toBe(3);
    // BEGIN, insert, the step's insert, record, COMMIT; then 5 and 6 as by default: one less.
    expect(inline.statements).toBe(16);
    for (const id of inline.ids) {
      expect(await effectsOf(id)).toEqual([
        { step: 'a', attempt: 1 },
        { step: 'b', attempt: 1 },
        { step: 'c', attempt: 1 },
      ]);
      expect(typesOf(id)).toEqual([
        'saga.started',
        'step.started',
        'step.completed',
        'step.started',
        'step.completed',
        'step.started',
        'step.completed',
        'saga.completed',
      ]);
      const saga = await sagas.engine.get(id);
      expect(saga.steps.map((s) => [s.name, s.status, s.attempts, s.result])).toEqual([
        ['a', 'completed', 1, { step: 'a' }],
        ['b', 'completed', 1, { step: 'b' }],
        ['c', 'completed', 1, { step: 'c' }],
      ]);
      expect(saga.steps[0]!.startedAt).not.toBeNull();
      expect(saga.steps[0]!.completedAt).not.toBeNull();
      expect(saga.owner).toBeNull();
    }
  });

  it('a 1-step saga is started, run and completed in one transaction', async () => {
    const warm = await sagas.engine.start('one-inline', { n: -1 });
    await ended(warm.sagaId);
    const m = await perSaga('one-inline', 3);
    expect(m.transactions).toBe(1);
    expect(m.statements).toBe(6); // BEGIN, insert, the step's insert, record, complete, COMMIT
    for (const id of m.ids) {
      expect(await effectsOf(id)).toEqual([{ step: 'only', attempt: 1 }]);
      expect(typesOf(id)).toEqual([
        'saga.started',
        'step.started',
        'step.completed',
        'saga.completed',
      ]);
    }
  });

  it('a first attempt that fails: the saga is stored without it, attempt 1 recorded, the retry completes it', async () => {
    failFirst.set('a', { times: 1, error: () => new Error('a fails its attempt on purpose') });
    const { sagaId, created } = await sagas.engine.start('three-inline', { n: 1 });
    expect(created).toBe(true);
    await ended(sagaId);
    // The failed attempt's insert rolled back with it; the retry's stayed.
    expect(await effectsOf(sagaId)).toEqual([
      { step: 'a', attempt: 2 },
      { step: 'b', attempt: 1 },
      { step: 'c', attempt: 1 },
    ]);
    const saga = await sagas.engine.get(sagaId);
    expect(saga.status).toBe('completed');
    expect(saga.steps.map((s) => [s.name, s.status, s.attempts])).toEqual([
      ['a', 'completed', 2],
      ['b', 'completed', 1],
      ['c', 'completed', 1],
    ]);
    expect(typesOf(sagaId).slice(0, 5)).toEqual([
      'saga.started',
      'step.started',
      'step.retrying',
      'step.started',
      'step.completed',
    ]);
    const retrying = events.find((e) => e.sagaId === sagaId && e.type === 'step.retrying');
    expect(retrying).toMatchObject({ step: 'a', attempt: 1 });
  });

  it('a first attempt failing with an error not retried: the saga is stored and compensated, the attempt recorded', async () => {
    failFirst.set('a', { times: 1, error: () => new NotRetryable('a refuses the input') });
    const { sagaId } = await sagas.engine.start('three-inline', { n: 2 });
    await ended(sagaId);
    const saga = await sagas.engine.get(sagaId);
    expect(saga.status).toBe('compensated');
    expect(saga.steps[0]).toMatchObject({ name: 'a', status: 'failed', attempts: 1 });
    expect(saga.steps[0]!.error).toContain('a refuses the input');
    expect(await effectsOf(sagaId)).toEqual([]);
    expect(typesOf(sagaId).slice(0, 3)).toEqual(['saga.started', 'step.started', 'step.failed']);
  });

  it('a repeated start with the same key runs nothing again, also when starts race', async () => {
    const first = await sagas.engine.start(
      'three-inline',
      { n: 7 },
      { idempotencyKey: 'inline-1' },
    );
    await ended(first.sagaId);
    const again = await sagas.engine.start(
      'three-inline',
      { n: 7 },
      { idempotencyKey: 'inline-1' },
    );
    expect(again).toEqual({ sagaId: first.sagaId, created: false });

    const racing = await Promise.all(
      [0, 1, 2].map(() =>
        sagas.engine.start('three-inline', { n: 8 }, { idempotencyKey: 'inline-2' }),
      ),
    );
    const ids = new Set(racing.map((r) => r.sagaId));
    expect(ids.size).toBe(1);
    expect(racing.filter((r) => r.created)).toHaveLength(1);
    const [id] = [...ids];
    await ended(id!);
    expect((await effectsOf(id!)).map((e) => e.step)).toEqual(['a', 'b', 'c']);
    expect(typesOf(id!).filter((t) => t === 'saga.started')).toHaveLength(1);
  });
});
