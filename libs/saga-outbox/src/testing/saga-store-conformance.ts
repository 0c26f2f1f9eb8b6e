import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { LeaseLostError } from '../core/errors';
import type { JsonValue } from '../core/json';
import {
  StepFailure,
  type Fence,
  type NewSaga,
  type SagaRecord,
  type SagaStore,
  type StepRecord,
  type StepTxOutcome,
} from '../core/ports/saga-store';
import { waitUntil } from './async';

/** What a store adapter hands the conformance suite. */
export interface SagaStoreConformanceHarness<Tx = unknown> {
  store: SagaStore<Tx>;
  /**
   * Runs `fn` in a new caller-owned transaction: commits when it resolves, rolls back (and
   * rethrows) when it throws. Given, the suite checks that `create(saga, tx)` joins it.
   */
  newTx?: <T>(fn: (tx: Tx) => Promise<T>) => Promise<T>;
  /** Releases what the factory opened (connections, databases). */
  cleanup(): Promise<void>;
}

/**
 * Declares the tests every SagaStore implementation must pass, through the port only. The factory is
 * called once for the whole suite; tests isolate themselves with unique saga names, so the store may
 * already hold other data. Leases are short (tens of ms) and expiry is awaited as a condition.
 */
export function describeSagaStoreConformance<Tx>(
  label: string,
  factory: () => Promise<SagaStoreConformanceHarness<Tx>>,
): void {
  describe(`SagaStore conformance: ${label}`, () => {
    let harness: SagaStoreConformanceHarness<Tx> | undefined;
    const store = (): SagaStore<Tx> => {
      if (!harness) throw new Error('conformance harness not initialised (did the factory fail?)');
      return harness.store;
    };

    beforeAll(async () => {
      harness = await factory();
    });
    afterAll(async () => {
      await harness?.cleanup();
    });

    /** Creates a saga (defaults: three steps, owned by worker-a for a minute) and loads it back. */
    const start = async (overrides: Partial<NewSaga> = {}): Promise<SagaRecord> => {
      const saga = newSaga(overrides);
      const { id, created } = await store().create(saga);
      expect(created).toBe(true);
      return loaded(id);
    };
    const loaded = async (id: string): Promise<SagaRecord> => {
      const record = await store().load(id);
      if (!record) throw new Error(`saga ${id} not found`);
      return record;
    };
    const step = async (id: string, name: string): Promise<StepRecord> => {
      const found = (await loaded(id)).steps.find((s) => s.name === name);
      if (!found) throw new Error(`saga ${id} has no step ${name}`);
      return found;
    };
    const complete = (
      fence: Fence,
      name: string,
      result: JsonValue = { ok: name },
    ): Promise<StepTxOutcome<string>> =>
      store().runStepTransaction(fence, name, 'forward', 1, () =>
        Promise.resolve({ result, value: name }),
      );
    /** Resolves once the fence no longer holds (the lease ran out on the store's clock). */
    const leaseExpired = (fence: Fence): Promise<void> =>
      waitUntil(
        async () => !(await store().transition(fence, ['running'], 'running')),
        `lease of ${fence.sagaId} to expire`,
      );

    describe('create / load', () => {
      it('creates a running instance with one pending step per step, in declaration order', async () => {
        const input: JsonValue = {
          orderId: 'o-1',
          amount: 12.5,
          items: [{ sku: 'a', qty: 2 }],
          note: 'ünïcødé ✓ "quoted" \\ back',
          nested: { deep: [null, true, false, 0, -1.5e-7] },
        };
        const saga = newSaga({ input, stepNames: ['reserve', 'charge', 'ship'], leaseMs: 30_000 });
        await expect(store().create(saga)).resolves.toEqual({ id: saga.id, created: true });

        const record = await loaded(saga.id);
        expect(record).toMatchObject({
          id: saga.id,
          name: saga.name,
          version: 'v1',
          status: 'running',
          input,
          idempotencyKey: null,
          owner: 'worker-a',
          deadlineAt: null,
          error: null,
          failedStep: null,
          wakeAt: null,
          wakeSeq: 0,
        });
        expectDate(record.createdAt);
        expectDate(record.updatedAt);
        expectDate(record.leaseUntil);
        const leaseLeft = record.leaseUntil!.getTime() - record.createdAt.getTime();
        expect(leaseLeft).toBeGreaterThanOrEqual(30_000 - 1_000);
        expect(leaseLeft).toBeLessThanOrEqual(30_000 + 5_000);
        expect(record.steps).toEqual(
          ['reserve', 'charge', 'ship'].map((name) => ({
            name,
            status: 'pending',
            attempts: 0,
            compensationAttempts: 0,
            result: null,
            error: null,
            startedAt: null,
            completedAt: null,
            compensatedAt: null,
            replyDeadline: null,
          })),
        );
      });

      it('leaves a saga created without an owner unleased, for the recovery loop', async () => {
        const record = await start({ owner: null });
        expect(record.owner).toBeNull();
        expect(record.leaseUntil).toBeNull();
      });

      it('sets deadlineAt timeoutMs after creation', async () => {
        const record = await start({ timeoutMs: 90_000 });
        expectDate(record.deadlineAt);
        expect(
          Math.abs(record.deadlineAt!.getTime() - record.createdAt.getTime() - 90_000),
        ).toBeLessThan(1_000);
      });

      it('returns the existing saga for a repeated idempotency key and writes nothing', async () => {
        const first = newSaga({ idempotencyKey: 'order-42', inputFingerprint: fingerprint('a') });
        await expect(store().create(first)).resolves.toEqual({ id: first.id, created: true });

        const again = newSaga({
          name: first.name,
          idempotencyKey: 'order-42',
          inputFingerprint: fingerprint('b'),
          stepNames: ['x', 'y'],
          input: { other: true },
        });
        // With the first saga's fingerprint: comparing it is the caller's part, not the store's.
        await expect(store().create(again)).resolves.toEqual({
          id: first.id,
          created: false,
          inputFingerprint: fingerprint('a'),
        });
        await expect(store().load(again.id)).resolves.toBeUndefined();
        const record = await loaded(first.id);
        expect(record.steps.map((s) => s.name)).toEqual(['a', 'b', 'c']);
        expect(record.input).toEqual(first.input);

        // The key is scoped to the saga name, and sagas without a key never collide.
        const otherName = newSaga({ idempotencyKey: 'order-42' });
        await expect(store().create(otherName)).resolves.toEqual({
          id: otherName.id,
          created: true,
        });
        const noKey1 = newSaga({ name: first.name });
        const noKey2 = newSaga({ name: first.name });
        await expect(store().create(noKey1)).resolves.toEqual({ id: noKey1.id, created: true });
        await expect(store().create(noKey2)).resolves.toEqual({ id: noKey2.id, created: true });
      });

      it('reports a null fingerprint for a saga stored without one (absent or null)', async () => {
        for (const stored of [undefined, null]) {
          const first = newSaga({ idempotencyKey: 'legacy', inputFingerprint: stored });
          if (stored === undefined) delete first.inputFingerprint;
          await expect(store().create(first)).resolves.toEqual({ id: first.id, created: true });
          const again = newSaga({
            name: first.name,
            idempotencyKey: 'legacy',
            inputFingerprint: fingerprint('c'),
          });
          await expect(store().create(again)).resolves.toEqual({
            id: first.id,
            created: false,
            inputFingerprint: null,
          });
        }
      });

      it('keeps each saga its own fingerprint: per key, per saga name', async () => {
        const name = uniqueName();
        const one = newSaga({ name, idempotencyKey: 'k-1', inputFingerprint: fingerprint('1') });
        const two = newSaga({ name, idempotencyKey: 'k-2', inputFingerprint: fingerprint('2') });
        const other = newSaga({ idempotencyKey: 'k-1', inputFingerprint: fingerprint('3') });
        for (const saga of [one, two, other]) await store().create(saga);
        for (const [saga, expected] of [
          [one, '1'],
          [two, '2'],
          [other, '3'],
        ] as const) {
          await expect(
            store().create(
              newSaga({
                name: saga.name,
                idempotencyKey: saga.idempotencyKey,
                inputFingerprint: null,
              }),
            ),
          ).resolves.toEqual({
            id: saga.id,
            created: false,
            inputFingerprint: fingerprint(expected),
          });
        }
      });

      it('creates exactly one saga when creates with one idempotency key race', async () => {
        const name = uniqueName();
        // Each with its own fingerprint: every loser is told the winner's.
        const racers = Array.from({ length: 8 }, (_, i) =>
          newSaga({ name, idempotencyKey: 'same-key', inputFingerprint: fingerprint(String(i)) }),
        );
        const outcomes = await Promise.all(racers.map((s) => store().create(s)));
        expect(outcomes.filter((o) => o.created)).toHaveLength(1);
        const winner = outcomes.find((o) => o.created)!.id;
        expect(outcomes.every((o) => o.id === winner)).toBe(true);
        const winnerFingerprint = racers.find((s) => s.id === winner)!.inputFingerprint;
        for (const outcome of outcomes)
          if (!outcome.created) expect(outcome.inputFingerprint).toBe(winnerFingerprint);
        const losers = racers.filter((s) => s.id !== winner);
        for (const loser of losers) await expect(store().load(loser.id)).resolves.toBeUndefined();
        expect((await loaded(winner)).steps).toHaveLength(3);
      });

      it('loadByIdempotencyKey finds the saga holding a key, per saga name, with its steps', async () => {
        const first = newSaga({ idempotencyKey: 'find-me', input: { n: 1 } });
        const otherName = newSaga({ idempotencyKey: 'find-me', input: { n: 2 } });
        const noKey = newSaga({ name: first.name });
        for (const saga of [first, otherName, noKey]) await store().create(saga);
        // After a step completed: the same record load() returns, steps included.
        await complete(fenceOf(await loaded(first.id)), 'a');

        const found = await store().loadByIdempotencyKey(first.name, 'find-me');
        expect(found).toEqual(await loaded(first.id));
        expect(found?.steps.find((s) => s.name === 'a')?.status).toBe('completed');
        expect((await store().loadByIdempotencyKey(otherName.name, 'find-me'))?.id).toBe(
          otherName.id,
        );
        // A key is matched exactly, and only under its own saga name.
        await expect(store().loadByIdempotencyKey(first.name, 'FIND-ME')).resolves.toBeUndefined();
        await expect(store().loadByIdempotencyKey(first.name, 'find')).resolves.toBeUndefined();
        await expect(
          store().loadByIdempotencyKey(uniqueName(), 'find-me'),
        ).resolves.toBeUndefined();
      });

      it('loadByIdempotencyKey does not see a saga whose creating transaction rolled back', async () => {
        const newTx = harness?.newTx;
        if (!newTx) return; // the adapter has no caller-owned transactions (nothing to join)
        const rolledBack = newSaga({ idempotencyKey: 'rolled-back' });
        const failure = new Error('caller rolls back');
        await expect(
          newTx(async (tx) => {
            await store().create(rolledBack, tx);
            throw failure;
          }),
        ).rejects.toBe(failure);
        await expect(
          store().loadByIdempotencyKey(rolledBack.name, 'rolled-back'),
        ).resolves.toBeUndefined();
      });

      it('load returns undefined for an unknown or malformed id', async () => {
        await expect(store().load(randomUUID())).resolves.toBeUndefined();
        await expect(store().load('not-a-uuid')).resolves.toBeUndefined();
        await expect(store().load('')).resolves.toBeUndefined();
      });

      it('create with a transaction commits and rolls back with the caller', async () => {
        const newTx = harness?.newTx;
        if (!newTx) return; // the adapter has no caller-owned transactions (nothing to join)
        const rolledBack = newSaga();
        const failure = new Error('caller rolls back');
        await expect(
          newTx(async (tx) => {
            await expect(store().create(rolledBack, tx)).resolves.toEqual({
              id: rolledBack.id,
              created: true,
            });
            throw failure;
          }),
        ).rejects.toBe(failure);
        await expect(store().load(rolledBack.id)).resolves.toBeUndefined();

        const committed = newSaga();
        await newTx((tx) => store().create(committed, tx));
        expect((await loaded(committed.id)).steps).toHaveLength(3);
      });

      it("an idempotency-key hit in the caller's transaction reports the fingerprint and leaves the transaction usable", async () => {
        const newTx = harness?.newTx;
        if (!newTx) return; // the adapter has no caller-owned transactions (nothing to join)
        const first = newSaga({ idempotencyKey: 'in-tx', inputFingerprint: fingerprint('first') });
        await store().create(first);
        const after = newSaga();
        await newTx(async (tx) => {
          await expect(
            store().create(
              newSaga({
                name: first.name,
                idempotencyKey: 'in-tx',
                inputFingerprint: fingerprint('second'),
              }),
              tx,
            ),
          ).resolves.toEqual({
            id: first.id,
            created: false,
            inputFingerprint: fingerprint('first'),
          });
          // The transaction goes on: what it writes next commits.
          await store().create(after, tx);
        });
        expect((await loaded(after.id)).steps).toHaveLength(3);
      });
    });

    describe('runStepTransaction', () => {
      it('runs the body, records the result and attempt, and returns the body value', async () => {
        const saga = await start();
        const fence = fenceOf(saga);
        let ran = 0;
        const outcome = await store().runStepTransaction(fence, 'b', 'forward', 2, () => {
          ran++;
          return Promise.resolve({ result: { charged: 10, currency: 'EUR' }, value: 'charged' });
        });
        expect(outcome).toEqual({ kind: 'done', value: 'charged' });
        expect(ran).toBe(1);

        const record = await loaded(saga.id);
        const b = record.steps.find((s) => s.name === 'b')!;
        expect(b).toMatchObject({
          status: 'completed',
          attempts: 2,
          result: { charged: 10, currency: 'EUR' },
          error: null,
        });
        expectDate(b.completedAt);
        expectDate(b.startedAt);
        expect(b.startedAt!.getTime()).toBeLessThanOrEqual(b.completedAt!.getTime());
        expect(record.steps.filter((s) => s.name !== 'b').map((s) => s.status)).toEqual([
          'pending',
          'pending',
        ]);
      });

      it('returns already-done without running the body once the phase completed', async () => {
        const saga = await start();
        const fence = fenceOf(saga);
        await complete(fence, 'a', { first: true });
        let ran = 0;
        const outcome = await store().runStepTransaction(fence, 'a', 'forward', 2, () => {
          ran++;
          return Promise.resolve({ result: { second: true }, value: 'x' });
        });
        expect(outcome).toEqual({ kind: 'already-done' });
        expect(ran).toBe(0);
        expect(await step(saga.id, 'a')).toMatchObject({
          status: 'completed',
          attempts: 1,
          result: { first: true },
        });
      });

      it('records nothing when the body throws, and propagates the error', async () => {
        const saga = await start();
        const fence = fenceOf(saga);
        const failure = new Error('step body failed');
        await expect(
          store().runStepTransaction(fence, 'a', 'forward', 1, () => Promise.reject(failure)),
        ).rejects.toBe(failure);
        expect(await step(saga.id, 'a')).toMatchObject({
          status: 'pending',
          attempts: 0,
          result: null,
          completedAt: null,
        });
        // Nothing is left locked or half-done: the step can run again.
        await expect(complete(fence, 'a')).resolves.toEqual({ kind: 'done', value: 'a' });
      });

      it('stores a null result', async () => {
        const saga = await start();
        await expect(complete(fenceOf(saga), 'a', null)).resolves.toEqual({
          kind: 'done',
          value: 'a',
        });
        expect(await step(saga.id, 'a')).toMatchObject({ status: 'completed', result: null });
      });

      it('throws LeaseLostError and records nothing when another owner holds the saga', async () => {
        const saga = await start();
        const intruder: Fence = { sagaId: saga.id, owner: 'worker-b' };
        await expect(complete(intruder, 'a')).rejects.toBeInstanceOf(LeaseLostError);
        await expect(
          store().runStepTransaction(intruder, 'a', 'forward', 1, () =>
            Promise.resolve({ result: 1, value: 1 }),
          ),
        ).rejects.toMatchObject({ sagaId: saga.id, owner: 'worker-b' });
        expect(await step(saga.id, 'a')).toMatchObject({
          status: 'pending',
          result: null,
          completedAt: null,
        });
        // The real owner is unaffected.
        await expect(complete(fenceOf(saga), 'a')).resolves.toEqual({ kind: 'done', value: 'a' });
      });

      it('fences the compensation phase too: another owner records nothing', async () => {
        const saga = await start();
        await complete(fenceOf(saga), 'a', { reserved: 'r-1' });
        let ran = 0;
        const compensate = (owner: string): Promise<StepTxOutcome<string>> =>
          store().runStepTransaction({ sagaId: saga.id, owner }, 'a', 'compensate', 1, () => {
            ran++;
            return Promise.resolve({ result: null, value: owner });
          });
        await expect(compensate('worker-b')).rejects.toBeInstanceOf(LeaseLostError);
        expect(await step(saga.id, 'a')).toMatchObject({
          status: 'completed',
          compensationAttempts: 0,
          compensatedAt: null,
        });
        await expect(compensate('worker-a')).resolves.toEqual({ kind: 'done', value: 'worker-a' });
        expect(ran).toBe(2);
        expect(await step(saga.id, 'a')).toMatchObject({
          status: 'compensated',
          compensationAttempts: 1,
        });
      });

      it('throws LeaseLostError and records nothing once the lease expired', async () => {
        const saga = await start({ leaseMs: 50 });
        const fence = fenceOf(saga);
        await leaseExpired(fence);
        await expect(complete(fence, 'a')).rejects.toBeInstanceOf(LeaseLostError);
        expect(await step(saga.id, 'a')).toMatchObject({ status: 'pending', result: null });
      });

      it('compensates a completed step once, keeping its forward result', async () => {
        const saga = await start();
        const fence = fenceOf(saga);
        await complete(fence, 'a', { reserved: 'r-1' });
        let ran = 0;
        const compensate = (): Promise<StepTxOutcome<string>> =>
          store().runStepTransaction(fence, 'a', 'compensate', 3, () => {
            ran++;
            return Promise.resolve({ result: { released: 'r-1' }, value: 'undone' });
          });
        await expect(compensate()).resolves.toEqual({ kind: 'done', value: 'undone' });
        const a = await step(saga.id, 'a');
        expect(a).toMatchObject({
          status: 'compensated',
          compensationAttempts: 3,
          attempts: 1,
          result: { reserved: 'r-1' },
        });
        expectDate(a.compensatedAt);

        await expect(compensate()).resolves.toEqual({ kind: 'already-done' });
        // Forward is done too once compensated: a recovered saga never re-runs an undone step.
        await expect(complete(fence, 'a')).resolves.toEqual({ kind: 'already-done' });
        expect(ran).toBe(1);
      });

      it('treats a step that failed for good as past its forward phase, and compensation_failed as past compensation', async () => {
        // A failure a participant replied with must never be overwritten by a late resend.
        const saga = await start();
        const fence = fenceOf(saga);
        await store().recordStepFailure(fence, StepFailure.final('a', 'forward', 3, 'gave up'));
        expect(await step(saga.id, 'a')).toMatchObject({ status: 'failed' });
        await expect(complete(fence, 'a')).resolves.toEqual({ kind: 'already-done' });
        expect(await step(saga.id, 'a')).toMatchObject({ status: 'failed', error: 'gave up' });

        await complete(fence, 'b');
        await store().recordStepFailure(
          fence,
          StepFailure.final('b', 'compensate', 2, 'undo failed'),
        );
        expect(await step(saga.id, 'b')).toMatchObject({ status: 'compensation_failed' });
        await expect(complete(fence, 'b')).resolves.toEqual({ kind: 'already-done' });
        await expect(
          store().runStepTransaction(fence, 'b', 'compensate', 3, () =>
            Promise.resolve({ result: null, value: 'ok' }),
          ),
        ).resolves.toEqual({ kind: 'already-done' });
      });

      it('runs the body once when two workers run the same step at the same time', async () => {
        const saga = await start();
        const fence = fenceOf(saga);
        let ran = 0;
        let entered!: () => void;
        const firstEntered = new Promise<void>((resolve) => (entered = resolve));
        let release!: () => void;
        const gate = new Promise<void>((resolve) => (release = resolve));
        const body = async (): Promise<{ result: JsonValue; value: number }> => {
          const n = ++ran;
          if (n === 1) {
            entered();
            await gate;
          }
          return { result: { run: n }, value: n };
        };
        const first = store().runStepTransaction(fence, 'a', 'forward', 1, body);
        await firstEntered;
        const second = store().runStepTransaction(fence, 'a', 'forward', 1, body);
        // Give the second worker time to reach the step (and wait on it) before the first finishes.
        await delay(100);
        release();
        const outcomes = await Promise.all([first, second]);
        expect(outcomes).toEqual([{ kind: 'done', value: 1 }, { kind: 'already-done' }]);
        expect(ran).toBe(1);
        expect(await step(saga.id, 'a')).toMatchObject({ status: 'completed', result: { run: 1 } });
      });

      it('completes parallel steps of one saga independently', async () => {
        const saga = await start({ stepNames: ['a', 'b', 'c', 'd'] });
        const fence = fenceOf(saga);
        const outcomes = await Promise.all(
          ['a', 'b', 'c', 'd'].map((name) => complete(fence, name)),
        );
        expect(outcomes).toEqual(['a', 'b', 'c', 'd'].map((value) => ({ kind: 'done', value })));
        expect((await loaded(saga.id)).steps.map((s) => s.status)).toEqual([
          'completed',
          'completed',
          'completed',
          'completed',
        ]);
      });

      it('rejects an unknown step without recording anything', async () => {
        const saga = await start();
        let ran = 0;
        await expect(
          store().runStepTransaction(fenceOf(saga), 'no-such-step', 'forward', 1, () => {
            ran++;
            return Promise.resolve({ result: null, value: null });
          }),
        ).rejects.toThrow();
        expect(ran).toBe(0);
      });
    });

    describe('recordStepFailure', () => {
      it('records attempts and the error, and the failed status only when final', async () => {
        const saga = await start();
        const fence = fenceOf(saga);
        await store().recordStepFailure(fence, StepFailure.retryable('a', 'forward', 1, 'timeout'));
        expect(await step(saga.id, 'a')).toMatchObject({
          status: 'pending',
          attempts: 1,
          error: 'timeout',
        });
        await store().recordStepFailure(
          fence,
          StepFailure.final('a', 'forward', 3, 'card declined'),
        );
        expect(await step(saga.id, 'a')).toMatchObject({
          status: 'failed',
          attempts: 3,
          error: 'card declined',
        });

        await complete(fence, 'b');
        await store().recordStepFailure(
          fence,
          StepFailure.retryable('b', 'compensate', 1, 'refund timed out'),
        );
        expect(await step(saga.id, 'b')).toMatchObject({
          status: 'completed',
          attempts: 1,
          compensationAttempts: 1,
          error: 'refund timed out',
        });
        await store().recordStepFailure(
          fence,
          StepFailure.final('b', 'compensate', 5, 'refund refused'),
        );
        expect(await step(saga.id, 'b')).toMatchObject({
          status: 'compensation_failed',
          compensationAttempts: 5,
          error: 'refund refused',
        });
      });

      it('throws LeaseLostError and changes nothing for another owner or an expired lease', async () => {
        const saga = await start({ leaseMs: 200 });
        await expect(
          store().recordStepFailure(
            { sagaId: saga.id, owner: 'worker-b' },
            StepFailure.final('a', 'forward', 1, 'x'),
          ),
        ).rejects.toBeInstanceOf(LeaseLostError);
        await leaseExpired(fenceOf(saga));
        await expect(
          store().recordStepFailure(fenceOf(saga), StepFailure.final('a', 'forward', 1, 'x')),
        ).rejects.toBeInstanceOf(LeaseLostError);
        expect(await step(saga.id, 'a')).toMatchObject({
          status: 'pending',
          attempts: 0,
          error: null,
        });
      });
    });

    describe('transition', () => {
      it('changes status only from an expected status and only for the owner', async () => {
        const saga = await start();
        const fence = fenceOf(saga);
        await expect(store().transition(fence, ['compensating'], 'compensated')).resolves.toBe(
          false,
        );
        await expect(store().transition(fence, [], 'compensating')).resolves.toBe(false);
        await expect(
          store().transition({ sagaId: saga.id, owner: 'worker-b' }, ['running'], 'compensating'),
        ).resolves.toBe(false);
        await expect(
          store().transition(
            { sagaId: randomUUID(), owner: 'worker-a' },
            ['running'],
            'compensating',
          ),
        ).resolves.toBe(false);
        expect((await loaded(saga.id)).status).toBe('running');

        await expect(
          store().transition(fence, ['running'], 'compensating', {
            error: 'payment declined',
            failedStep: 'b',
          }),
        ).resolves.toBe(true);
        const compensating = await loaded(saga.id);
        expect(compensating).toMatchObject({
          status: 'compensating',
          error: 'payment declined',
          failedStep: 'b',
          owner: 'worker-a',
        });
        expect(compensating.leaseUntil).toEqual(saga.leaseUntil);
        expect(compensating.updatedAt.getTime()).toBeGreaterThanOrEqual(saga.updatedAt.getTime());

        // Without detail, the recorded reason stays.
        await expect(
          store().transition(fence, ['running', 'compensating'], 'compensated'),
        ).resolves.toBe(true);
        const done = await loaded(saga.id);
        expect(done).toMatchObject({
          status: 'compensated',
          error: 'payment declined',
          failedStep: 'b',
        });
        // Terminal: ownership is released, and nobody can move the saga any more.
        expect(done.owner).toBeNull();
        expect(done.leaseUntil).toBeNull();
        await expect(store().transition(fence, ['compensated'], 'failed')).resolves.toBe(false);
      });

      it('clears the owner on every terminal status', async () => {
        for (const to of ['completed', 'compensated', 'failed'] as const) {
          const saga = await start();
          await expect(
            store().transition(fenceOf(saga), ['running'], to, { error: `to ${to}` }),
          ).resolves.toBe(true);
          expect(await loaded(saga.id)).toMatchObject({
            status: to,
            owner: null,
            leaseUntil: null,
            error: `to ${to}`,
          });
        }
      });

      it('returns false once the lease expired', async () => {
        const saga = await start({ leaseMs: 50 });
        await leaseExpired(fenceOf(saga));
        await expect(store().transition(fenceOf(saga), ['running'], 'completed')).resolves.toBe(
          false,
        );
        expect((await loaded(saga.id)).status).toBe('running');
      });
    });

    describe('leases: renewLeases / claimOrphans / release', () => {
      it('renews only the live sagas this owner holds', async () => {
        const mine = await start({ leaseMs: 5_000 });
        const theirs = await start({ owner: 'worker-b' });
        const finished = await start();
        await store().transition(fenceOf(finished), ['running'], 'completed');

        const held = await store().renewLeases(
          'worker-a',
          [mine.id, theirs.id, finished.id, randomUUID(), 'not-a-uuid'],
          60_000,
        );
        expect(held).toEqual([mine.id]);
        const renewed = await loaded(mine.id);
        expect(renewed.leaseUntil!.getTime()).toBeGreaterThan(mine.leaseUntil!.getTime() + 30_000);
        expect((await loaded(theirs.id)).leaseUntil).toEqual(theirs.leaseUntil);
        await expect(store().renewLeases('worker-a', [], 60_000)).resolves.toEqual([]);
      });

      it('renews a lease that ran out while nobody claimed the saga', async () => {
        const saga = await start({ leaseMs: 50 });
        await leaseExpired(fenceOf(saga));
        await expect(store().renewLeases('worker-a', [saga.id], 60_000)).resolves.toEqual([
          saga.id,
        ]);
        await expect(complete(fenceOf(saga), 'a')).resolves.toEqual({ kind: 'done', value: 'a' });
      });

      it('claims nothing without versions', async () => {
        await start({ owner: null });
        await expect(store().claimOrphans('worker-b', [], 10, 60_000)).resolves.toEqual([]);
      });

      it('claims unowned live sagas of the listed versions only', async () => {
        const name = uniqueName();
        const orphan = await start({ name, owner: null });
        await start({ name, version: 'v2', owner: null });
        await start({ name: uniqueName(), owner: null });
        await start({ name }); // leased to worker-a for a minute
        const finished = await start({ name });
        await store().transition(fenceOf(finished), ['running'], 'completed');
        const compensating = await start({ name });
        await store().transition(fenceOf(compensating), ['running'], 'compensating');
        await store().release('worker-a', [compensating.id]); // its worker shut down mid-compensation

        const claimed = await store().claimOrphans(
          'worker-b',
          [{ name, version: 'v1' }],
          10,
          60_000,
        );
        expect([...claimed].sort()).toEqual([orphan.id, compensating.id].sort());
        const record = await loaded(orphan.id);
        expect(record.owner).toBe('worker-b');
        expect(record.leaseUntil!.getTime()).toBeGreaterThan(Date.now() + 30_000);
        expect((await loaded(compensating.id)).status).toBe('compensating');
        // Claimed sagas are leased: a second claim finds nothing.
        await expect(
          store().claimOrphans('worker-c', [{ name, version: 'v1' }], 10, 60_000),
        ).resolves.toEqual([]);
      });

      it('claims a saga whose owner let its lease expire, fencing the old owner out', async () => {
        const name = uniqueName();
        const saga = await start({ name, leaseMs: 50 });
        await waitUntil(async () => {
          const claimed = await store().claimOrphans(
            'worker-b',
            [{ name, version: 'v1' }],
            10,
            60_000,
          );
          return claimed.includes(saga.id);
        }, 'the expired saga to be claimed');
        expect((await loaded(saga.id)).owner).toBe('worker-b');
        await expect(complete(fenceOf(saga), 'a')).rejects.toBeInstanceOf(LeaseLostError);
        await expect(store().transition(fenceOf(saga), ['running'], 'completed')).resolves.toBe(
          false,
        );
        await expect(store().renewLeases('worker-a', [saga.id], 60_000)).resolves.toEqual([]);
        await expect(complete({ sagaId: saga.id, owner: 'worker-b' }, 'a')).resolves.toEqual({
          kind: 'done',
          value: 'a',
        });
      });

      it('claims at most limit sagas, oldest first', async () => {
        const name = uniqueName();
        const created: string[] = [];
        for (let i = 0; i < 4; i++) created.push((await start({ name, owner: null })).id);
        const first = await store().claimOrphans('worker-b', [{ name, version: 'v1' }], 2, 60_000);
        expect([...first].sort()).toEqual(created.slice(0, 2).sort());
        const rest = await store().claimOrphans('worker-c', [{ name, version: 'v1' }], 10, 60_000);
        expect([...rest].sort()).toEqual(created.slice(2).sort());
      });

      it('never hands one saga to two concurrent claimers', async () => {
        const name = uniqueName();
        const total = 30;
        const ids = await Promise.all(
          Array.from(
            { length: total },
            async () => (await store().create(newSaga({ name, owner: null }))).id,
          ),
        );
        const workers = Array.from({ length: 5 }, (_, i) => `claimer-${i}`);
        const claimedBy = new Map<string, string[]>();
        await Promise.all(
          workers.map(async (worker) => {
            const mine: string[] = [];
            for (;;) {
              const batch = await store().claimOrphans(
                worker,
                [{ name, version: 'v1' }],
                4,
                60_000,
              );
              if (!batch.length) break;
              mine.push(...batch);
            }
            claimedBy.set(worker, mine);
          }),
        );
        const all = [...claimedBy.values()].flat();
        expect(all).toHaveLength(total);
        expect(new Set(all)).toEqual(new Set(ids));
        for (const [worker, mine] of claimedBy) {
          for (const id of mine) expect((await loaded(id)).owner).toBe(worker);
        }
      });

      it('release hands a saga over at once; a non-owner cannot release it', async () => {
        const name = uniqueName();
        const saga = await start({ name });
        await store().release('worker-b', [saga.id]);
        expect((await loaded(saga.id)).owner).toBe('worker-a');

        await store().release('worker-a', [saga.id, randomUUID(), 'not-a-uuid']);
        await store().release('worker-a', []);
        const released = await loaded(saga.id);
        expect(released.owner).toBeNull();
        expect(released.leaseUntil).toBeNull();
        await expect(store().transition(fenceOf(saga), ['running'], 'completed')).resolves.toBe(
          false,
        );
        await expect(
          store().claimOrphans('worker-b', [{ name, version: 'v1' }], 10, 60_000),
        ).resolves.toEqual([saga.id]);
      });
    });

    describe('hooks: work that commits with the change (within)', () => {
      /**
       * A hook that proves which transaction it ran in, through the port only: it creates another
       * saga joining the hook's transaction, so that saga exists if and only if that transaction
       * committed. Then it throws `failure`, if given.
       */
      const hook = (inner: NewSaga, failure?: Error) => {
        const calls: Tx[] = [];
        const within = async (tx: Tx): Promise<void> => {
          calls.push(tx);
          await store().create(inner, tx);
          if (failure) throw failure;
        };
        return { calls, within };
      };

      it('create runs the hook in the creating transaction, and only when it creates', async () => {
        const outer = newSaga({ idempotencyKey: 'hooked' });
        const inner = newSaga();
        const h = hook(inner);
        await expect(store().create(outer, undefined, h.within)).resolves.toEqual({
          id: outer.id,
          created: true,
        });
        expect(h.calls).toHaveLength(1);
        expect((await loaded(outer.id)).steps).toHaveLength(3);
        expect((await loaded(inner.id)).steps).toHaveLength(3);

        // An idempotency-key hit creates nothing, so it announces nothing.
        const again = hook(newSaga());
        await expect(
          store().create(
            newSaga({ name: outer.name, idempotencyKey: 'hooked' }),
            undefined,
            again.within,
          ),
        ).resolves.toEqual({ id: outer.id, created: false, inputFingerprint: null });
        expect(again.calls).toHaveLength(0);
      });

      it('a create hook that throws rolls the creation back and propagates the error', async () => {
        const outer = newSaga({ idempotencyKey: 'rolled-back' });
        const inner = newSaga();
        const failure = new Error('hook failed');
        await expect(store().create(outer, undefined, hook(inner, failure).within)).rejects.toBe(
          failure,
        );
        await expect(store().load(outer.id)).resolves.toBeUndefined();
        await expect(store().load(inner.id)).resolves.toBeUndefined();
        // The key was not taken.
        const retry = newSaga({ name: outer.name, idempotencyKey: 'rolled-back' });
        await expect(store().create(retry)).resolves.toEqual({ id: retry.id, created: true });
      });

      it("create in the caller's transaction runs the hook in that transaction", async () => {
        const newTx = harness?.newTx;
        if (!newTx) return; // the adapter has no caller-owned transactions
        const failure = new Error('caller rolls back');
        const rolledBack = { outer: newSaga(), inner: newSaga() };
        await expect(
          newTx(async (tx) => {
            await store().create(rolledBack.outer, tx, hook(rolledBack.inner).within);
            throw failure;
          }),
        ).rejects.toBe(failure);
        await expect(store().load(rolledBack.outer.id)).resolves.toBeUndefined();
        await expect(store().load(rolledBack.inner.id)).resolves.toBeUndefined();

        const committed = { outer: newSaga(), inner: newSaga() };
        await newTx((tx) => store().create(committed.outer, tx, hook(committed.inner).within));
        expect((await loaded(committed.outer.id)).status).toBe('running');
        expect((await loaded(committed.inner.id)).status).toBe('running');
      });

      it('transition runs the hook in the same transaction, and only when the row moved', async () => {
        const saga = await start();
        const fence = fenceOf(saga);
        const notMoved = hook(newSaga());
        await expect(
          store().transition(fence, ['compensating'], 'compensated', undefined, notMoved.within),
        ).resolves.toBe(false);
        await expect(
          store().transition(
            { sagaId: saga.id, owner: 'worker-b' },
            ['running'],
            'completed',
            undefined,
            notMoved.within,
          ),
        ).resolves.toBe(false);
        expect(notMoved.calls).toHaveLength(0);

        const inner = newSaga();
        const moved = hook(inner);
        await expect(
          store().transition(
            fence,
            ['running'],
            'failed',
            { error: 'gave up', failedStep: 'b' },
            moved.within,
          ),
        ).resolves.toBe(true);
        expect(moved.calls).toHaveLength(1);
        expect(await loaded(saga.id)).toMatchObject({
          status: 'failed',
          error: 'gave up',
          failedStep: 'b',
          owner: null,
        });
        expect((await loaded(inner.id)).status).toBe('running');
      });

      it('a transition hook that throws rolls the change back and propagates the error', async () => {
        const saga = await start();
        const fence = fenceOf(saga);
        const inner = newSaga();
        const failure = new Error('hook failed');
        await expect(
          store().transition(
            fence,
            ['running'],
            'completed',
            { error: 'should not stick' },
            hook(inner, failure).within,
          ),
        ).rejects.toBe(failure);
        const unchanged = await loaded(saga.id);
        expect(unchanged).toMatchObject({ status: 'running', error: null, owner: 'worker-a' });
        expect(unchanged.leaseUntil).toEqual(saga.leaseUntil);
        await expect(store().load(inner.id)).resolves.toBeUndefined();
        // Nothing is left locked: the owner can still make the change.
        await expect(store().transition(fence, ['running'], 'completed')).resolves.toBe(true);
      });
    });

    describe('remote steps: await a reply, park, apply the reply', () => {
      const newTx = <T>(fn: (tx: Tx) => Promise<T>): Promise<T> => {
        if (!harness?.newTx)
          throw new Error('the remote-step tests need the harness to give newTx');
        return harness.newTx(fn);
      };
      const send = (fence: Fence, name: string, attempt = 1, timeoutMs: number | null = 60_000) =>
        store().runStepTransaction(fence, name, 'forward', attempt, () =>
          Promise.resolve({ result: null, value: 'sent', awaitReply: { timeoutMs } }),
        );
      const reply = (
        sagaId: string,
        name: string,
        outcome: { ok: true; result: JsonValue } | { ok: false; error: string },
        phase: 'forward' | 'compensate' = 'forward',
      ) => newTx((tx) => store().applyReply(tx, { sagaId, step: name, phase, outcome }));

      it('records a sent command as waiting with its reply deadline, and sends again while waiting', async () => {
        const saga = await start();
        const fence = fenceOf(saga);
        await expect(send(fence, 'a', 1, 60_000)).resolves.toEqual({ kind: 'done', value: 'sent' });
        const waiting = await step(saga.id, 'a');
        expect(waiting).toMatchObject({ status: 'waiting', attempts: 1, result: null });
        expectDate(waiting.replyDeadline);
        const left = waiting.replyDeadline!.getTime() - Date.now();
        expect(left).toBeGreaterThan(50_000);
        expect(left).toBeLessThanOrEqual(65_000);
        // Resend after a timeout: same step, next attempt.
        await expect(send(fence, 'a', 2, null)).resolves.toEqual({ kind: 'done', value: 'sent' });
        expect(await step(saga.id, 'a')).toMatchObject({
          status: 'waiting',
          attempts: 2,
          replyDeadline: null,
        });
      });

      it('applies a success reply once: the step completes with the result and the saga wakes', async () => {
        const saga = await start();
        const fence = fenceOf(saga);
        await send(fence, 'a');
        await expect(
          reply(saga.id, 'a', { ok: true, result: { auth: 'x1' } }),
        ).resolves.toMatchObject({ attempt: expect.any(Number) });
        expect(await step(saga.id, 'a')).toMatchObject({
          status: 'completed',
          result: { auth: 'x1' },
          replyDeadline: null,
        });
        expect((await loaded(saga.id)).wakeSeq).toBe(1);
        // A duplicate (or any reply once the step moved on) changes nothing.
        await expect(reply(saga.id, 'a', { ok: false, error: 'late' })).resolves.toBeUndefined();
        expect(await step(saga.id, 'a')).toMatchObject({ status: 'completed', error: null });
        expect((await loaded(saga.id)).wakeSeq).toBe(1);
        // The runner's next send is already-done.
        await expect(send(fence, 'a', 2)).resolves.toEqual({ kind: 'already-done' });
      });

      it('applies a failure reply as the step failing; a reply rolled back with its transaction changes nothing', async () => {
        const saga = await start();
        const fence = fenceOf(saga);
        await send(fence, 'a');
        await expect(
          newTx(async (tx) => {
            await store().applyReply(tx, {
              sagaId: saga.id,
              step: 'a',
              phase: 'forward',
              outcome: { ok: true, result: 1 },
            });
            throw new Error('inbox transaction rolled back');
          }),
        ).rejects.toThrow('inbox transaction rolled back');
        expect(await step(saga.id, 'a')).toMatchObject({ status: 'waiting' });
        await expect(
          reply(saga.id, 'a', { ok: false, error: 'card declined' }),
        ).resolves.toMatchObject({ attempt: expect.any(Number) });
        expect(await step(saga.id, 'a')).toMatchObject({
          status: 'failed',
          error: 'card declined',
        });
        await expect(reply(saga.id, 'nope', { ok: true, result: 1 })).resolves.toBeUndefined();
        await expect(
          reply('00000000-0000-7000-8000-000000000000', 'a', { ok: true, result: 1 }),
        ).resolves.toBeUndefined();
      });

      it('with an attempt: applies a reply to any attempt sent (an earlier one included), never to one not sent', async () => {
        const saga = await start();
        const fence = fenceOf(saga);
        await send(fence, 'a', 1);
        await send(fence, 'a', 2);
        const answer = (attempt: number, phase: 'forward' | 'compensate' = 'forward') =>
          newTx((tx) =>
            store().applyReply(tx, {
              sagaId: saga.id,
              step: 'a',
              phase,
              attempt,
              outcome: { ok: true, result: { attempt } },
            }),
          );
        // Attempt 3 was never sent; no compensation was sent at all; 0 is no attempt.
        await expect(answer(3)).resolves.toBeUndefined();
        await expect(answer(1, 'compensate')).resolves.toBeUndefined();
        await expect(answer(0)).resolves.toBeUndefined();
        expect(await step(saga.id, 'a')).toMatchObject({ status: 'waiting', attempts: 2 });
        // What the engine reads (in the reply's transaction) to tell a late reply from a forged one.
        await expect(newTx((tx) => store().replyTarget(tx, saga.id, 'a'))).resolves.toEqual({
          saga: saga.name,
          status: 'waiting',
          attempts: 2,
          compensationAttempts: 0,
        });
        await expect(
          newTx((tx) => store().replyTarget(tx, saga.id, 'nope')),
        ).resolves.toBeUndefined();
        await expect(
          newTx((tx) => store().replyTarget(tx, '00000000-0000-7000-8000-000000000000', 'a')),
        ).resolves.toBeUndefined();
        // The reply to attempt 1 arrives while attempt 2 is awaited: same key, so it is the answer.
        await expect(answer(1)).resolves.toMatchObject({ attempt: 2 });
        expect(await step(saga.id, 'a')).toMatchObject({
          status: 'completed',
          result: { attempt: 1 },
        });
      });

      it('a final reply timeout leaves a step the reply already completed untouched', async () => {
        const saga = await start();
        const fence = fenceOf(saga);
        await send(fence, 'a');
        await reply(saga.id, 'a', { ok: true, result: 'ok' });
        await store().recordStepFailure(
          fence,
          StepFailure.unanswered('a', 'forward', 1, 'no reply'),
        );
        expect(await step(saga.id, 'a')).toMatchObject({
          status: 'completed',
          result: 'ok',
          error: null,
        });
        // Without a reply, the final timeout is timed_out (outcome unknown), not failed.
        await send(fence, 'b');
        await store().recordStepFailure(
          fence,
          StepFailure.retryable('b', 'forward', 1, 'no reply'),
        );
        expect(await step(saga.id, 'b')).toMatchObject({ status: 'waiting', error: 'no reply' });
        await store().recordStepFailure(
          fence,
          StepFailure.unanswered('b', 'forward', 3, 'no reply'),
        );
        expect(await step(saga.id, 'b')).toMatchObject({
          status: 'timed_out',
          attempts: 3,
          replyDeadline: null,
        });
      });

      it('parks a saga awaiting replies (waiting, no owner, wakes at the earliest deadline) and refuses when a reply came meanwhile', async () => {
        const saga = await start();
        const fence = fenceOf(saga);
        await send(fence, 'a', 1, 60_000);
        await send(fence, 'b', 1, 20_000);
        await expect(store().park(fence, saga.wakeSeq)).resolves.toBe('parked');
        const parked = await loaded(saga.id);
        expect(parked).toMatchObject({ status: 'waiting', owner: null, leaseUntil: null });
        const b = parked.steps.find((x) => x.name === 'b')!;
        expect(parked.wakeAt?.getTime()).toBe(b.replyDeadline?.getTime());
        // Not due: recovery leaves it alone.
        expect(await store().claimOrphans('worker-b', [ref(saga)], 10, 60_000)).not.toContain(
          saga.id,
        );
        // The reply wakes it: claimable at once, and running again when claimed.
        await reply(saga.id, 'b', { ok: true, result: 'b' });
        await waitUntil(
          async () =>
            (await store().claimOrphans('worker-b', [ref(saga)], 10, 60_000)).includes(saga.id),
          'the woken saga to be claimed',
        );
        expect(await loaded(saga.id)).toMatchObject({
          status: 'running',
          owner: 'worker-b',
          wakeAt: null,
        });
        // The new owner saw wakeSeq 1; a reply after that makes its park 'woken'.
        const fenceB = { sagaId: saga.id, owner: 'worker-b' };
        await reply(saga.id, 'a', { ok: true, result: 'a' });
        await expect(store().park(fenceB, 1)).resolves.toBe('woken');
        expect(await loaded(saga.id)).toMatchObject({ status: 'running', owner: 'worker-b' });
        // Another owner cannot park it.
        await expect(store().park(fence, 2)).resolves.toBe('lost');
      });

      it('a parked saga with no reply deadline waits for ever; one past its deadline is claimable', async () => {
        const forever = await start();
        await send(fenceOf(forever), 'a', 1, null);
        await store().park(fenceOf(forever), 0);
        expect((await loaded(forever.id)).wakeAt!.getTime()).toBeGreaterThan(
          Date.now() + 365 * 24 * 3_600_000,
        );
        const due = await start();
        await send(fenceOf(due), 'a', 1, 30);
        await store().park(fenceOf(due), 0);
        await waitUntil(
          async () =>
            (await store().claimOrphans('worker-c', [ref(due)], 10, 60_000)).includes(due.id),
          'the overdue saga to be claimed',
        );
        expect(await store().claimOrphans('worker-c', [ref(forever)], 10, 60_000)).not.toContain(
          forever.id,
        );
      });

      it('remote compensation: compensating awaits the reply, which compensates the step (or fails it)', async () => {
        const saga = await start();
        const fence = fenceOf(saga);
        await complete(fence, 'a');
        await complete(fence, 'b');
        expect(await store().transition(fence, ['running'], 'compensating')).toBe(true);
        const undo = (name: string) =>
          store().runStepTransaction(fence, name, 'compensate', 1, () =>
            Promise.resolve({ result: null, value: 'undo', awaitReply: { timeoutMs: 60_000 } }),
          );
        await undo('b');
        expect(await step(saga.id, 'b')).toMatchObject({
          status: 'compensating',
          compensationAttempts: 1,
        });
        await expect(store().park(fence, saga.wakeSeq)).resolves.toBe('parked');
        expect(await loaded(saga.id)).toMatchObject({ status: 'compensating', owner: null });
        // A forward reply for a compensating step is ignored; the compensation reply applies.
        await expect(reply(saga.id, 'b', { ok: true, result: 1 })).resolves.toBeUndefined();
        await expect(
          reply(saga.id, 'b', { ok: true, result: null }, 'compensate'),
        ).resolves.toMatchObject({ attempt: expect.any(Number) });
        expect(await step(saga.id, 'b')).toMatchObject({
          status: 'compensated',
          result: { ok: 'b' },
        });
        await waitUntil(
          async () =>
            (await store().claimOrphans('worker-a', [ref(saga)], 10, 60_000)).includes(saga.id),
          'the woken compensating saga to be claimed',
        );
        await undo('a');
        await expect(
          reply(saga.id, 'a', { ok: false, error: 'refund refused' }, 'compensate'),
        ).resolves.toMatchObject({ attempt: expect.any(Number) });
        expect(await step(saga.id, 'a')).toMatchObject({
          status: 'compensation_failed',
          error: 'refund refused',
        });
      });
    });

    describe('activeVersions', () => {
      it('counts live instances per name and version', async () => {
        const name = uniqueName();
        await start({ name });
        await start({ name, owner: null });
        await start({ name, version: 'v2' });
        const finished = await start({ name });
        await store().transition(fenceOf(finished), ['running'], 'failed');
        const compensating = await start({ name, version: 'v3' });
        await store().transition(fenceOf(compensating), ['running'], 'compensating');

        const mine = (await store().activeVersions())
          .filter((v) => v.name === name)
          .sort((x, y) => x.version.localeCompare(y.version));
        expect(mine).toEqual([
          { name, version: 'v1', count: 2 },
          { name, version: 'v2', count: 1 },
          { name, version: 'v3', count: 1 },
        ]);
      });
    });
  });
}

/** A fingerprint as the engine stores one (64 hex digits), distinct per `seed`. */
function fingerprint(seed: string): string {
  return createHash('sha256').update(seed).digest('hex');
}

function uniqueName(): string {
  return `conformance-${randomUUID().slice(0, 13)}`;
}

function newSaga(overrides: Partial<NewSaga> = {}): NewSaga {
  return {
    id: randomUUID(),
    name: uniqueName(),
    version: 'v1',
    input: { orderId: randomUUID(), amount: 42 },
    idempotencyKey: null,
    stepNames: ['a', 'b', 'c'],
    owner: 'worker-a',
    leaseMs: 60_000,
    timeoutMs: null,
    ...overrides,
  };
}

/**
 * A valid Date. Checked by tag, not instanceof: a store may build its Dates in another realm (e.g.
 * with structuredClone, whose objects are not instances of the jest sandbox's Date).
 */
function expectDate(value: unknown): void {
  expect(Object.prototype.toString.call(value)).toBe('[object Date]');
  expect(Number.isNaN((value as Date).getTime())).toBe(false);
}

function fenceOf(saga: SagaRecord): Fence {
  return { sagaId: saga.id, owner: saga.owner ?? 'worker-a' };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function ref(saga: SagaRecord): { name: string; version: string } {
  return { name: saga.name, version: saga.version };
}
