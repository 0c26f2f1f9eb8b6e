import { randomBytes, randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { StoredSubjectKey, SubjectKeyStore } from '../core/ports/subject-key-store';

/** What a SubjectKeyStore adapter hands the conformance suite, once per test. */
export interface SubjectKeyStoreUnderTest<Tx = unknown> {
  /** An empty store (or one whose other data the suite may ignore: it uses fresh subject ids). */
  store: SubjectKeyStore<Tx>;
  /**
   * Runs `fn` in a new caller-owned transaction: commits when it resolves, rolls back (and rethrows)
   * when it throws. Given, the suite checks that `insertIfAbsent(key, tx)` commits and rolls back
   * with it; omit it for a store that ignores `tx` (outside the caller's database).
   */
  inTransaction?: <T>(fn: (tx: Tx) => Promise<T>) => Promise<T>;
  /** Releases what `makeStore` opened for this test. */
  cleanup?: () => Promise<void>;
}

/**
 * Declares the tests every SubjectKeyStore implementation must pass, through the port only:
 * one key per subject whoever races, lookups by subject and by id, erasure (crypto-shredding),
 * rotation's keyset paging and conditional rewrap. `makeStore` is called before each test.
 */
export function subjectKeyStoreConformance<Tx>(
  name: string,
  makeStore: () => Promise<SubjectKeyStoreUnderTest<Tx>>,
): void {
  describe(`SubjectKeyStore conformance: ${name}`, () => {
    let current: SubjectKeyStoreUnderTest<Tx> | undefined;
    const store = (): SubjectKeyStore<Tx> => {
      if (!current) throw new Error('conformance store not created (did makeStore fail?)');
      return current.store;
    };

    beforeEach(async () => {
      current = await makeStore();
    });
    afterEach(async () => {
      await current?.cleanup?.();
      current = undefined;
    });

    it('stores a key once and finds it by subject and by id, with its fields intact', async () => {
      const key = newKey();
      const stored = await store().insertIfAbsent(key);
      expect(fields(stored)).toEqual(fields(key));
      expect(fields(await store().findBySubject(key.subjectId))).toEqual(fields(key));
      const byId = await store().findById(key.id);
      expect(fields(byId)).toEqual(fields(key));
      expect(byId?.createdAt).toBeInstanceOf(Date);
    });

    it('keeps the first key of a subject: a second insert returns it and stores nothing', async () => {
      const first = newKey();
      const second = newKey({ subjectId: first.subjectId });
      await store().insertIfAbsent(first);
      expect(fields(await store().insertIfAbsent(second))).toEqual(fields(first));
      expect(await store().findById(second.id)).toBeUndefined();
    });

    it('gives every concurrent writer of one subject the same key', async () => {
      const subjectId = `subject-${randomUUID()}`;
      const racers = Array.from({ length: 8 }, () => newKey({ subjectId }));
      const results = await Promise.all(racers.map((key) => store().insertIfAbsent(key)));
      const ids = new Set(results.map((k) => k.id));
      expect(ids.size).toBe(1);
      const [winner] = results;
      expect(racers.map((k) => k.id)).toContain(winner!.id);
      expect(fields(await store().findBySubject(subjectId))).toEqual(fields(winner));
    });

    it('answers undefined for unknown subjects, unknown ids and malformed ids', async () => {
      expect(await store().findBySubject(`nobody-${randomUUID()}`)).toBeUndefined();
      expect(await store().findById(randomUUID())).toBeUndefined();
      expect(await store().findById('not-a-uuid')).toBeUndefined();
    });

    it('treats subject ids as exact text (case, spaces and quotes included)', async () => {
      const base = `Subject '${randomUUID()}" `;
      const a = newKey({ subjectId: base });
      const b = newKey({ subjectId: base.toLowerCase() });
      const c = newKey({ subjectId: base.trim() });
      for (const key of [a, b, c]) expect((await store().insertIfAbsent(key)).id).toBe(key.id);
      expect((await store().findBySubject(base))?.id).toBe(a.id);
    });

    it('erases a subject: its key is gone by subject and by id, others stay', async () => {
      const doomed = newKey();
      const kept = newKey();
      await store().insertIfAbsent(doomed);
      await store().insertIfAbsent(kept);

      expect(await store().erase(doomed.subjectId)).toEqual([doomed.id]);
      expect(await store().findBySubject(doomed.subjectId)).toBeUndefined();
      expect(await store().findById(doomed.id)).toBeUndefined();
      expect(fields(await store().findById(kept.id))).toEqual(fields(kept));
      // Erasing again, or a subject that never had a key, is a no-op.
      expect(await store().erase(doomed.subjectId)).toEqual([]);
      expect(await store().erase(`nobody-${randomUUID()}`)).toEqual([]);
    });

    it('gives an erased subject a new key on its next insert (never the erased one)', async () => {
      const old = newKey();
      await store().insertIfAbsent(old);
      await store().erase(old.subjectId);
      const renewed = newKey({ subjectId: old.subjectId });
      expect((await store().insertIfAbsent(renewed)).id).toBe(renewed.id);
      expect(await store().findById(old.id)).toBeUndefined();
    });

    it('pages keys wrapped with other master keys in id order, after afterId, at most limit', async () => {
      const active = `m-active-${randomUUID()}`;
      const mine = [
        ...Array.from({ length: 5 }, () => newKey({ masterKeyId: `m-old-${randomUUID()}` })),
        ...Array.from({ length: 3 }, () => newKey({ masterKeyId: active })),
      ];
      for (const key of mine) await store().insertIfAbsent(key);
      const expected = mine
        .filter((k) => k.masterKeyId !== active)
        .map((k) => k.id)
        .sort();

      const seen: string[] = [];
      let afterId: string | null = null;
      for (let page = 0; page < 1000; page += 1) {
        const batch: StoredSubjectKey[] = await store().wrappedWithOther(active, afterId, 2);
        expect(batch.length).toBeLessThanOrEqual(2);
        if (batch.length === 0) break;
        for (const key of batch) expect(key.masterKeyId).not.toBe(active);
        seen.push(...batch.map((k) => k.id));
        afterId = batch[batch.length - 1]!.id;
      }
      // In id order with no repeats; the store may hold other tests' keys between ours.
      expect(seen).toEqual([...new Set(seen)].sort());
      expect(seen.filter((id) => expected.includes(id))).toEqual(expected);
      const mineActive = mine.filter((k) => k.masterKeyId === active).map((k) => k.id);
      expect(seen.filter((id) => mineActive.includes(id))).toEqual([]);
      // Resuming past the last of ours skips them.
      const rest = await store().wrappedWithOther(active, expected[expected.length - 1]!, 1000);
      expect(rest.map((k) => k.id).filter((id) => expected.includes(id))).toEqual([]);
    });

    it('rewraps only a key still wrapped with the expected master key', async () => {
      const key = newKey({ masterKeyId: 'm-one' });
      await store().insertIfAbsent(key);
      const to = { masterKeyId: 'm-two', wrapped: randomBytes(60).toString('base64') };

      expect(await store().rewrap(key.id, 'm-other', to)).toBe(false);
      expect((await store().findById(key.id))?.wrapped).toBe(key.wrapped);

      expect(await store().rewrap(key.id, 'm-one', to)).toBe(true);
      expect(fields(await store().findById(key.id))).toEqual({ ...fields(key), ...to });
      // A second rotation racing the first finds it done.
      expect(await store().rewrap(key.id, 'm-one', to)).toBe(false);
      // An erased key is not brought back.
      await store().erase(key.subjectId);
      expect(await store().rewrap(key.id, 'm-two', { ...to, masterKeyId: 'm-three' })).toBe(false);
      expect(await store().findById(key.id)).toBeUndefined();
    });

    it('commits a key inserted in a transaction with it, and forgets it on rollback', async () => {
      const inTransaction = current?.inTransaction;
      if (!inTransaction) {
        // A store outside the caller's database ignores tx: the key exists at once.
        const key = newKey();
        await store().insertIfAbsent(key, undefined);
        expect((await store().findById(key.id))?.id).toBe(key.id);
        return;
      }
      const committed = newKey();
      await inTransaction(async (tx) => {
        await store().insertIfAbsent(committed, tx);
        expect((await store().findBySubject(committed.subjectId, tx))?.id).toBe(committed.id);
        expect((await store().findById(committed.id, tx))?.id).toBe(committed.id);
      });
      expect((await store().findById(committed.id))?.id).toBe(committed.id);

      const rolledBack = newKey();
      await expect(
        inTransaction(async (tx) => {
          await store().insertIfAbsent(rolledBack, tx);
          throw new Error('roll back');
        }),
      ).rejects.toThrow('roll back');
      expect(await store().findBySubject(rolledBack.subjectId)).toBeUndefined();
      expect(await store().findById(rolledBack.id)).toBeUndefined();
    });
  });
}

function newKey(overrides: Partial<StoredSubjectKey> = {}): StoredSubjectKey {
  return {
    id: randomUUID(),
    subjectId: `subject-${randomUUID()}`,
    masterKeyId: 'm-conformance',
    // Opaque to the store: the size SubjectKeys writes, random bytes (not a real wrapping).
    wrapped: randomBytes(60).toString('base64'),
    ...overrides,
  };
}

/** The fields a store must round-trip exactly (createdAt is the store's). */
function fields(
  key: StoredSubjectKey | undefined,
): Omit<StoredSubjectKey, 'createdAt'> | undefined {
  if (!key) return undefined;
  return {
    id: key.id,
    subjectId: key.subjectId,
    masterKeyId: key.masterKeyId,
    wrapped: key.wrapped,
  };
}
