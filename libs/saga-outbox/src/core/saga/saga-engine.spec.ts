import {
  InvalidOptionsError,
  NotSerializableError,
  SagaDefinitionError,
  SagaInputInvalidError,
  SagaNotFoundError,
  SagaTimeoutError,
  SagaWaitTimeoutError,
  StepTimeoutError,
  UnknownSagaError,
} from '../errors';
import type { JsonValue } from '../json';
import { systemClock, type Clock } from '../ports/clock';
import type { SagaRecord, SagaStatus, StepRecord } from '../ports/saga-store';
import { InMemorySagaStore, InMemoryTx } from '../../testing/in-memory-saga-store';
import { defineSaga, type SagaBuilder } from './saga-builder';
import type { CompensationContext, SagaOptions, StepContext } from './saga-definition';
import { SagaEngine, type SagaEngineOptions } from './saga-engine';
import type { SagaEvent } from './saga-events';
import { deferred, settle, untilAborted, waitUntil } from '../../testing/async';

// ------------------------------------------------------------------------------------ helpers

type Ctx = StepContext<unknown, InMemoryTx>;
type CCtx = CompensationContext<unknown, InMemoryTx>;

/** An ordered record of what happened, including effects that only land if a step's tx commits. */
class Journal {
  readonly entries: string[] = [];
  note(entry: string): void {
    this.entries.push(entry);
  }
  /** Registers an effect that is recorded only when the step's transaction commits. */
  commit(ctx: { manager: InMemoryTx }, entry: string): void {
    ctx.manager.onCommit(() => this.entries.push(entry));
  }
  count(entry: string): number {
    return this.entries.filter((e) => e === entry).length;
  }
  matching(prefix: string): string[] {
    return this.entries.filter((e) => e.startsWith(prefix));
  }
  index(entry: string): number {
    return this.entries.indexOf(entry);
  }
}

const doIt =
  (j: Journal, name: string, value: JsonValue = name) =>
  (ctx: Ctx): JsonValue => {
    j.commit(ctx, `do:${name}`);
    return value;
  };
const undoIt =
  (j: Journal, name: string) =>
  (ctx: CCtx): void => {
    j.commit(ctx, `undo:${name}`);
  };

const fast = { maxAttempts: 1, initialDelayMs: 0 };

const engines: SagaEngine<InMemoryTx>[] = [];
function newEngine(
  store: InMemorySagaStore,
  options: Partial<SagaEngineOptions<InMemoryTx>> = {},
): SagaEngine<InMemoryTx> {
  const engine = new SagaEngine<InMemoryTx>({
    store,
    shutdownTimeoutMs: 50,
    random: () => 0.5,
    ...options,
  });
  engines.push(engine);
  return engine;
}
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.shutdown()));
});

function setup(
  build: (b: SagaBuilder<unknown, InMemoryTx>) => SagaBuilder<unknown, InMemoryTx>,
  sagaOptions: SagaOptions = {},
  engineOptions: Partial<SagaEngineOptions<InMemoryTx>> = {},
): { store: InMemorySagaStore; engine: SagaEngine<InMemoryTx>; events: SagaEvent[] } {
  const store = new InMemorySagaStore();
  const engine = newEngine(store, engineOptions);
  engine.register(build(defineSaga<unknown, InMemoryTx>('s', sagaOptions)).build());
  const events: SagaEvent[] = [];
  engine.onEvent((e) => events.push(e));
  return { store, engine, events };
}

async function runToEnd(
  engine: SagaEngine<InMemoryTx>,
  input: unknown = {},
  expected?: SagaStatus,
): Promise<SagaRecord> {
  const { sagaId } = await engine.start('s', input);
  const record = await engine.waitFor(sagaId, { timeoutMs: 5_000 });
  if (expected)
    expect({ status: record.status, error: record.error }).toMatchObject({ status: expected });
  return record;
}

function stepOf(record: SagaRecord, name: string): StepRecord {
  const s = record.steps.find((x) => x.name === name);
  if (!s) throw new Error(`no step ${name}`);
  return s;
}

async function stepStatus(store: InMemorySagaStore, id: string, name: string): Promise<string> {
  return stepOf((await store.load(id))!, name).status;
}

// ------------------------------------------------------------------------------------ executor

describe('executor', () => {
  it('runs independent steps concurrently and a dependent only after all its dependencies', async () => {
    const started = { a: deferred(), b: deferred() };
    const gate = { a: deferred(), b: deferred() };
    let cCtx: Ctx | undefined;
    const { store, engine } = setup((b) =>
      b
        .step('a', {
          compensatable: false,
          run: async () => {
            started.a.resolve();
            await gate.a.promise;
            return { n: 1 };
          },
        })
        .step('b', {
          compensatable: false,
          run: async () => {
            started.b.resolve();
            await gate.b.promise;
            return 'B';
          },
        })
        .step('c', {
          dependsOn: ['a', 'b'],
          compensatable: false,
          run: (ctx) => {
            cCtx = ctx;
            return null;
          },
        }),
    );
    const { sagaId } = await engine.start('s', { orderId: 7 });
    // Both are inside their bodies at the same time: neither can finish before the other started.
    await Promise.all([started.a.promise, started.b.promise]);
    expect(cCtx).toBeUndefined();

    gate.a.resolve();
    await waitUntil(async () => (await stepStatus(store, sagaId, 'a')) === 'completed', 'a done');
    await settle();
    expect(cCtx).toBeUndefined(); // still waiting for b

    gate.b.resolve();
    const record = await engine.waitFor(sagaId, { timeoutMs: 2_000 });
    expect(record.status).toBe('completed');
    expect(cCtx).toBeDefined();
    expect(cCtx!.results).toEqual({ a: { n: 1 }, b: 'B' });
    expect(cCtx!.idempotencyKey).toBe(`${sagaId}:c`);
    expect(cCtx!.sagaId).toBe(sagaId);
    expect(cCtx!.sagaName).toBe('s');
    expect(cCtx!.stepName).toBe('c');
    expect(cCtx!.input).toEqual({ orderId: 7 });
    expect(cCtx!.attempt).toBe(1);
    expect(cCtx!.manager).toBeInstanceOf(InMemoryTx);
    expect(cCtx!.signal.aborted).toBe(false);
    expect(stepOf(record, 'a').result).toEqual({ n: 1 });
    expect(stepOf(record, 'c').result).toBeNull();
  });

  it('gives each step the idempotency key sagaId:stepName, stable across retries', async () => {
    const keys: string[] = [];
    const { engine } = setup((b) =>
      b.step('pay', {
        compensatable: false,
        retry: { maxAttempts: 3, initialDelayMs: 0 },
        run: (ctx) => {
          keys.push(ctx.idempotencyKey);
          if (ctx.attempt < 3) throw new Error('flaky');
          return null;
        },
      }),
    );
    const record = await runToEnd(engine, {}, 'completed');
    expect(keys).toEqual([`${record.id}:pay`, `${record.id}:pay`, `${record.id}:pay`]);
  });

  it('shows later steps the results and input as stored, not live objects another step can mutate', async () => {
    let seenByC: unknown;
    let inputSeenByC: unknown;
    const { engine } = setup((b) =>
      b
        .step('a', { compensatable: false, run: () => ({ n: 1, dropped: undefined }) })
        .step('b', {
          dependsOn: ['a'],
          compensatable: false,
          run: (ctx) => {
            (ctx.results.a as { n: number }).n = 99; // a careless step
            (ctx.input as { qty: number }).qty = 0;
            return null;
          },
        })
        .step('c', {
          dependsOn: ['b'],
          compensatable: false,
          run: (ctx) => {
            seenByC = ctx.results.a;
            inputSeenByC = ctx.input;
            return null;
          },
        }),
    );
    const record = await runToEnd(engine, { qty: 3 }, 'completed');
    expect(inputSeenByC).toEqual({ qty: 3 });
    // After a crash, c would be resumed with the stored value: it must see the same without one.
    expect(seenByC).toEqual(stepOf(record, 'a').result);
    expect(seenByC).toEqual({ n: 1 });
    expect(Object.keys(seenByC as object)).toEqual(['n']);
  });

  it('records undefined step results as null', async () => {
    const { engine } = setup((b) => b.step('a', { compensatable: false, run: () => undefined }));
    const record = await runToEnd(engine, {}, 'completed');
    expect(stepOf(record, 'a')).toMatchObject({ status: 'completed', result: null, attempts: 1 });
  });

  it('emits lifecycle events and survives a throwing listener', async () => {
    const j = new Journal();
    const { engine, events } = setup((b) =>
      b.step('a', { run: doIt(j, 'a'), compensate: undoIt(j, 'a') }),
    );
    engine.onEvent(() => {
      throw new Error('listener bug');
    });
    const unsubscribed: SagaEvent[] = [];
    engine.onEvent((e) => unsubscribed.push(e))();
    const record = await runToEnd(engine, {}, 'completed');
    expect(events.map((e) => e.type)).toEqual([
      'saga.started',
      'step.started',
      'step.completed',
      'saga.completed',
    ]);
    expect(events.every((e) => e.sagaId === record.id && e.saga === 's')).toBe(true);
    expect(unsubscribed).toEqual([]);
  });
});

// --------------------------------------------------------------------------- failure strategies

describe('failure strategies', () => {
  it('FAIL_FAST aborts running siblings at once, compensates what completed, starts nothing new', async () => {
    const j = new Journal();
    const failGate = deferred();
    const siblingStarted = deferred();
    let siblingSignal: AbortSignal | undefined;
    const { engine, events } = setup(
      (b) =>
        b
          .step('quick', { run: doIt(j, 'quick'), compensate: undoIt(j, 'quick') })
          .step('fails', {
            retry: fast,
            run: async () => {
              await failGate.promise;
              throw new Error('card declined');
            },
            compensate: undoIt(j, 'fails'),
          })
          .step('slow', {
            run: async (ctx) => {
              siblingSignal = ctx.signal;
              siblingStarted.resolve();
              j.commit(ctx, 'do:slow');
              await untilAborted(ctx.signal); // would block forever without the abort
            },
            compensate: undoIt(j, 'slow'),
          })
          .step('after', {
            dependsOn: ['quick'],
            run: async (ctx) => {
              await failGate.promise;
              j.commit(ctx, 'do:after');
              await untilAborted(ctx.signal);
            },
            compensate: undoIt(j, 'after'),
          })
          .step('never', {
            dependsOn: ['fails'],
            run: doIt(j, 'never'),
            compensate: undoIt(j, 'never'),
          }),
      { failureStrategy: 'FAIL_FAST' },
    );
    const { sagaId } = await engine.start('s', {});
    await siblingStarted.promise;
    failGate.resolve();
    const record = await engine.waitFor(sagaId, { timeoutMs: 2_000 });

    expect(record.status).toBe('compensated');
    expect(record.failedStep).toBe('fails');
    expect(record.error).toContain('card declined');
    expect(siblingSignal!.aborted).toBe(true);
    expect(String((siblingSignal!.reason as Error).message)).toContain('"fails"');
    expect(j.entries).toEqual(['do:quick', 'undo:quick']);
    expect(stepOf(record, 'slow').status).toBe('pending');
    expect(stepOf(record, 'never').status).toBe('pending');
    expect(stepOf(record, 'quick').status).toBe('compensated');
    // An aborted sibling is neither a failed attempt nor a retry.
    expect(events.filter((e) => e.type === 'step.retrying')).toEqual([]);
    expect(
      events.filter((e) => e.type === 'step.failed').map((e) => 'step' in e && e.step),
    ).toEqual(['fails']);
  });

  it('FAIL_FAST also aborts a sibling that is sleeping in retry backoff', async () => {
    const failGate = deferred();
    const retrying = deferred();
    const { engine } = setup(
      (b) =>
        b
          .step('fails', {
            compensatable: false,
            retry: fast,
            run: async () => {
              await failGate.promise;
              throw new Error('boom');
            },
          })
          .step('flaky', {
            compensatable: false,
            // A minute of backoff: the saga only ends quickly if the sleep is aborted.
            retry: { maxAttempts: 5, initialDelayMs: 60_000, maxDelayMs: 60_000 },
            run: () => {
              throw new Error('flaky');
            },
          }),
      { failureStrategy: 'FAIL_FAST' },
      { random: () => 0.99 },
    );
    engine.onEvent((e) => {
      if (e.type === 'step.retrying') retrying.resolve();
    });
    const { sagaId } = await engine.start('s', {});
    await retrying.promise;
    failGate.resolve();
    const record = await engine.waitFor(sagaId, { timeoutMs: 2_000 });
    expect(record.status).toBe('compensated');
    expect(stepOf(record, 'flaky').attempts).toBe(1);
  });

  it('WAIT_ALL lets running siblings finish, then compensates them too, and starts nothing new', async () => {
    const j = new Journal();
    const siblingGate = deferred();
    const siblingStarted = deferred();
    let siblingSignal: AbortSignal | undefined;
    const { store, engine, events } = setup(
      (b) =>
        b
          .step('quick', { run: doIt(j, 'quick'), compensate: undoIt(j, 'quick') })
          .step('fails', {
            retry: fast,
            run: async () => {
              await siblingStarted.promise;
              throw new Error('boom');
            },
            compensate: undoIt(j, 'fails'),
          })
          .step('slow', {
            run: async (ctx) => {
              siblingSignal = ctx.signal;
              siblingStarted.resolve();
              await siblingGate.promise;
              j.commit(ctx, 'do:slow');
              return 'slow-result';
            },
            compensate: (ctx) => {
              j.note(`undo:slow saw ${JSON.stringify(ctx.result)}`);
              undoIt(j, 'slow')(ctx);
            },
          })
          .step('child', {
            dependsOn: ['slow'],
            run: doIt(j, 'child'),
            compensate: undoIt(j, 'child'),
          }),
      { failureStrategy: 'WAIT_ALL' },
    );
    const { sagaId } = await engine.start('s', {});
    await waitUntil(() => events.some((e) => e.type === 'step.failed'), 'the failure');
    await settle();
    expect((await store.load(sagaId))!.status).toBe('running');
    expect(siblingSignal!.aborted).toBe(false);
    expect(j.matching('undo:')).toEqual([]); // nothing compensated while a sibling still runs

    siblingGate.resolve();
    const record = await engine.waitFor(sagaId, { timeoutMs: 2_000 });
    expect(record.status).toBe('compensated');
    expect(siblingSignal!.aborted).toBe(false);
    expect(j.count('do:slow')).toBe(1);
    expect(j.count('undo:slow')).toBe(1);
    expect(j.count('undo:quick')).toBe(1);
    expect(j.entries).toContain('undo:slow saw "slow-result"');
    expect(j.count('do:child')).toBe(0); // a failure stops new steps, even under WAIT_ALL
    expect(j.count('undo:fails')).toBe(0);
    expect(stepOf(record, 'child').status).toBe('pending');
  });

  it('FAIL_FAST_WITH_GRACE: a sibling done within the grace is kept (and compensated), one exceeding it is aborted', async () => {
    const graceMs = 80;
    const j = new Journal();
    const bothStarted = { inGrace: deferred(), tooSlow: deferred() };
    const inGraceGate = deferred();
    let failedAt = 0;
    let abortedAt = 0;
    let tooSlowSignal: AbortSignal | undefined;
    const { engine } = setup(
      (b) =>
        b
          .step('fails', {
            retry: fast,
            compensatable: false,
            run: async () => {
              await Promise.all([bothStarted.inGrace.promise, bothStarted.tooSlow.promise]);
              throw new Error('boom');
            },
          })
          .step('in-grace', {
            run: async (ctx) => {
              bothStarted.inGrace.resolve();
              await inGraceGate.promise;
              j.commit(ctx, 'do:in-grace');
            },
            compensate: undoIt(j, 'in-grace'),
          })
          .step('too-slow', {
            run: async (ctx) => {
              tooSlowSignal = ctx.signal;
              ctx.signal.addEventListener('abort', () => (abortedAt = Date.now()));
              bothStarted.tooSlow.resolve();
              j.commit(ctx, 'do:too-slow');
              await untilAborted(ctx.signal);
            },
            compensate: undoIt(j, 'too-slow'),
          }),
      { failureStrategy: 'FAIL_FAST_WITH_GRACE', graceMs },
    );
    engine.onEvent((e) => {
      if (e.type === 'step.failed') {
        failedAt = Date.now();
        inGraceGate.resolve(); // finishes well inside the grace period
      }
    });
    const record = await runToEnd(engine, {}, 'compensated');
    expect(j.count('do:in-grace')).toBe(1);
    expect(j.count('undo:in-grace')).toBe(1);
    expect(tooSlowSignal!.aborted).toBe(true);
    expect(j.count('do:too-slow')).toBe(0);
    expect(j.count('undo:too-slow')).toBe(0);
    expect(abortedAt - failedAt).toBeGreaterThanOrEqual(graceMs - 2);
    expect(stepOf(record, 'too-slow').status).toBe('pending');
  });
});

// --------------------------------------------------------------------------------- compensation

describe('compensation', () => {
  it('undoes only completed steps, in reverse topological order, with their results and the reason', async () => {
    const j = new Journal();
    const contexts = new Map<string, CCtx>();
    const comp = (name: string) => (ctx: CCtx) => {
      contexts.set(name, ctx);
      undoIt(j, name)(ctx);
    };
    // a -> (b, c) -> d -> e(fails); f is independent and completes; g is read-only.
    const { engine } = setup((b) =>
      b
        .step('e', {
          dependsOn: ['d'],
          retry: fast,
          run: () => Promise.reject(new Error('no stock')),
          compensate: comp('e'),
        })
        .step('d', { dependsOn: ['b', 'c'], run: doIt(j, 'd', { d: 4 }), compensate: comp('d') })
        .step('c', { dependsOn: ['a'], run: doIt(j, 'c'), compensate: comp('c') })
        .step('b', { dependsOn: ['a'], run: doIt(j, 'b'), compensate: comp('b') })
        .step('a', { run: doIt(j, 'a'), compensate: comp('a') })
        .step('g', { dependsOn: ['a'], compensatable: false, run: doIt(j, 'g') })
        .step('f', { run: doIt(j, 'f'), compensate: comp('f') }),
    );
    const record = await runToEnd(engine, { order: 1 }, 'compensated');
    const undos = j.matching('undo:');
    expect([...undos].sort()).toEqual(['undo:a', 'undo:b', 'undo:c', 'undo:d', 'undo:f']);
    const at = (s: string) => undos.indexOf(`undo:${s}`);
    expect(at('d')).toBeLessThan(at('b'));
    expect(at('d')).toBeLessThan(at('c'));
    expect(at('b')).toBeLessThan(at('a'));
    expect(at('c')).toBeLessThan(at('a'));
    // Every undo after its do.
    for (const s of ['a', 'b', 'c', 'd', 'f'])
      expect(j.index(`undo:${s}`)).toBeGreaterThan(j.index(`do:${s}`));

    const d = contexts.get('d')!;
    expect(d.result).toEqual({ d: 4 });
    expect(d.reason).toContain('"e"');
    expect(d.reason).toContain('no stock');
    expect(d.idempotencyKey).toBe(`${record.id}:d:compensate`);
    expect(d.input).toEqual({ order: 1 });
    expect(d.results).toMatchObject({ a: 'a', b: 'b', c: 'c', d: { d: 4 } });
    expect(stepOf(record, 'g').status).toBe('completed');
    expect(stepOf(record, 'e').status).toBe('failed');
    for (const s of ['a', 'b', 'c', 'd', 'f']) expect(stepOf(record, s).status).toBe('compensated');
  });

  it('gives a compensation the key its forward action was given (ctx.forwardIdempotencyKey), on every attempt', async () => {
    const forwardKeys: string[] = [];
    const seen: { key: string; forwardKey: string; attempt: number }[] = [];
    const { engine } = setup((b) =>
      b
        .step('charge', {
          run: (ctx) => {
            forwardKeys.push(ctx.idempotencyKey);
            return { charged: true };
          },
          compensationRetry: { maxAttempts: 2, initialDelayMs: 0 },
          compensate: (ctx) => {
            seen.push({
              key: ctx.idempotencyKey,
              forwardKey: ctx.forwardIdempotencyKey,
              attempt: ctx.attempt,
            });
            if (ctx.attempt === 1) throw new Error('refund service unavailable');
          },
        })
        .step('ship', {
          dependsOn: ['charge'],
          retry: fast,
          compensatable: false,
          run: () => Promise.reject(new Error('no stock')),
        }),
    );
    const record = await runToEnd(engine, {}, 'compensated');
    expect(forwardKeys).toEqual([`${record.id}:charge`]);
    expect(seen).toEqual([
      { key: `${record.id}:charge:compensate`, forwardKey: `${record.id}:charge`, attempt: 1 },
      { key: `${record.id}:charge:compensate`, forwardKey: `${record.id}:charge`, attempt: 2 },
    ]);
  });

  it('retries a compensation with its own policy, not the forward one', async () => {
    const j = new Journal();
    const { engine, events } = setup((b) =>
      b
        .step('a', {
          retry: { maxAttempts: 1 },
          compensationRetry: { maxAttempts: 3, initialDelayMs: 4, multiplier: 2 },
          run: doIt(j, 'a'),
          compensate: (ctx) => {
            j.commit(ctx, `undo:a#${ctx.attempt}`);
            if (ctx.attempt < 3) throw new Error(`undo attempt ${ctx.attempt} failed`);
          },
        })
        .step('b', {
          dependsOn: ['a'],
          retry: fast,
          run: () => {
            throw new Error('boom');
          },
          compensate: undoIt(j, 'b'),
        }),
    );
    const record = await runToEnd(engine, {}, 'compensated');
    expect(j.matching('undo:')).toEqual(['undo:a#3']); // failed attempts rolled back
    expect(stepOf(record, 'a')).toMatchObject({ status: 'compensated', compensationAttempts: 3 });
    const retrying = events.filter((e) => e.type === 'compensation.retrying');
    expect(retrying.map((e) => 'delayMs' in e && e.delayMs)).toEqual([2, 4]); // random() = 0.5
  });

  it('parks the saga as failed, naming the step, when a compensation keeps failing', async () => {
    const j = new Journal();
    let attempts = 0;
    const { engine, events } = setup((b) =>
      b
        .step('reserve', { run: doIt(j, 'reserve'), compensate: undoIt(j, 'reserve') })
        .step('charge', {
          dependsOn: ['reserve'],
          compensationRetry: { maxAttempts: 4, initialDelayMs: 0 },
          run: doIt(j, 'charge'),
          compensate: () => {
            attempts++;
            throw new Error('refund API down');
          },
        })
        .step('ship', {
          dependsOn: ['charge'],
          retry: fast,
          run: () => {
            throw new Error('no courier');
          },
          compensate: undoIt(j, 'ship'),
        }),
    );
    const record = await runToEnd(engine, {}, 'failed');
    expect(attempts).toBe(4);
    expect(record.failedStep).toBe('charge');
    expect(record.error).toContain('compensation of step "charge" failed after 4 attempts');
    expect(record.error).toContain('refund API down');
    expect(record.error).toContain('no courier'); // the original failure stays visible
    expect(stepOf(record, 'charge')).toMatchObject({
      status: 'compensation_failed',
      compensationAttempts: 4,
    });
    expect(record.owner).toBeNull();
    expect(events.some((e) => e.type === 'compensation.failed')).toBe(true);
    expect(events.at(-1)!.type).toBe('saga.failed');
  });

  it('stops retrying a compensation whose error is not retryable', async () => {
    let attempts = 0;
    const { engine } = setup((b) =>
      b
        .step('a', {
          compensationRetry: { maxAttempts: 10, initialDelayMs: 0, retryable: () => false },
          run: () => 1,
          compensate: () => {
            attempts++;
            throw new Error('permanent');
          },
        })
        .step('b', {
          dependsOn: ['a'],
          retry: fast,
          compensatable: false,
          run: () => {
            throw new Error('x');
          },
        }),
    );
    const record = await runToEnd(engine, {}, 'failed');
    expect(attempts).toBe(1);
    expect(record.failedStep).toBe('a');
  });
});

// ---------------------------------------------------------------------------------------- pivot

describe('pivot', () => {
  it('retries a step after the pivot forward (up to afterPivotMaxAttempts) and never compensates', async () => {
    const j = new Journal();
    const { engine } = setup(
      (b) =>
        b
          .step('reserve', { run: doIt(j, 'reserve'), compensate: undoIt(j, 'reserve') })
          .step('ship', { dependsOn: ['reserve'], pivot: true, run: doIt(j, 'ship') })
          .step('email', {
            dependsOn: ['ship'],
            retry: { maxAttempts: 1, initialDelayMs: 0 },
            run: (ctx) => {
              if (ctx.attempt < 4) throw new Error(`smtp ${ctx.attempt}`);
              j.commit(ctx, 'do:email');
              return null;
            },
          }),
      { afterPivotMaxAttempts: 4 },
    );
    const record = await runToEnd(engine, {}, 'completed');
    expect(stepOf(record, 'email').attempts).toBe(4);
    expect(j.matching('undo:')).toEqual([]);
  });

  it('parks the saga as failed with an operator-visible reason when a step after the pivot keeps failing', async () => {
    const j = new Journal();
    let attempts = 0;
    const { engine } = setup(
      (b) =>
        b
          .step('reserve', { run: doIt(j, 'reserve'), compensate: undoIt(j, 'reserve') })
          .step('ship', { dependsOn: ['reserve'], pivot: true, run: doIt(j, 'ship') })
          .step('email', {
            dependsOn: ['ship'],
            retry: { maxAttempts: 2, initialDelayMs: 0 },
            run: () => {
              attempts++;
              throw new Error('smtp down');
            },
          }),
      { afterPivotMaxAttempts: 5 },
    );
    const record = await runToEnd(engine, {}, 'failed');
    expect(attempts).toBe(5);
    expect(record.failedStep).toBe('email');
    expect(record.error).toContain('step "email" failed');
    expect(record.error).toContain('smtp down');
    expect(record.error).toMatch(/pivot/);
    expect(j.matching('undo:')).toEqual([]);
    expect(stepOf(record, 'reserve').status).toBe('completed');
    expect(stepOf(record, 'email')).toMatchObject({ status: 'failed', attempts: 5 });
  });

  it('compensates the steps before a pivot that fails', async () => {
    const j = new Journal();
    const { engine } = setup((b) =>
      b
        .step('reserve', { run: doIt(j, 'reserve'), compensate: undoIt(j, 'reserve') })
        .step('ship', {
          dependsOn: ['reserve'],
          pivot: true,
          retry: { maxAttempts: 2, initialDelayMs: 0 },
          run: () => {
            throw new Error('warehouse closed');
          },
        }),
    );
    const record = await runToEnd(engine, {}, 'compensated');
    expect(j.entries).toEqual(['do:reserve', 'undo:reserve']);
    expect(stepOf(record, 'ship').attempts).toBe(2);
  });

  it('retries forward a step running beside the pivot once the pivot has completed', async () => {
    const j = new Journal();
    const pivotDone = deferred();
    const { engine } = setup(
      (b) =>
        b
          .step('ship', {
            pivot: true,
            run: (ctx) => {
              ctx.manager.onCommit(() => pivotDone.resolve());
              return null;
            },
          })
          .step('side', {
            retry: { maxAttempts: 1, initialDelayMs: 0 },
            run: async (ctx) => {
              if (ctx.attempt === 1) {
                await pivotDone.promise;
                throw new Error('transient');
              }
              j.commit(ctx, 'do:side');
            },
            compensate: undoIt(j, 'side'),
          }),
      { afterPivotMaxAttempts: 3 },
    );
    const record = await runToEnd(engine, {}, 'completed');
    expect(stepOf(record, 'side').attempts).toBe(2);
    expect(j.entries).toEqual(['do:side']);
  });

  it('retries forward a second pivot that follows a completed pivot', async () => {
    const { engine } = setup(
      (b) =>
        b
          .step('reserve', { run: () => null, compensate: () => undefined })
          .step('charge', { dependsOn: ['reserve'], pivot: true, run: () => null })
          .step('ship', {
            dependsOn: ['charge'],
            pivot: true,
            retry: { maxAttempts: 1, initialDelayMs: 0 },
            run: (ctx) => {
              if (ctx.attempt < 3) throw new Error('courier busy');
              return null;
            },
          }),
      { afterPivotMaxAttempts: 5 },
    );
    const record = await runToEnd(engine, {}, 'completed');
    expect(stepOf(record, 'ship').attempts).toBe(3);
  });
});

// ------------------------------------------------------- pivot beside a failing step (strategies)

/**
 * A step before the pivot uses up its attempts while the pivot, beside it, still runs. If the
 * pivot then completes, the saga is past its point of no return: the step must be retried forward,
 * not the saga parked as failed (DESIGN.md, pivot).
 */
describe('a pivot completing after a sibling used up its attempts', () => {
  /** Resolves once the step's last failure is in: its verdict awaited, or (before the fix) final. */
  function verdictPending(events: SagaEvent[], lines: string[], step: string): Promise<void> {
    return waitUntil(
      () =>
        lines.includes(`saga.step.awaiting_pivot:${step}`) ||
        events.some((e) => e.type === 'step.failed' && e.step === step),
      `step "${step}" out of attempts`,
    );
  }
  const logger = (lines: string[]) => ({
    debug: () => undefined,
    warn: () => undefined,
    error: () => undefined,
    info: (_m: string, f?: Record<string, unknown>) => {
      lines.push(`${String(f?.event)}:${String(f?.step)}`);
    },
  });

  /** reserve → (ship: pivot ‖ side); side fails its one attempt while ship waits for that. */
  function pivotBesideFailingStep(
    j: Journal,
    sagaOptions: SagaOptions,
    pivot: (ctx: Ctx, sideOut: Promise<void>) => Promise<JsonValue>,
  ) {
    const lines: string[] = [];
    let sideOut: Promise<void> = Promise.resolve();
    const built = setup(
      (b) =>
        b
          .step('reserve', { run: doIt(j, 'reserve'), compensate: undoIt(j, 'reserve') })
          .step('ship', {
            dependsOn: ['reserve'],
            pivot: true,
            run: (ctx) => pivot(ctx, sideOut),
          })
          .step('side', {
            dependsOn: ['reserve'],
            retry: { maxAttempts: 1, initialDelayMs: 0 },
            run: (ctx) => {
              if (ctx.attempt === 1) throw new Error('transient');
              j.commit(ctx, 'do:side');
              return null;
            },
            compensate: undoIt(j, 'side'),
          }),
      { afterPivotMaxAttempts: 3, ...sagaOptions },
      { logger: logger(lines) },
    );
    sideOut = new Promise((resolve) => {
      void verdictPending(built.events, lines, 'side').then(resolve);
    });
    return { ...built, lines };
  }

  it('WAIT_ALL: the step is retried forward and the saga completes, nothing compensated', async () => {
    const j = new Journal();
    const { engine, lines } = pivotBesideFailingStep(
      j,
      { failureStrategy: 'WAIT_ALL' },
      async (ctx, sideOut) => {
        await sideOut;
        j.commit(ctx, 'do:ship');
        return 'shipped';
      },
    );
    const record = await runToEnd(engine, {}, 'completed');
    expect(stepOf(record, 'side')).toMatchObject({ status: 'completed', attempts: 2 });
    expect(stepOf(record, 'ship')).toMatchObject({ status: 'completed', result: 'shipped' });
    expect(j.matching('undo:')).toEqual([]);
    expect(j.count('do:side')).toBe(1);
    expect(lines).toContain('saga.step.awaiting_pivot:side');
  });

  it('FAIL_FAST_WITH_GRACE: a pivot completing within the grace does the same', async () => {
    const j = new Journal();
    const { engine } = pivotBesideFailingStep(
      j,
      { failureStrategy: 'FAIL_FAST_WITH_GRACE', graceMs: 5_000 },
      async (ctx, sideOut) => {
        await sideOut;
        j.commit(ctx, 'do:ship');
        return null;
      },
    );
    const record = await runToEnd(engine, {}, 'completed');
    expect(stepOf(record, 'side')).toMatchObject({ status: 'completed', attempts: 2 });
    expect(j.matching('undo:')).toEqual([]);
  });

  it('WAIT_ALL: if the pivot fails instead, the step fails for good and the saga compensates', async () => {
    const j = new Journal();
    const { engine } = pivotBesideFailingStep(
      j,
      { failureStrategy: 'WAIT_ALL' },
      async (_ctx, sideOut) => {
        await sideOut;
        throw new Error('warehouse closed');
      },
    );
    const record = await runToEnd(engine, {}, 'compensated');
    expect(stepOf(record, 'side')).toMatchObject({ status: 'failed', attempts: 1 });
    expect(stepOf(record, 'ship').status).toBe('failed');
    expect(j.entries).toEqual(['do:reserve', 'undo:reserve']);
  });

  it('FAIL_FAST: the running pivot is stopped at once (it rolls back) and the saga compensates', async () => {
    const j = new Journal();
    let pivotSignal: AbortSignal | undefined;
    const { engine } = pivotBesideFailingStep(j, { failureStrategy: 'FAIL_FAST' }, async (ctx) => {
      pivotSignal = ctx.signal;
      j.commit(ctx, 'do:ship');
      return untilAborted(ctx.signal);
    });
    const record = await runToEnd(engine, {}, 'compensated');
    expect(pivotSignal!.aborted).toBe(true);
    expect(stepOf(record, 'ship').status).toBe('pending');
    expect(stepOf(record, 'side')).toMatchObject({ status: 'failed', attempts: 1 });
    expect(j.entries).toEqual(['do:reserve', 'undo:reserve']);
  });
});

// --------------------------------------------------------------------------------- retry policy

describe('retry policy in the runner', () => {
  it('makes exactly maxAttempts attempts with full-jitter backoff from the injected random', async () => {
    const attempts: number[] = [];
    const { engine, events } = setup(
      (b) =>
        b.step('a', {
          compensatable: false,
          retry: { maxAttempts: 3, initialDelayMs: 8, multiplier: 2, maxDelayMs: 100 },
          run: (ctx) => {
            attempts.push(ctx.attempt);
            throw new Error(`fail ${ctx.attempt}`);
          },
        }),
      {},
      { random: () => 0.5 },
    );
    const record = await runToEnd(engine, {}, 'compensated');
    expect(attempts).toEqual([1, 2, 3]);
    expect(stepOf(record, 'a')).toMatchObject({ status: 'failed', attempts: 3, error: 'fail 3' });
    const retrying = events.filter((e) => e.type === 'step.retrying');
    expect(retrying.map((e) => 'delayMs' in e && e.delayMs)).toEqual([4, 8]);
    expect(retrying.map((e) => 'attempt' in e && e.attempt)).toEqual([1, 2]);
  });

  it('commits only the successful attempt, never the writes of failed ones', async () => {
    const j = new Journal();
    const { engine } = setup((b) =>
      b.step('a', {
        compensatable: false,
        retry: { maxAttempts: 3, initialDelayMs: 0 },
        run: (ctx) => {
          j.commit(ctx, `write#${ctx.attempt}`);
          if (ctx.attempt < 3) throw new Error('flaky');
          return 'ok';
        },
      }),
    );
    const record = await runToEnd(engine, {}, 'completed');
    expect(j.entries).toEqual(['write#3']);
    expect(stepOf(record, 'a')).toMatchObject({ attempts: 3, result: 'ok' });
  });

  it('stops retrying when the retryable predicate says no', async () => {
    class Declined extends Error {}
    let attempts = 0;
    const { engine } = setup((b) =>
      b.step('a', {
        compensatable: false,
        retry: { maxAttempts: 5, initialDelayMs: 0, retryable: (e) => !(e instanceof Declined) },
        run: () => {
          attempts++;
          throw new Declined('card declined');
        },
      }),
    );
    await runToEnd(engine, {}, 'compensated');
    expect(attempts).toBe(1);
  });

  it('treats a non-serialisable step result as a failure that is not retried and not committed', async () => {
    const j = new Journal();
    let attempts = 0;
    const { engine } = setup((b) =>
      b.step('a', { run: doIt(j, 'a'), compensate: undoIt(j, 'a') }).step('b', {
        dependsOn: ['a'],
        retry: { maxAttempts: 5, initialDelayMs: 0 },
        run: (ctx) => {
          attempts++;
          j.commit(ctx, 'do:b');
          return { when: new Date() };
        },
        compensate: undoIt(j, 'b'),
      }),
    );
    const record = await runToEnd(engine, {}, 'compensated');
    expect(attempts).toBe(1);
    expect(j.entries).toEqual(['do:a', 'undo:a']);
    expect(stepOf(record, 'b').status).toBe('failed');
    expect(stepOf(record, 'b').error).toContain('NotSerializableError');
    expect(stepOf(record, 'b').error).toContain('$.when');
  });
});

// ------------------------------------------------------------------------------------- timeouts

describe('timeouts', () => {
  it('aborts ctx.signal on a step timeout and counts it as a failed, retried attempt', async () => {
    const reasons: unknown[] = [];
    const { engine } = setup((b) =>
      b.step('a', {
        compensatable: false,
        timeoutMs: 20,
        retry: { maxAttempts: 2, initialDelayMs: 0 },
        run: async (ctx) => {
          if (ctx.attempt === 1) {
            try {
              await untilAborted(ctx.signal);
            } catch (e) {
              reasons.push(e);
              throw e;
            }
          }
          return 'second time lucky';
        },
      }),
    );
    const record = await runToEnd(engine, {}, 'completed');
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toBeInstanceOf(StepTimeoutError);
    expect(stepOf(record, 'a')).toMatchObject({ attempts: 2, result: 'second time lucky' });
  });

  it('does not commit a timed-out attempt whose body finishes late', async () => {
    const j = new Journal();
    const { engine } = setup((b) =>
      b.step('a', {
        compensatable: false,
        timeoutMs: 20,
        retry: { maxAttempts: 2, initialDelayMs: 0 },
        run: async (ctx) => {
          j.commit(ctx, `write#${ctx.attempt}`);
          if (ctx.attempt === 1) {
            // Ignores the signal's rejection and completes normally, after the timeout.
            await new Promise<void>((r) => ctx.signal.addEventListener('abort', () => r()));
            return 'late';
          }
          return 'on time';
        },
      }),
    );
    const record = await runToEnd(engine, {}, 'completed');
    expect(j.entries).toEqual(['write#2']);
    expect(stepOf(record, 'a').result).toBe('on time');
  });

  it('fails the step for good when the timeout exhausts its attempts, then compensates', async () => {
    const j = new Journal();
    const { engine } = setup((b) =>
      b.step('a', { run: doIt(j, 'a'), compensate: undoIt(j, 'a') }).step('b', {
        dependsOn: ['a'],
        timeoutMs: 15,
        retry: fast,
        run: (ctx) => untilAborted(ctx.signal),
        compensate: undoIt(j, 'b'),
      }),
    );
    const record = await runToEnd(engine, {}, 'compensated');
    expect(j.entries).toEqual(['do:a', 'undo:a']);
    expect(stepOf(record, 'b').error).toContain('exceeded its timeout of 15 ms');
  });

  it('compensates when the whole saga times out, aborting running steps with SagaTimeoutError', async () => {
    const j = new Journal();
    let reason: unknown;
    const { engine } = setup(
      (b) =>
        b.step('a', { run: doIt(j, 'a'), compensate: undoIt(j, 'a') }).step('b', {
          dependsOn: ['a'],
          run: async (ctx) => {
            j.commit(ctx, 'do:b');
            try {
              await untilAborted(ctx.signal);
            } catch (e) {
              reason = e;
              throw e;
            }
          },
          compensate: undoIt(j, 'b'),
        }),
      { timeoutMs: 40 },
    );
    const record = await runToEnd(engine, {}, 'compensated');
    expect(reason).toBeInstanceOf(SagaTimeoutError);
    expect(j.entries).toEqual(['do:a', 'undo:a']);
    expect(record.error).toMatch(/timed out/);
    expect(record.deadlineAt).not.toBeNull();
  });

  it('fails (does not compensate) when the saga times out past its pivot', async () => {
    const j = new Journal();
    const { engine } = setup(
      (b) =>
        b
          .step('a', { run: doIt(j, 'a'), compensate: undoIt(j, 'a') })
          .step('p', { dependsOn: ['a'], pivot: true, run: doIt(j, 'p') })
          .step('after', { dependsOn: ['p'], run: (ctx) => untilAborted(ctx.signal) }),
      { timeoutMs: 40 },
    );
    const record = await runToEnd(engine, {}, 'failed');
    expect(record.error).toMatch(/timed out/);
    expect(record.error).toMatch(/pivot/);
    expect(j.matching('undo:')).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------- start

describe('start', () => {
  function simple(validate?: SagaOptions['validate']) {
    const j = new Journal();
    const ctx = setup(
      (b) => b.step('a', { run: doIt(j, 'a'), compensate: undoIt(j, 'a') }),
      validate ? { validate } : {},
    );
    return { ...ctx, j };
  }

  it('is idempotent per key: same id, created false, nothing re-run', async () => {
    const { engine, j } = simple();
    const first = await engine.start('s', { n: 1 }, { idempotencyKey: 'order-1' });
    await engine.waitFor(first.sagaId);
    // The same request again (a different input conflicts: saga-idempotency.spec.ts).
    const again = await engine.start('s', { n: 1 }, { idempotencyKey: 'order-1' });
    expect(first.created).toBe(true);
    expect(again).toEqual({ sagaId: first.sagaId, created: false });
    await settle();
    expect(j.entries).toEqual(['do:a']);
    expect((await engine.get(first.sagaId)).input).toEqual({ n: 1 });
  });

  it('is idempotent while the first saga is still running, and under concurrent starts', async () => {
    const j = new Journal();
    const gate = deferred();
    const { engine } = setup((b) =>
      b.step('a', {
        compensatable: false,
        run: async (ctx) => {
          await gate.promise;
          j.commit(ctx, 'do:a');
        },
      }),
    );
    const results = await Promise.all(
      [1, 2, 3].map(() => engine.start('s', {}, { idempotencyKey: 'k' })),
    );
    expect(new Set(results.map((r) => r.sagaId)).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    gate.resolve();
    await engine.waitFor(results[0]!.sagaId);
    expect(j.entries).toEqual(['do:a']);
  });

  it('scopes idempotency keys to the saga name', async () => {
    const store = new InMemorySagaStore();
    const engine = newEngine(store);
    engine.register(
      defineSaga('one')
        .step('a', { compensatable: false, run: () => 1 })
        .build(),
    );
    engine.register(
      defineSaga('two')
        .step('a', { compensatable: false, run: () => 2 })
        .build(),
    );
    const a = await engine.start('one', {}, { idempotencyKey: 'k' });
    const b = await engine.start('two', {}, { idempotencyKey: 'k' });
    expect(a.sagaId).not.toBe(b.sagaId);
    expect(b.created).toBe(true);
  });

  it('rejects an unknown saga with UnknownSagaError listing the known ones', async () => {
    const { engine } = simple();
    const err = await engine.start('nope', {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnknownSagaError);
    expect((err as Error).message).toContain('"nope"');
    expect((err as Error).message).toContain('"s"');
  });

  it.each([
    ['returns false', () => false, 'validator returned false'],
    ['returns a message', () => 'amount must be positive', 'amount must be positive'],
    [
      'throws',
      () => {
        throw new Error('schema mismatch');
      },
      'schema mismatch',
    ],
  ])('rejects input when the validator %s, writing nothing', async (_label, validate, reason) => {
    const { engine, store, j } = simple(validate);
    const create = jest.spyOn(store, 'create');
    const err = await engine.start('s', { amount: -1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SagaInputInvalidError);
    expect((err as Error).message).toContain('"s"');
    expect((err as Error).message).toContain(reason);
    expect(create).not.toHaveBeenCalled();
    expect(await store.activeVersions()).toEqual([]);
    expect(j.entries).toEqual([]);
  });

  it('attaches the validator error as cause', async () => {
    const cause = new Error('schema mismatch');
    const { engine } = simple(() => {
      throw cause;
    });
    const err = (await engine.start('s', {}).catch((e: unknown) => e)) as SagaInputInvalidError;
    expect(err.cause).toBe(cause);
  });

  it('accepts input when the validator returns true or nothing', async () => {
    for (const validate of [() => true, () => undefined]) {
      const { engine } = simple(validate);
      await expect(runToEnd(engine, {}, 'completed')).resolves.toBeDefined();
    }
  });

  class Money {
    constructor(readonly cents: number) {}
  }
  const circular: Record<string, unknown> = {};
  circular.me = circular;
  it.each([
    ['a function', { cb: () => 1 }],
    ['a BigInt', { amount: 10n }],
    ['a class instance', { price: new Money(5) }],
    ['a cycle', circular],
    ['NaN', { amount: Number.NaN }],
    ['a Date', { at: new Date() }],
    ['undefined', undefined],
  ])(
    'rejects input containing %s with NotSerializableError, writing nothing',
    async (_l, input) => {
      const { engine, store, j } = simple();
      const create = jest.spyOn(store, 'create');
      const err = await engine.start('s', input).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotSerializableError);
      expect((err as Error).message).toContain('Input of saga "s"');
      expect(create).not.toHaveBeenCalled();
      expect(await store.activeVersions()).toEqual([]);
      expect(j.entries).toEqual([]);
    },
  );

  it.each([
    ['empty', ''],
    ['too long', 'k'.repeat(257)],
    ['not a string', 42],
  ])('rejects an idempotency key that is %s', async (_l, key) => {
    const { engine, store } = simple();
    const create = jest.spyOn(store, 'create');
    await expect(engine.start('s', {}, { idempotencyKey: key as string })).rejects.toBeInstanceOf(
      InvalidOptionsError,
    );
    expect(create).not.toHaveBeenCalled();
  });

  it('refuses to register two sagas under one name', () => {
    const { engine } = simple();
    expect(() =>
      engine.register(
        defineSaga('s')
          .step('x', { compensatable: false, run: () => 1 })
          .build(),
      ),
    ).toThrow(SagaDefinitionError);
  });

  it('runs a started saga from the state it just wrote, without reading it back', async () => {
    const seen: unknown[] = [];
    const { engine, store, events } = setup(
      (b) =>
        b
          .step('a', { compensatable: false, run: (ctx) => (seen.push(ctx.input), 'a') })
          .step('b', { dependsOn: ['a'], compensatable: false, run: (ctx) => ctx.results.a }),
      { timeoutMs: 60_000 },
    );
    const load = jest.spyOn(store, 'load');
    const input = { order: 'o-1', skipped: undefined, lines: [{ sku: 'x', qty: 2 }] };
    const { sagaId } = await engine.start('s', input);
    input.lines[0]!.qty = 99; // the caller's object is not what the steps see
    await waitUntil(() => events.some((e) => e.type === 'saga.completed'), 'the saga to complete');
    expect(load).not.toHaveBeenCalled();
    expect(seen).toEqual([{ order: 'o-1', lines: [{ sku: 'x', qty: 2 }] }]);
    expect(Object.keys(seen[0] as object)).not.toContain('skipped');
    const record = (await store.load(sagaId))!;
    expect(record).toMatchObject({ status: 'completed', input: { order: 'o-1' } });
    expect(stepOf(record, 'b')).toMatchObject({ status: 'completed', result: 'a', attempts: 1 });
  });

  it('refuses to start once shutdown has begun, writing nothing', async () => {
    const { engine, store } = simple();
    await engine.shutdown();
    const create = jest.spyOn(store, 'create');
    await expect(engine.start('s', {})).rejects.toBeInstanceOf(InvalidOptionsError);
    expect(create).not.toHaveBeenCalled();
  });

  it('starts inside a caller transaction only when it commits, leaving it to a worker', async () => {
    const j = new Journal();
    const { engine, store } = setup(
      (b) => b.step('a', { run: doIt(j, 'a'), compensate: undoIt(j, 'a') }),
      {},
      { recoveryIntervalMs: 5 },
    );
    const tx = new InMemoryTx();
    const { sagaId, created } = await engine.start('s', {}, { manager: tx });
    expect(created).toBe(true);
    expect(await store.load(sagaId)).toBeUndefined(); // not committed yet
    tx.commit();
    const stored = (await store.load(sagaId))!;
    expect(stored.owner).toBeNull(); // nobody runs it inside the caller's transaction
    await engine.startBackground();
    engine.resumePending();
    const record = await engine.waitFor(sagaId, { timeoutMs: 2_000 });
    expect(record.status).toBe('completed');
    expect(j.entries).toEqual(['do:a']);
  });
});

// ---------------------------------------------------------------------------------------- options

describe('engine options', () => {
  const store = new InMemorySagaStore();
  it.each([
    ['leaseMs', { leaseMs: 0 }],
    ['leaseMs', { leaseMs: -1 }],
    ['leaseMs', { leaseMs: Number.NaN }],
    ['leaseMs', { leaseMs: Number.POSITIVE_INFINITY }],
    ['maxConcurrentSagas', { maxConcurrentSagas: 0 }],
    ['maxConcurrentSagas', { maxConcurrentSagas: 1.5 }],
    ['shutdownTimeoutMs', { shutdownTimeoutMs: -1 }],
    ['shutdownTimeoutMs', { shutdownTimeoutMs: Number.NaN }],
    ['recoveryIntervalMs', { recoveryIntervalMs: 0 }],
    ['ownerId', { ownerId: '' }],
    ['ownerId', { ownerId: 42 as unknown as string }],
    ['store', { store: undefined as unknown as InMemorySagaStore }],
  ])('rejects an invalid %s with InvalidOptionsError naming it', (option, bad) => {
    let caught: unknown;
    try {
      new SagaEngine<InMemoryTx>({ store, ...bad });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(InvalidOptionsError);
    expect((caught as InvalidOptionsError).option).toBe(option);
  });

  it('accepts shutdownTimeoutMs 0 and a custom ownerId', () => {
    const engine = new SagaEngine<InMemoryTx>({ store, shutdownTimeoutMs: 0, ownerId: 'worker-1' });
    expect(engine.ownerId).toBe('worker-1');
  });
});

// -------------------------------------------------------------------------- get / waitFor / limits

describe('get, waitFor and capacity', () => {
  it('reports an unknown id with SagaNotFoundError', async () => {
    const { engine } = setup((b) => b.step('a', { compensatable: false, run: () => 1 }));
    await expect(engine.get('missing')).rejects.toBeInstanceOf(SagaNotFoundError);
    await expect(engine.waitFor('missing')).rejects.toBeInstanceOf(SagaNotFoundError);
  });

  it('gives up waiting with SagaWaitTimeoutError naming the last status; the saga keeps running', async () => {
    const gate = deferred();
    const { engine } = setup((b) => b.step('a', { compensatable: false, run: () => gate.promise }));
    const { sagaId } = await engine.start('s', {});
    const err = await engine.waitFor(sagaId, { timeoutMs: 30 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SagaWaitTimeoutError);
    expect((err as SagaWaitTimeoutError).lastStatus).toBe('running');
    gate.resolve();
    expect((await engine.waitFor(sagaId)).status).toBe('completed');
  });

  it('leaves no timer behind once waitFor and shutdown return', async () => {
    let pending = 0;
    const clock: Clock = {
      now: () => systemClock.now(),
      sleep: (ms, signal) => {
        pending++;
        return systemClock.sleep(ms, signal).finally(() => pending--);
      },
    };
    const gate = deferred();
    const { engine } = setup(
      (b) => b.step('a', { compensatable: false, run: () => gate.promise }),
      {},
      { clock, shutdownTimeoutMs: 10_000 },
    );
    const { sagaId } = await engine.start('s', {});
    const waiting = engine.waitFor(sagaId, { timeoutMs: 30_000 });
    await settle();
    gate.resolve();
    await waiting;
    await waitUntil(() => pending === 0, 'waitFor to cancel its sleep', 300);
    await engine.shutdown();
    await waitUntil(() => pending === 0, 'shutdown to cancel its sleep', 300);
  });

  it('never drives more than maxConcurrentSagas at once, even when started concurrently', async () => {
    let running = 0;
    let peak = 0;
    const gate = deferred();
    const { engine } = setup(
      (b) =>
        b.step('a', {
          compensatable: false,
          run: async () => {
            running++;
            peak = Math.max(peak, running);
            await gate.promise;
            running--;
          },
        }),
      {},
      { maxConcurrentSagas: 2, recoveryIntervalMs: 5 },
    );
    const started = await Promise.all([1, 2, 3, 4, 5].map(() => engine.start('s', {})));
    await settle(20);
    expect(peak).toBeLessThanOrEqual(2);
    expect(engine.loopStats.activeSagas).toBeLessThanOrEqual(2);
    // The rest wait in the store for capacity and are picked up by recovery.
    gate.resolve();
    await engine.startBackground();
    const records = await Promise.all(
      started.map((s) => engine.waitFor(s.sagaId, { timeoutMs: 3_000 })),
    );
    expect(records.map((r) => r.status)).toEqual(Array(5).fill('completed'));
    expect(peak).toBeLessThanOrEqual(2);
  });
});
