import { LeaseLostError, SagaStoreUnavailableError } from '../errors';
import type { SageLogger } from '../ports/logger';
import { StepFailure, type SagaRecord, type SagaStore } from '../ports/saga-store';
import { InMemorySagaStore, InMemoryTx } from '../../testing/in-memory-saga-store';
import { defineSaga, type SagaBuilder } from './saga-builder';
import type { SagaDefinition, StepContext } from './saga-definition';
import { SagaEngine, type SagaEngineOptions } from './saga-engine';
import type { SagaEvent } from './saga-events';
import { deferred, settle, untilAborted, waitUntil } from '../../testing/async';

// Durability: crashes (simulated by expiring a lease while the old owner is still alive, i.e. the
// worst case: a zombie), takeover by another engine, fencing of the zombie's late writes,
// recovery races, version mismatches and graceful shutdown.

type Ctx = StepContext<unknown, InMemoryTx>;

/** Effects that land only when a step's transaction commits, in commit order. */
class Effects {
  readonly entries: string[] = [];
  commit(ctx: { manager: InMemoryTx }, entry: string): void {
    ctx.manager.onCommit(() => this.entries.push(entry));
  }
  count(entry: string): number {
    return this.entries.filter((e) => e === entry).length;
  }
}

/** Wraps a store, recording what its methods throw, optionally intercepting some of them. */
function spyStore(
  store: InMemorySagaStore,
  intercept: Partial<Record<keyof SagaStore<InMemoryTx>, (...args: never[]) => unknown>> = {},
): { store: SagaStore<InMemoryTx>; errors: unknown[] } {
  const errors: unknown[] = [];
  const proxy = new Proxy(store, {
    get(target, prop) {
      const own = intercept[prop as keyof SagaStore<InMemoryTx>];
      const value = own ?? (Reflect.get(target, prop) as unknown);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const out = (value as (...a: unknown[]) => unknown).apply(target, args);
        return out instanceof Promise
          ? out.catch((e: unknown) => {
              errors.push(e);
              throw e;
            })
          : out;
      };
    },
  });
  return { store: proxy, errors };
}

const engines: SagaEngine<InMemoryTx>[] = [];
function newEngine(
  store: SagaStore<InMemoryTx>,
  ownerId: string,
  options: Partial<SagaEngineOptions<InMemoryTx>> = {},
): { engine: SagaEngine<InMemoryTx>; events: SagaEvent[] } {
  const engine = new SagaEngine<InMemoryTx>({
    store,
    ownerId,
    shutdownTimeoutMs: 50,
    recoveryIntervalMs: 5,
    ...options,
  });
  engines.push(engine);
  const events: SagaEvent[] = [];
  engine.onEvent((e) => events.push(e));
  return { engine, events };
}
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.shutdown()));
});

const saga = (
  build: (b: SagaBuilder<unknown, InMemoryTx>) => SagaBuilder<unknown, InMemoryTx>,
  name = 's',
): SagaDefinition<unknown, InMemoryTx> => build(defineSaga<unknown, InMemoryTx>(name)).build();

const stepOf = (r: SagaRecord, name: string) => r.steps.find((s) => s.name === name)!;

async function load(store: InMemorySagaStore, id: string): Promise<SagaRecord> {
  const r = await store.load(id);
  if (!r) throw new Error(`no saga ${id}`);
  return r;
}

/** Creates a saga nobody owns yet (as if started inside a caller's transaction, then committed). */
async function startUnowned(
  engine: SagaEngine<InMemoryTx>,
  name = 's',
  input: unknown = {},
): Promise<string> {
  const tx = new InMemoryTx();
  const { sagaId } = await engine.start(name, input, { manager: tx });
  tx.commit();
  return sagaId;
}

// ---------------------------------------------------------------------------- crash & takeover

describe('crash and takeover', () => {
  it('a second engine resumes an orphaned saga; completed steps are not re-run; the zombie is fenced off', async () => {
    const store = new InMemorySagaStore();
    const fx = new Effects();
    const entered = deferred();
    const zombieGo = deferred();
    let zombieSignal: AbortSignal | undefined;
    // Same graph (same version) on both workers; only worker A's step 2 hangs.
    const def = (worker: string, step2: (ctx: Ctx) => Promise<unknown>) =>
      saga((b) =>
        b
          .step('one', { compensatable: false, run: (ctx) => fx.commit(ctx, 'do:one') })
          .step('two', { dependsOn: ['one'], compensatable: false, run: step2 })
          .step('three', {
            dependsOn: ['two'],
            compensatable: false,
            run: (ctx) => fx.commit(ctx, `do:three by ${worker}`),
          }),
      );
    const a = spyStore(store);
    const A = newEngine(a.store, 'A');
    A.engine.register(
      def('A', async (ctx) => {
        zombieSignal = ctx.signal;
        fx.commit(ctx, 'do:two by A');
        entered.resolve();
        await zombieGo.promise; // hangs like a crashed/paused process, ignoring the signal
        return 'from A';
      }),
    );
    const B = newEngine(store, 'B');
    B.engine.register(
      def('B', (ctx) => {
        fx.commit(ctx, 'do:two by B');
        return Promise.resolve('from B');
      }),
    );
    expect(B.engine.definition('s')!.version).toBe(A.engine.definition('s')!.version);

    const { sagaId } = await A.engine.start('s', {});
    await entered.promise;
    expect((await load(store, sagaId)).owner).toBe('A');

    store.expireLease(sagaId); // A "crashed"
    await B.engine.startBackground();
    await waitUntil(async () => (await load(store, sagaId)).owner === 'B', 'B to claim the saga');

    zombieGo.resolve(); // A wakes up and tries to commit step two
    const record = await B.engine.waitFor(sagaId, { timeoutMs: 3_000 });

    expect(record.status).toBe('completed');
    expect(fx.count('do:one')).toBe(1);
    expect(fx.count('do:two by A')).toBe(0);
    expect(fx.count('do:two by B')).toBe(1);
    expect(fx.count('do:three by B')).toBe(1);
    expect(fx.count('do:three by A')).toBe(0);
    expect(stepOf(record, 'two').result).toBe('from B');
    expect(a.errors.some((e) => e instanceof LeaseLostError)).toBe(true);
    await waitUntil(
      () => A.events.some((e) => e.type === 'saga.interrupted' && e.reason === 'lease-lost'),
      'A to notice it lost the lease',
    );
    expect(B.events.filter((e) => e.type === 'saga.resumed')).toHaveLength(1);
    expect(
      B.events.filter((e) => e.type === 'step.started').map((e) => 'step' in e && e.step),
    ).toEqual(['two', 'three']);
    expect(zombieSignal).toBeDefined();
  });

  it('the old owner learns it lost the lease from its heartbeat and aborts the running step', async () => {
    const store = new InMemorySagaStore();
    const fx = new Effects();
    const entered = deferred();
    const heartbeatGate = deferred();
    let signalA: AbortSignal | undefined;
    // A's renewals stall (a long GC pause / network partition) until B has taken over.
    const a = spyStore(store, {
      renewLeases: ((owner: string, ids: readonly string[], leaseMs: number) =>
        heartbeatGate.promise.then(() => store.renewLeases(owner, ids, leaseMs))) as never,
    });
    const def = (worker: string) =>
      saga((b) =>
        b.step('wait', {
          compensatable: false,
          run: async (ctx) => {
            if (worker === 'A') {
              signalA = ctx.signal;
              entered.resolve();
              await untilAborted(ctx.signal);
            }
            fx.commit(ctx, `do:wait by ${worker}`);
          },
        }),
      );
    const A = newEngine(a.store, 'A', { leaseMs: 60 });
    A.engine.register(def('A'));
    const B = newEngine(store, 'B', { leaseMs: 60 });
    B.engine.register(def('B'));

    const { sagaId } = await A.engine.start('s', {});
    await entered.promise;
    await A.engine.startBackground(); // its first renewal is now stalled
    store.expireLease(sagaId);
    await B.engine.startBackground();
    await waitUntil(async () => (await load(store, sagaId)).owner === 'B', 'B to claim');
    heartbeatGate.resolve();

    const record = await B.engine.waitFor(sagaId, { timeoutMs: 3_000 });
    expect(record.status).toBe('completed');
    await waitUntil(() => signalA!.aborted, 'A to abort its step');
    expect(fx.entries).toEqual(['do:wait by B']);
    await waitUntil(
      () => A.events.some((e) => e.type === 'saga.interrupted' && e.reason === 'lease-lost'),
      'A to report the lost lease',
    );
  });

  it('keeps a long-running saga owned through heartbeats: no other engine steals it', async () => {
    const store = new InMemorySagaStore();
    const fx = new Effects();
    const def = saga((b) =>
      b.step('long', {
        compensatable: false,
        run: async (ctx) => {
          await new Promise((r) => setTimeout(r, 350)); // several lease lengths
          fx.commit(ctx, 'do:long');
        },
      }),
    );
    const A = newEngine(store, 'A', { leaseMs: 100 });
    A.engine.register(def);
    const B = newEngine(store, 'B', { leaseMs: 100 });
    B.engine.register(def);
    await A.engine.startBackground();
    await B.engine.startBackground();
    const { sagaId } = await A.engine.start('s', {});
    const record = await A.engine.waitFor(sagaId, { timeoutMs: 3_000 });
    expect(record.status).toBe('completed');
    expect(fx.entries).toEqual(['do:long']);
    expect(B.events.filter((e) => e.type === 'saga.resumed')).toEqual([]);
  });

  it('keeps the retry budget across a crash: the new owner continues the attempt count', async () => {
    const store = new InMemorySagaStore();
    const attemptsSeen: string[] = [];
    const entered = deferred();
    const zombieGo = deferred();
    const def = (worker: string) =>
      saga((b) =>
        b.step('flaky', {
          compensatable: false,
          retry: { maxAttempts: 3, initialDelayMs: 0 },
          run: async (ctx) => {
            attemptsSeen.push(`${worker}#${ctx.attempt}`);
            if (worker === 'A' && ctx.attempt === 1) throw new Error('transient');
            if (worker === 'A') {
              entered.resolve();
              await zombieGo.promise;
            }
            throw new Error(`still failing (${worker})`);
          },
        }),
      );
    const A = newEngine(store, 'A');
    A.engine.register(def('A'));
    const B = newEngine(store, 'B');
    B.engine.register(def('B'));
    const { sagaId } = await A.engine.start('s', {});
    await entered.promise;
    store.expireLease(sagaId);
    await B.engine.startBackground();
    await waitUntil(async () => (await load(store, sagaId)).owner === 'B', 'B to claim');
    zombieGo.resolve(); // A's attempt 2 fails late: recording it is fenced off
    const record = await B.engine.waitFor(sagaId, { timeoutMs: 3_000 });
    // Attempt 2 died with A (never recorded), so B makes attempts 2 and 3 and then gives up.
    expect(attemptsSeen).toEqual(['A#1', 'A#2', 'B#2', 'B#3']);
    expect(record.status).toBe('compensated');
    expect(stepOf(record, 'flaky')).toMatchObject({ status: 'failed', attempts: 3 });
  });

  it('resumes a saga that crashed mid-compensation without repeating finished compensations', async () => {
    const store = new InMemorySagaStore();
    const fx = new Effects();
    const entered = deferred();
    const zombieGo = deferred();
    const def = (worker: string) =>
      saga((b) =>
        b
          .step('a', {
            run: (ctx) => fx.commit(ctx, 'do:a'),
            compensate: (ctx) => fx.commit(ctx, `undo:a by ${worker}`),
          })
          .step('b', {
            dependsOn: ['a'],
            run: (ctx) => fx.commit(ctx, 'do:b'),
            compensate: async (ctx) => {
              fx.commit(ctx, `undo:b by ${worker}`);
              if (worker === 'A') {
                entered.resolve();
                await zombieGo.promise;
              }
            },
          })
          .step('c', {
            dependsOn: ['b'],
            run: (ctx) => fx.commit(ctx, 'do:c'),
            compensate: (ctx) => fx.commit(ctx, `undo:c by ${worker}`),
          })
          .step('d', {
            dependsOn: ['c'],
            retry: { maxAttempts: 1 },
            run: () => Promise.reject(new Error('boom')),
            compensate: (ctx) => fx.commit(ctx, `undo:d by ${worker}`),
          }),
      );
    const A = newEngine(store, 'A');
    A.engine.register(def('A'));
    const B = newEngine(store, 'B');
    B.engine.register(def('B'));
    const { sagaId } = await A.engine.start('s', {});
    await entered.promise; // A compensated c and is stuck compensating b
    expect((await load(store, sagaId)).status).toBe('compensating');
    store.expireLease(sagaId);
    await B.engine.startBackground();
    await waitUntil(async () => (await load(store, sagaId)).owner === 'B', 'B to claim');
    zombieGo.resolve();
    const record = await B.engine.waitFor(sagaId, { timeoutMs: 3_000 });
    expect(record.status).toBe('compensated');
    expect(fx.entries).toEqual([
      'do:a',
      'do:b',
      'do:c',
      'undo:c by A',
      'undo:b by B',
      'undo:a by B',
    ]);
    expect(record.error).toContain('boom');
  });

  it('acts on a final failure that was recorded just before the owner died', async () => {
    const store = new InMemorySagaStore();
    const fx = new Effects();
    const def = saga((b) =>
      b
        .step('a', {
          run: (ctx) => fx.commit(ctx, 'do:a'),
          compensate: (ctx) => fx.commit(ctx, 'undo:a'),
        })
        .step('b', {
          dependsOn: ['a'],
          run: (ctx) => fx.commit(ctx, 'do:b'),
          compensate: (ctx) => fx.commit(ctx, 'undo:b'),
        }),
    );
    // A worker that got as far as recording b's final failure, then vanished.
    const ghost = { sagaId: 'ghost-saga', owner: 'ghost' };
    await store.create({
      id: ghost.sagaId,
      name: 's',
      version: def.version,
      input: {},
      idempotencyKey: null,
      stepNames: def.order,
      owner: 'ghost',
      leaseMs: 60_000,
      timeoutMs: null,
    });
    await store.runStepTransaction(ghost, 'a', 'forward', 1, (tx) => {
      fx.commit({ manager: tx }, 'do:a');
      return Promise.resolve({ result: 'a', value: null });
    });
    await store.recordStepFailure(ghost, StepFailure.final('b', 'forward', 1, 'card declined'));
    store.expireLease(ghost.sagaId);

    const B = newEngine(store, 'B');
    B.engine.register(def);
    await B.engine.startBackground();
    const record = await B.engine.waitFor(ghost.sagaId, { timeoutMs: 3_000 });
    expect(record.status).toBe('compensated');
    expect(record.failedStep).toBe('b');
    expect(record.error).toContain('card declined');
    expect(fx.entries).toEqual(['do:a', 'undo:a']); // b is not re-run
  });
});

// ------------------------------------------------------------------------------ recovery races

describe('recovery races', () => {
  it('two engines recovering the same backlog never run a saga twice', async () => {
    const store = new InMemorySagaStore();
    const fx = new Effects();
    const runsBy = new Map<string, Set<string>>();
    const def = (worker: string) =>
      saga((b) =>
        b
          .step('a', {
            compensatable: false,
            run: async (ctx) => {
              (runsBy.get(ctx.sagaId) ?? runsBy.set(ctx.sagaId, new Set()).get(ctx.sagaId)!).add(
                worker,
              );
              await settle(1);
              fx.commit(ctx, `${ctx.sagaId}:a`);
            },
          })
          .step('b', {
            compensatable: false,
            run: async (ctx) => {
              await settle(1);
              fx.commit(ctx, `${ctx.sagaId}:b`);
            },
          })
          .step('c', {
            dependsOn: ['a', 'b'],
            compensatable: false,
            run: (ctx) => fx.commit(ctx, `${ctx.sagaId}:c`),
          }),
      );
    const A = newEngine(store, 'A', { recoveryIntervalMs: 1, maxConcurrentSagas: 3 });
    A.engine.register(def('A'));
    const B = newEngine(store, 'B', { recoveryIntervalMs: 1, maxConcurrentSagas: 3 });
    B.engine.register(def('B'));
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push(await startUnowned(A.engine));

    await Promise.all([A.engine.startBackground(), B.engine.startBackground()]);
    const records = await Promise.all(ids.map((id) => A.engine.waitFor(id, { timeoutMs: 5_000 })));

    expect(records.every((r) => r.status === 'completed')).toBe(true);
    for (const id of ids) {
      for (const s of ['a', 'b', 'c']) expect(fx.count(`${id}:${s}`)).toBe(1);
      expect(runsBy.get(id)!.size).toBe(1);
    }
    const resumed = [...A.events, ...B.events].filter((e) => e.type === 'saga.resumed');
    expect(resumed).toHaveLength(ids.length);
    expect(new Set(resumed.map((e) => e.sagaId)).size).toBe(ids.length);
    // Both took part (otherwise the race was not exercised).
    expect(A.events.some((e) => e.type === 'saga.resumed')).toBe(true);
    expect(B.events.some((e) => e.type === 'saga.resumed')).toBe(true);
  });

  it.each([1, 64])(
    'backs off (does not spin) when the store keeps failing for one saga (maxConcurrentSagas %i)',
    async (maxConcurrentSagas) => {
      const store = new InMemorySagaStore();
      let storeUp = false;
      // The saga's status change fails (e.g. the database went away right after the step commit).
      const failing = spyStore(store, {
        transition: ((...args: Parameters<InMemorySagaStore['transition']>) =>
          storeUp
            ? store.transition(...args)
            : Promise.reject(new Error('connection reset'))) as never,
      });
      const logger: SageLogger = {
        debug: () => {},
        info: () => {},
        warn: () => {},
        error: () => {},
      };
      const leaseMs = 40;
      const A = newEngine(failing.store, 'A', {
        recoveryIntervalMs: 5,
        leaseMs,
        logger,
        maxConcurrentSagas,
      });
      A.engine.register(saga((b) => b.step('a', { compensatable: false, run: () => 1 })));
      // Circuit breaker: a relaunch loop made only of microtasks starves timers, so without this a
      // regression would hang the whole run instead of failing this test.
      let launches = 0;
      A.engine.onEvent((e) => {
        if (e.type === 'saga.resumed' && ++launches === 1_000) void A.engine.shutdown();
      });
      const id = await startUnowned(A.engine);
      await A.engine.startBackground();
      const windowMs = 200;
      await new Promise((r) => setTimeout(r, windowMs));
      // Relaunched about once per lease (the lease is the backoff), not once per event-loop turn.
      expect(launches).toBeGreaterThanOrEqual(1);
      expect(launches).toBeLessThanOrEqual(windowMs / leaseMs + 3);
      storeUp = true;
      expect((await A.engine.waitFor(id, { timeoutMs: 3_000 })).status).toBe('completed');
    },
  );
});

// --------------------------------------------------------------------- store trouble around a step

describe('store trouble is not a step failure', () => {
  /** Logs what the engine reports at error level, by event. */
  const recordingLogger = (): SageLogger & { errors: Record<string, unknown>[] } => {
    const errors: Record<string, unknown>[] = [];
    return {
      errors,
      debug: () => {},
      info: () => {},
      warn: () => {},
      error: (_message, fields) => errors.push(fields ?? {}),
    };
  };
  /** a → b → c, compensatable, one attempt each: a single counted failure would compensate. */
  const threeSteps = (fx: Effects, runs: Map<string, number>) =>
    saga((b) => {
      const step = (name: string) => ({
        retry: { maxAttempts: 1 },
        run: (ctx: Ctx) => {
          runs.set(name, (runs.get(name) ?? 0) + 1);
          fx.commit(ctx, `do:${name}`);
          return `${name}-result`;
        },
        compensate: (ctx: Ctx) => fx.commit(ctx, `undo:${name}`),
      });
      return b
        .step('a', step('a'))
        .step('b', { ...step('b'), dependsOn: ['a'] })
        .step('c', { ...step('c'), dependsOn: ['b'] });
    });

  it.each([
    // connect / BEGIN / the step lock failed: the body never ran
    ['before-body', 1],
    // the body ran, recording it or COMMIT failed without committing: it runs again, commits once
    ['before-commit', 2],
    // COMMIT went through but its answer was lost: the step is done and not run again
    ['after-commit', 1],
  ] as const)(
    'a store failure %s stops the saga without counting an attempt; recovery finishes it, each effect once',
    async (stage, runsOfB) => {
      const store = new InMemorySagaStore();
      const fx = new Effects();
      const runs = new Map<string, number>();
      const logger = recordingLogger();
      const A = newEngine(store, 'A', { leaseMs: 40, recoveryIntervalMs: 5, logger });
      A.engine.register(threeSteps(fx, runs));
      store.injectStepFault({ step: 'b', stage });

      const { sagaId } = await A.engine.start('s', {});
      await waitUntil(
        () => A.events.some((e) => e.type === 'saga.interrupted'),
        'the saga to be interrupted',
      );
      expect(A.events.find((e) => e.type === 'saga.interrupted')).toMatchObject({
        reason: 'store-error',
      });
      const stopped = await load(store, sagaId);
      expect(stopped).toMatchObject({ status: 'running', owner: 'A', error: null });
      expect(stepOf(stopped, 'b')).toMatchObject({
        status: stage === 'after-commit' ? 'completed' : 'pending',
        attempts: stage === 'after-commit' ? 1 : 0,
        error: null,
      });
      expect(logger.errors).toEqual([
        expect.objectContaining({ event: 'saga.store_error', sagaId, step: 'b' }),
      ]);
      expect(String(logger.errors[0]!.error)).toContain('SagaStoreUnavailableError');

      // The lease is the backoff: once it runs out, recovery resumes the saga.
      await A.engine.startBackground();
      const record = await A.engine.waitFor(sagaId, { timeoutMs: 3_000 });
      expect(record.status).toBe('completed');
      expect(record.steps.map((s) => [s.name, s.status, s.attempts])).toEqual([
        ['a', 'completed', 1],
        ['b', 'completed', 1],
        ['c', 'completed', 1],
      ]);
      expect(stepOf(record, 'c').result).toBe('c-result');
      expect(fx.entries).toEqual(['do:a', 'do:b', 'do:c']);
      expect(runs.get('b')).toBe(runsOfB);
      const types = A.events.map((e) => e.type);
      expect(types.filter((t) => t === 'saga.resumed')).toHaveLength(1);
      for (const never of ['step.failed', 'step.retrying', 'saga.compensating'] as const)
        expect(types).not.toContain(never);
    },
  );

  it('a store failure during compensation counts no compensation attempt and does not park the saga', async () => {
    const store = new InMemorySagaStore();
    const fx = new Effects();
    let undoRuns = 0;
    const A = newEngine(store, 'A', {
      leaseMs: 40,
      recoveryIntervalMs: 5,
      logger: recordingLogger(),
    });
    A.engine.register(
      saga((b) =>
        b
          .step('a', {
            run: (ctx) => fx.commit(ctx, 'do:a'),
            compensate: (ctx) => {
              undoRuns++;
              fx.commit(ctx, 'undo:a');
            },
            // One counted failure would park the saga as failed.
            compensationRetry: { maxAttempts: 1 },
          })
          .step('b', {
            dependsOn: ['a'],
            compensatable: false,
            retry: { maxAttempts: 1 },
            run: () => Promise.reject(new Error('card declined')),
          }),
      ),
    );
    // The compensation of a runs, then recording it fails: nothing commits.
    store.injectStepFault({ step: 'a', phase: 'compensate', stage: 'before-commit' });
    const { sagaId } = await A.engine.start('s', {});
    await waitUntil(
      () => A.events.some((e) => e.type === 'saga.interrupted'),
      'the saga to be interrupted',
    );
    expect(A.events.find((e) => e.type === 'saga.interrupted')).toMatchObject({
      reason: 'store-error',
    });
    const stopped = await load(store, sagaId);
    expect(stopped.status).toBe('compensating');
    expect(stepOf(stopped, 'a')).toMatchObject({ status: 'completed', compensationAttempts: 0 });

    await A.engine.startBackground();
    const record = await A.engine.waitFor(sagaId, { timeoutMs: 3_000 });
    expect(record).toMatchObject({ status: 'compensated', failedStep: 'b' });
    expect(stepOf(record, 'a')).toMatchObject({ status: 'compensated', compensationAttempts: 1 });
    expect(undoRuns).toBe(2);
    expect(fx.entries).toEqual(['do:a', 'undo:a']);
    const types = A.events.map((e) => e.type);
    for (const never of ['compensation.retrying', 'compensation.failed', 'saga.failed'] as const)
      expect(types).not.toContain(never);
  });

  it('what the step body throws stays a step failure, even a SagaStoreUnavailableError', async () => {
    const store = new InMemorySagaStore();
    const fx = new Effects();
    const A = newEngine(store, 'A');
    A.engine.register(
      saga((b) =>
        b
          .step('a', {
            run: (ctx) => fx.commit(ctx, 'do:a'),
            compensate: (ctx) => fx.commit(ctx, 'undo:a'),
          })
          .step('b', {
            dependsOn: ['a'],
            compensatable: false,
            retry: { maxAttempts: 1 },
            // e.g. a nested saga's store failing inside this step
            run: (ctx) =>
              Promise.reject(
                new SagaStoreUnavailableError(
                  ctx.sagaId,
                  'other',
                  'forward',
                  'COMMIT',
                  new Error('x'),
                ),
              ),
          }),
      ),
    );
    const { sagaId } = await A.engine.start('s', {});
    const record = await A.engine.waitFor(sagaId, { timeoutMs: 3_000 });
    expect(record.status).toBe('compensated');
    expect(stepOf(record, 'b')).toMatchObject({ status: 'failed', attempts: 1 });
    expect(fx.entries).toEqual(['do:a', 'undo:a']);
    expect(A.events.some((e) => e.type === 'saga.interrupted')).toBe(false);
  });
});

// ------------------------------------------------------------------------------ version mismatch

describe('definition versions', () => {
  it('reports running instances of a changed definition and leaves them alone', async () => {
    const store = new InMemorySagaStore();
    const fx = new Effects();
    const v1 = saga((b) =>
      b.step('a', { compensatable: false, run: (ctx) => fx.commit(ctx, 'v1:a') }),
    );
    const v2 = saga((b) =>
      b.step('a', { compensatable: false, run: (ctx) => fx.commit(ctx, 'v2:a') }).step('b', {
        dependsOn: ['a'],
        compensatable: false,
        run: (ctx) => fx.commit(ctx, 'v2:b'),
      }),
    );
    expect(v2.version).not.toBe(v1.version);

    const old = newEngine(store, 'old');
    old.engine.register(v1);
    const id = await startUnowned(old.engine);
    const warnings: Record<string, unknown>[] = [];
    const logger: SageLogger = {
      debug: () => {},
      info: () => {},
      warn: (_m, f) => warnings.push(f ?? {}),
      error: () => {},
    };
    const fresh = newEngine(store, 'new', { logger });
    fresh.engine.register(v2);
    expect(await fresh.engine.versionMismatches()).toEqual([
      { saga: 's', runningVersion: v1.version, registeredVersion: v2.version, instances: 1 },
    ]);
    await fresh.engine.startBackground();
    expect(warnings.some((w) => w.event === 'saga.version_mismatch')).toBe(true);
    const ticks = fresh.engine.loopStats.recovery.ticks;
    await waitUntil(() => fresh.engine.loopStats.recovery.ticks >= ticks + 5, 'recovery ticks');
    const record = await load(store, id);
    expect(record).toMatchObject({ status: 'running', owner: null, version: v1.version });
    expect(fx.entries).toEqual([]);

    // An engine that knows nothing of the saga reports it too.
    const stranger = newEngine(store, 'stranger');
    expect(await stranger.engine.versionMismatches()).toEqual([
      { saga: 's', runningVersion: v1.version, registeredVersion: null, instances: 1 },
    ]);

    // A worker with the old definition finishes it on its own version.
    await old.engine.startBackground();
    expect((await old.engine.waitFor(id, { timeoutMs: 3_000 })).status).toBe('completed');
    expect(fx.entries).toEqual(['v1:a']);
    expect(await fresh.engine.versionMismatches()).toEqual([]);
  });
});

// ------------------------------------------------------------------------------------ shutdown

describe('graceful shutdown', () => {
  it('lets a saga finish within shutdownTimeoutMs', async () => {
    const store = new InMemorySagaStore();
    const gate = deferred();
    const A = newEngine(store, 'A', { shutdownTimeoutMs: 2_000 });
    A.engine.register(saga((b) => b.step('a', { compensatable: false, run: () => gate.promise })));
    const { sagaId } = await A.engine.start('s', {});
    const stopping = A.engine.shutdown();
    await settle();
    gate.resolve();
    await stopping;
    expect((await load(store, sagaId)).status).toBe('completed');
    expect(A.events.some((e) => e.type === 'saga.interrupted')).toBe(false);
  });

  it('interrupts a blocked saga after shutdownTimeoutMs and releases its lease for another worker', async () => {
    const store = new InMemorySagaStore();
    const fx = new Effects();
    const entered = deferred();
    let signalA: AbortSignal | undefined;
    const def = (worker: string) =>
      saga((b) =>
        b.step('a', {
          compensatable: false,
          run: async (ctx) => {
            fx.commit(ctx, `do:a by ${worker}`);
            if (worker === 'A') {
              signalA = ctx.signal;
              entered.resolve();
              await untilAborted(ctx.signal);
            }
          },
        }),
      );
    const A = newEngine(store, 'A', { shutdownTimeoutMs: 30 });
    A.engine.register(def('A'));
    const { sagaId } = await A.engine.start('s', {});
    await entered.promise;
    const began = Date.now();
    await A.engine.shutdown();
    expect(Date.now() - began).toBeGreaterThanOrEqual(28);
    expect(signalA!.aborted).toBe(true);
    expect(await load(store, sagaId)).toMatchObject({
      status: 'running',
      owner: null,
      leaseUntil: null,
    });
    expect(A.events.some((e) => e.type === 'saga.interrupted' && e.reason === 'shutdown')).toBe(
      true,
    );

    // No lease expiry needed: another worker picks it up at once.
    const B = newEngine(store, 'B');
    B.engine.register(def('B'));
    await B.engine.startBackground();
    expect((await B.engine.waitFor(sagaId, { timeoutMs: 3_000 })).status).toBe('completed');
    expect(fx.entries).toEqual(['do:a by B']);
  });

  it('returns even if a step ignores its abort signal, and fences the late commit', async () => {
    const store = new InMemorySagaStore();
    const fx = new Effects();
    const entered = deferred();
    const stuck = deferred();
    const def = (worker: string) =>
      saga((b) =>
        b.step('a', {
          compensatable: false,
          run: async (ctx) => {
            fx.commit(ctx, `do:a by ${worker}`);
            if (worker === 'A') {
              entered.resolve();
              await stuck.promise; // deaf to ctx.signal
            }
          },
        }),
      );
    const A = newEngine(store, 'A', { shutdownTimeoutMs: 20 });
    A.engine.register(def('A'));
    const { sagaId } = await A.engine.start('s', {});
    await entered.promise;
    const shutdown = A.engine.shutdown();
    const outcome = await Promise.race([
      shutdown.then(() => 'returned'),
      new Promise((r) => setTimeout(() => r('hung'), 1_000)),
    ]);
    expect(outcome).toBe('returned');
    expect(await load(store, sagaId)).toMatchObject({ status: 'running', owner: null });

    const B = newEngine(store, 'B');
    B.engine.register(def('B'));
    await B.engine.startBackground();
    await waitUntil(async () => (await load(store, sagaId)).owner === 'B', 'B to claim');
    stuck.resolve(); // A's body finally returns: its commit must be rejected
    expect((await B.engine.waitFor(sagaId, { timeoutMs: 3_000 })).status).toBe('completed');
    expect(fx.entries).toEqual(['do:a by B']);
  });

  it('does not keep driving a saga whose start() overlapped shutdown()', async () => {
    const store = new InMemorySagaStore();
    // Loads take a little while, as with a real database.
    const slow = spyStore(store, {
      load: (async (id: string) => {
        await new Promise((r) => setTimeout(r, 5));
        return store.load(id);
      }) as never,
    });
    const fx = new Effects();
    const def = (worker: string) =>
      saga((b) =>
        b.step('a', {
          compensatable: false,
          run: async (ctx) => {
            if (worker === 'A') await untilAborted(ctx.signal);
            fx.commit(ctx, `do:a by ${worker}`);
          },
        }),
      );
    const A = newEngine(slow.store, 'A', { shutdownTimeoutMs: 20 });
    A.engine.register(def('A'));
    const starting = A.engine.start('s', {});
    await A.engine.shutdown();
    const { sagaId } = await starting;
    await settle();
    expect(A.engine.loopStats.activeSagas).toBe(0);
    expect(await load(store, sagaId)).toMatchObject({ status: 'running', owner: null });

    const B = newEngine(store, 'B');
    B.engine.register(def('B'));
    await B.engine.startBackground();
    expect((await B.engine.waitFor(sagaId, { timeoutMs: 3_000 })).status).toBe('completed');
    expect(fx.entries).toEqual(['do:a by B']);
  });

  it('stops claiming: after shutdown the engine no longer picks up orphans', async () => {
    const store = new InMemorySagaStore();
    const A = newEngine(store, 'A');
    A.engine.register(saga((b) => b.step('a', { compensatable: false, run: () => 1 })));
    await A.engine.startBackground();
    await A.engine.shutdown();
    const other = newEngine(store, 'other');
    other.engine.register(saga((b) => b.step('a', { compensatable: false, run: () => 1 })));
    const id = await startUnowned(other.engine);
    await new Promise((r) => setTimeout(r, 30));
    expect(await load(store, id)).toMatchObject({ status: 'running', owner: null });
  });
});
