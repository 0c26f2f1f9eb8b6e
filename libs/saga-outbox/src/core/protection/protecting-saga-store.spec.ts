import { randomBytes } from 'node:crypto';
import { InMemorySagaStore, InMemoryTx } from '../../testing/in-memory-saga-store';
import { InMemorySubjectKeyStore } from '../../testing/in-memory-subject-key-store';
import { waitUntil } from '../../testing/async';
import { InvalidOptionsError, SagaStoreUnavailableError } from '../errors';
import type { JsonValue } from '../json';
import type { SagaRecord, SagaStore } from '../ports/saga-store';
import type { SubjectKeyStore } from '../ports/subject-key-store';
import { defineSaga } from '../saga/saga-builder';
import { SagaEngine } from '../saga/saga-engine';
import { validateDataProtection, type DataProtectionOptions } from './data-protection-options';
import { DataProtector } from './data-protector';
import { encryptionKeys } from './encryption-keys';
import { ProtectingSagaStore } from './protecting-saga-store';
import { DataUnreadableError } from './protection-errors';

const EMAIL = 'ada@example.test';
const AUTH = 'auth-code-7f3a';
const input = { customer: { id: 'c-1', email: EMAIL }, amount: 42 };

function setup(extra: Partial<DataProtectionOptions> = {}) {
  const raw = new InMemorySagaStore();
  const subjectKeys = new InMemorySubjectKeyStore();
  const protector = new DataProtector<InMemoryTx>(
    validateDataProtection({
      keys: encryptionKeys({ active: 'k1', keys: { k1: randomBytes(32) } }),
      subjectKeys,
      sagas: {
        order: {
          subject: 'customer.id',
          input: ['customer.email'],
          results: { charge: ['authorization'] },
        },
      },
      ...extra,
    })!,
  );
  const store = new ProtectingSagaStore(raw, protector);
  return { raw, store, protector, subjectKeys };
}

const engines: SagaEngine<InMemoryTx>[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.shutdown()));
});

function engineOn(store: SagaStore<InMemoryTx>, seen: JsonValue[] = []): SagaEngine<InMemoryTx> {
  const engine = new SagaEngine<InMemoryTx>({
    store,
    ownerId: 'w1',
    recoveryIntervalMs: 5,
    shutdownTimeoutMs: 50,
  });
  engine.register(
    defineSaga<typeof input, InMemoryTx>('order')
      .step('charge', {
        compensatable: false,
        run: (ctx) => {
          seen.push(ctx.input as unknown as JsonValue);
          return { authorization: AUTH, amount: ctx.input.amount };
        },
      })
      .step('ship', {
        dependsOn: ['charge'],
        compensatable: false,
        run: () => ({ carrier: 'post' }),
      })
      .build(),
  );
  engines.push(engine);
  return engine;
}

const stepOf = (r: SagaRecord, name: string) => r.steps.find((s) => s.name === name)!;

describe('ProtectingSagaStore', () => {
  it('stores declared input and result fields encrypted; the engine and steps see plaintext', async () => {
    const { raw, store } = setup();
    const seen: JsonValue[] = [];
    const engine = engineOn(store, seen);
    const { sagaId } = await engine.start('order', input);
    const done = await engine.waitFor(sagaId, { timeoutMs: 5000 });
    expect(done.status).toBe('completed');
    expect(done.input).toEqual(input);
    expect(stepOf(done, 'charge').result).toEqual({ authorization: AUTH, amount: 42 });
    expect(seen).toEqual([input]);

    const stored = (await raw.load(sagaId))!;
    const text = JSON.stringify(stored);
    expect(text).not.toContain(EMAIL);
    expect(text).not.toContain(AUTH);
    // Only the declared fields: the rest stays readable for operators.
    expect(stored.input).toMatchObject({ customer: { id: 'c-1' }, amount: 42 });
    expect(stepOf(stored, 'charge').result).toMatchObject({ amount: 42 });
    expect(stepOf(stored, 'ship').result).toEqual({ carrier: 'post' });
  });

  it('keeps the idempotency check on the plaintext: the same input is the same saga', async () => {
    const { store } = setup();
    const engine = engineOn(store);
    const first = await engine.start('order', input, { idempotencyKey: 'k-1' });
    const again = await engine.start('order', input, { idempotencyKey: 'k-1' });
    expect(again).toEqual({ sagaId: first.sagaId, created: false });
    const found = await engine.findByKey('order', 'k-1');
    expect(found?.input).toEqual(input);
  });

  it("seals a remote step's ok reply in the reply's transaction, the subject read there on a cache miss", async () => {
    const { raw, protector } = setup();
    const creator = new ProtectingSagaStore(raw, protector);
    const id = '0193a9c4-0000-7000-8000-000000000001';
    await creator.create({
      id,
      name: 'order',
      version: 'v1',
      input,
      idempotencyKey: null,
      stepNames: ['charge'],
      owner: 'w1',
      leaseMs: 60_000,
      timeoutMs: null,
    });
    const parked = await creator.runStepTransaction(
      { sagaId: id, owner: 'w1' },
      'charge',
      'forward',
      1,
      () => Promise.resolve({ result: null, value: 'sent', awaitReply: { timeoutMs: null } }),
    );
    expect(parked).toEqual({ kind: 'done', value: 'sent' });
    // Another process (nothing remembered): the subject comes from the stored input, in `tx`.
    const replier = new ProtectingSagaStore(raw, protector);
    const tx = new InMemoryTx();
    const applied = await replier.applyReply(tx, {
      sagaId: id,
      step: 'charge',
      phase: 'forward',
      attempt: 1,
      outcome: { ok: true, result: { authorization: AUTH } },
    });
    tx.commit();
    expect(applied?.saga).toBe('order');
    expect(JSON.stringify(await raw.load(id))).not.toContain(AUTH);
    expect(stepOf((await replier.load(id))!, 'charge').result).toEqual({ authorization: AUTH });
  });

  it('a saga whose subject was erased is failed with DATA_UNREADABLE, not resumed for ever', async () => {
    const { raw, store, protector } = setup();
    const engine = engineOn(store);
    // Started inside a caller's transaction: left for the recovery loop.
    const tx = new InMemoryTx();
    const { sagaId } = await engine.start('order', input, { manager: tx });
    tx.commit();
    await protector.subjectKeys!.erase('c-1');
    await expect(store.load(sagaId)).rejects.toBeInstanceOf(DataUnreadableError);
    await engine.startBackground();
    await waitUntil(
      async () => (await raw.load(sagaId))?.status === 'failed',
      'the saga failed',
      5000,
    );
    const failed = (await raw.load(sagaId))!;
    expect(failed.error).toMatch(/^DATA_UNREADABLE: subject-erased: the encrypted value at saga\//);
    expect(failed.owner).toBeNull();
    expect(stepOf(failed, 'charge').status).toBe('pending');
  });

  it('a key store that is down while a result is sealed is the store trouble: nothing recorded, no attempt counted', async () => {
    const keys = new InMemorySubjectKeyStore();
    let down = false;
    const flaky: SubjectKeyStore = {
      findBySubject: (s) =>
        down ? Promise.reject(new Error('ECONNREFUSED')) : keys.findBySubject(s),
      findById: (id) => (down ? Promise.reject(new Error('ECONNREFUSED')) : keys.findById(id)),
      insertIfAbsent: (k) =>
        down ? Promise.reject(new Error('ECONNREFUSED')) : keys.insertIfAbsent(k),
      erase: (s) => keys.erase(s),
      wrappedWithOther: (m, a, l) => keys.wrappedWithOther(m, a, l),
      rewrap: (id, from, to) => keys.rewrap(id, from, to),
    };
    const { raw, store } = setup({ subjectKeys: flaky, subjectKeyCacheMs: 0 });
    const id = '0193a9c4-0000-7000-8000-000000000002';
    await store.create({
      id,
      name: 'order',
      version: 'v1',
      input,
      idempotencyKey: null,
      stepNames: ['charge'],
      owner: 'w1',
      leaseMs: 60_000,
      timeoutMs: null,
    });
    down = true;
    const run = store.runStepTransaction({ sagaId: id, owner: 'w1' }, 'charge', 'forward', 1, () =>
      Promise.resolve({ result: { authorization: AUTH }, value: 1 }),
    );
    await expect(run).rejects.toBeInstanceOf(SagaStoreUnavailableError);
    expect(stepOf((await raw.load(id))!, 'charge').status).toBe('pending');
  });

  it('refuses a store that cannot read an input in a transaction when results are declared', () => {
    const { raw, protector } = setup();
    const bare = Object.create(raw) as SagaStore<InMemoryTx>;
    Object.defineProperty(bare, 'inputOf', { value: undefined });
    expect(() => new ProtectingSagaStore(bare, protector)).toThrow(InvalidOptionsError);
    // With it, the same store is accepted.
    expect(() => new ProtectingSagaStore(raw, protector)).not.toThrow();
  });
});
