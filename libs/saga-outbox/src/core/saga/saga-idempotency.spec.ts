/**
 * `start()` with an idempotency key: the same request (same key, same input) returns the first
 * saga; another request reusing the key (different input) is refused with
 * SagaIdempotencyConflictError, unless the engine is configured to return the first saga anyway.
 * And the key itself must be text PostgreSQL can store, checked before anything is written.
 */
import { InvalidOptionsError, SagaIdempotencyConflictError } from '../errors';
import { InMemorySagaStore, InMemoryTx } from '../../testing/in-memory-saga-store';
import { defineSaga } from './saga-builder';
import { SagaEngine, type SagaEngineOptions } from './saga-engine';
import type { SagaEvent } from './saga-events';
import { sagaInputFingerprint } from './input-fingerprint';

const engines: SagaEngine<InMemoryTx>[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.shutdown()));
});

/** An engine with saga `order` (one local step that counts its runs) on an in-memory store. */
function setup(options: Partial<SagaEngineOptions<InMemoryTx>> = {}) {
  const store = new InMemorySagaStore();
  const engine = new SagaEngine<InMemoryTx>({ store, shutdownTimeoutMs: 50, ...options });
  engines.push(engine);
  const runs: unknown[] = [];
  engine.register(
    defineSaga<unknown, InMemoryTx>('order')
      .step('place', {
        compensatable: false,
        run: (ctx) => {
          ctx.manager.onCommit(() => runs.push(ctx.input));
          return 'placed';
        },
      })
      .build(),
  );
  const events: SagaEvent[] = [];
  engine.onEvent((e) => events.push(e));
  const create = jest.spyOn(store, 'create');
  return { store, engine, runs, events, create };
}

describe('idempotency keys carry a fingerprint of the input', () => {
  it('same key and same input (keys in any order): the first saga, created false, nothing re-run', async () => {
    const { engine, runs } = setup();
    const first = await engine.start(
      'order',
      { id: 'o-1', lines: [{ sku: 'a', qty: 2 }] },
      { idempotencyKey: 'order-o-1' },
    );
    await engine.waitFor(first.sagaId);
    const again = await engine.start(
      'order',
      { lines: [{ qty: 2, sku: 'a' }], id: 'o-1' },
      { idempotencyKey: 'order-o-1' },
    );
    expect(first.created).toBe(true);
    expect(again).toEqual({ sagaId: first.sagaId, created: false });
    expect(runs).toEqual([{ id: 'o-1', lines: [{ sku: 'a', qty: 2 }] }]);
  });

  it('stores the fingerprint of the name and input with a key, and none without one', async () => {
    const { engine, create } = setup();
    await engine.start('order', { id: 1 }, { idempotencyKey: 'k' });
    await engine.start('order', { id: 2 });
    expect(create.mock.calls.map(([saga]) => saga.inputFingerprint)).toEqual([
      sagaInputFingerprint('order', { id: 1 }),
      null,
    ]);
  });

  it('same key, different input: SagaIdempotencyConflictError naming key, saga and fix; nothing written', async () => {
    const { engine, store, runs, events } = setup();
    const first = await engine.start('order', { id: 'o-1' }, { idempotencyKey: 'order-o-1' });
    await engine.waitFor(first.sagaId);
    const startedBefore = events.filter((e) => e.type === 'saga.started').length;

    const error = await engine
      .start('order', { id: 'o-2' }, { idempotencyKey: 'order-o-1' })
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(SagaIdempotencyConflictError);
    expect(error).toMatchObject({
      code: 'SAGA_IDEMPOTENCY_CONFLICT',
      sagaName: 'order',
      idempotencyKey: 'order-o-1',
      existingSagaId: first.sagaId,
    });
    const message = (error as Error).message;
    expect(message).toContain('Saga "order"');
    expect(message).toContain('idempotency key "order-o-1"');
    expect(message).toContain('Use a new idempotency key');
    expect(message).toContain('pass the same input');
    expect(message).toContain("idempotencyConflict: 'return-existing'");
    expect(events.filter((e) => e.type === 'saga.started')).toHaveLength(startedBefore);
    expect(runs).toEqual([{ id: 'o-1' }]);
    expect((await store.load(first.sagaId))?.input).toEqual({ id: 'o-1' });
    expect(await store.activeVersions()).toEqual([]);
  });

  it('a differing input is any difference: a value, an extra field, array order', async () => {
    const { engine } = setup();
    await engine.start('order', { id: 1, tags: ['a', 'b'] }, { idempotencyKey: 'k' });
    for (const other of [
      { id: 2, tags: ['a', 'b'] },
      { id: 1, tags: ['a', 'b'], note: null },
      { id: 1, tags: ['b', 'a'] },
      { id: '1', tags: ['a', 'b'] },
    ]) {
      await expect(engine.start('order', other, { idempotencyKey: 'k' })).rejects.toBeInstanceOf(
        SagaIdempotencyConflictError,
      );
    }
    // Fields JSON leaves out do not count.
    await expect(
      engine.start('order', { id: 1, tags: ['a', 'b'], gone: undefined }, { idempotencyKey: 'k' }),
    ).resolves.toMatchObject({ created: false });
  });

  it('concurrent starts with one key: one saga; the same input joins it, another conflicts', async () => {
    const { engine, runs } = setup();
    const outcomes = await Promise.allSettled([
      engine.start('order', { id: 'a' }, { idempotencyKey: 'k' }),
      engine.start('order', { id: 'a' }, { idempotencyKey: 'k' }),
      engine.start('order', { id: 'b' }, { idempotencyKey: 'k' }),
    ]);
    const [a1, a2, b] = outcomes;
    expect(a1).toMatchObject({ status: 'fulfilled', value: { created: true } });
    expect(a2).toMatchObject({ status: 'fulfilled', value: { created: false } });
    expect(b).toMatchObject({ status: 'rejected' });
    expect((b as PromiseRejectedResult).reason).toBeInstanceOf(SagaIdempotencyConflictError);
    await engine.waitFor((a1 as PromiseFulfilledResult<{ sagaId: string }>).value.sagaId);
    expect(runs).toEqual([{ id: 'a' }]);
  });

  it("idempotencyConflict: 'return-existing' returns the first saga whatever the input", async () => {
    const { engine, runs } = setup({ idempotencyConflict: 'return-existing' });
    const first = await engine.start('order', { id: 'o-1' }, { idempotencyKey: 'k' });
    await engine.waitFor(first.sagaId);
    await expect(engine.start('order', { id: 'o-2' }, { idempotencyKey: 'k' })).resolves.toEqual({
      sagaId: first.sagaId,
      created: false,
    });
    expect(runs).toEqual([{ id: 'o-1' }]);
  });

  it('a saga stored without a fingerprint (started before they were stored) matches any input', async () => {
    const { engine, store } = setup();
    const legacy = '0190f5c0-0000-7000-8000-00000000000a';
    await store.create({
      id: legacy,
      name: 'order',
      version: engine.definition('order')!.version,
      input: { id: 'old' },
      idempotencyKey: 'k',
      stepNames: ['place'],
      owner: null,
      leaseMs: 1_000,
      timeoutMs: null,
    });
    await expect(engine.start('order', { id: 'new' }, { idempotencyKey: 'k' })).resolves.toEqual({
      sagaId: legacy,
      created: false,
    });
  });

  it("a conflict inside the caller's transaction leaves it usable: its own work commits", async () => {
    const { engine, store } = setup();
    const first = await engine.start('order', { id: 'o-1' }, { idempotencyKey: 'k' });
    await engine.waitFor(first.sagaId);
    const tx = new InMemoryTx();
    const committed: string[] = [];
    tx.onCommit(() => committed.push('business row'));
    await expect(
      engine.start('order', { id: 'o-2' }, { idempotencyKey: 'k', manager: tx }),
    ).rejects.toBeInstanceOf(SagaIdempotencyConflictError);
    const other = await engine.start('order', { id: 'o-3' }, { manager: tx });
    tx.commit();
    expect(committed).toEqual(['business row']);
    expect(await store.load(other.sagaId)).toBeDefined();
  });

  it('rejects an invalid idempotencyConflict option, naming it and the choices', () => {
    let caught: unknown;
    try {
      setup({ idempotencyConflict: 'ignore' as never });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidOptionsError);
    expect(caught).toMatchObject({ option: 'idempotencyConflict' });
    expect((caught as Error).message).toContain('"reject", "return-existing"');
  });
});

describe('text that reaches PostgreSQL on start is checked before anything is written', () => {
  it.each([
    ['NUL', 'order\u0000-1', /contains the NUL character \(\\u0000\)/],
    ['a lone high surrogate', 'order-\ud800', /unpaired UTF-16 surrogate/],
    ['a lone low surrogate', '\udfff-order', /unpaired UTF-16 surrogate/],
  ])(
    'an idempotency key with %s: InvalidOptionsError naming the key and the saga',
    async (_l, key, problem) => {
      const { engine, create } = setup();
      const tx = new InMemoryTx();
      const committed: string[] = [];
      tx.onCommit(() => committed.push('business row'));
      const error = await engine
        .start('order', { id: 1 }, { idempotencyKey: key, manager: tx })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect(error).toMatchObject({ option: 'idempotencyKey' });
      expect((error as Error).message).toMatch(problem);
      expect((error as Error).message).toContain('given to start("order")');
      expect(create).not.toHaveBeenCalled();
      tx.commit();
      expect(committed).toEqual(['business row']);
    },
  );

  it('accepts a key with a surrogate pair (emoji)', async () => {
    const { engine } = setup();
    await expect(
      engine.start('order', { id: 1 }, { idempotencyKey: 'order-😀' }),
    ).resolves.toMatchObject({ created: true });
  });

  it.each([
    ['ownerId', { ownerId: 'worker\u0000' }],
    ['ownerId', { ownerId: 'worker-\ud800' }],
    ['replyTo', { replyTo: 'replies\u0000' }],
    ['replyTo', { replyTo: '\udc00replies' }],
  ])('engine option %s with text PostgreSQL cannot store: InvalidOptionsError', (option, bad) => {
    let caught: unknown;
    try {
      setup(bad);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidOptionsError);
    expect(caught).toMatchObject({ option });
  });
});
