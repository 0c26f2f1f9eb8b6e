import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import type { JsonValue } from '../core/json';
import type { InboxEntry, InboxKey, InboxStore } from '../core/ports/inbox-store';
import { uuidv7 } from '../core/uuid';
import {
  expectDate,
  storeTime,
  type ConformanceClock,
  type StoreTime,
} from './outbox-store-conformance';

/** One fresh inbox, as a test of the suite gets it. */
export interface InboxStoreUnderTest<Tx = unknown> {
  /** Holds no messages and no failures when handed over. */
  store: InboxStore<Tx>;
  /**
   * A business write of a handler, through its transaction (PostgreSQL: an INSERT through the
   * EntityManager; in memory: `tx.onCommit`). It must commit and roll back with `tx`.
   */
  write(tx: Tx, note: string): Promise<void>;
  /** The notes of every committed `write`, in the order they were written. */
  committedWrites(): Promise<string[]>;
  /** See ConformanceClock. Omitted: real time (the database clock). */
  clock?: ConformanceClock;
  /** Releases what `create` opened for this test. */
  cleanup?(): Promise<void>;
}

/** What an inbox store adapter hands describeInboxStoreConformance. */
export interface InboxStoreConformanceHarness<Tx = unknown> {
  /** Once, before the first test (start a server, create a database). */
  setup?(): Promise<void>;
  /** Before each test: a fresh inbox that holds nothing (a new store, emptied tables). */
  create(): Promise<InboxStoreUnderTest<Tx>>;
  /** Once, after the last test. */
  teardown?(): Promise<void>;
  /**
   * False for a store without the optional `markProcessedBatch`: its tests are then not declared.
   * Default true.
   */
  batches?: boolean;
}

/**
 * Declares the tests every InboxStore implementation must pass, through the port only: the contract
 * the InboxProcessor relies on for effectively-exactly-once handling. Each test gets a fresh, empty
 * inbox from `harness.create()`. No test holds a transaction open while waiting on another one, so
 * stores that serialise transactions (PGlite) run every case.
 */
export function describeInboxStoreConformance<Tx>(
  label: string,
  harness: InboxStoreConformanceHarness<Tx>,
): void {
  describe(`InboxStore conformance: ${label}`, () => {
    let current: InboxStoreUnderTest<Tx> | undefined;
    const u = (): InboxStoreUnderTest<Tx> => {
      if (!current) throw new Error('conformance harness not initialised (did create() fail?)');
      return current;
    };
    const store = (): InboxStore<Tx> => u().store;
    const time = (): StoreTime => storeTime(u().clock);

    beforeAll(async () => {
      await harness.setup?.();
    });
    afterAll(async () => {
      await harness.teardown?.();
    });
    beforeEach(async () => {
      current = await harness.create();
    });
    afterEach(async () => {
      const done = current;
      current = undefined;
      await done?.cleanup?.();
    });

    /**
     * One delivery as the InboxProcessor makes it: in one transaction, record the key and, unless
     * it is a duplicate, write `note`. Returns the attempt number, or null for a duplicate.
     */
    const deliver = (key: InboxKey, note = `handled ${key.messageId}`): Promise<number | null> =>
      store().transaction(async (tx) => {
        const attempt = await store().markProcessed(tx, key);
        if (attempt !== null) await u().write(tx, note);
        return attempt;
      });
    /** A delivery whose handler writes and then fails: everything rolls back. */
    const failedDelivery = async (key: InboxKey, note = 'rolled back'): Promise<number | null> => {
      let attempt: number | null = null;
      const failure = new Error('handler failed');
      await expect(
        store().transaction(async (tx) => {
          attempt = await store().markProcessed(tx, key);
          await u().write(tx, note);
          throw failure;
        }),
      ).rejects.toBe(failure);
      return attempt;
    };
    const fail = (key: InboxKey, error: string, maxAttempts = 5, message: JsonValue = null) =>
      store().recordFailure({ ...key, error, maxAttempts, message });
    const entry = async (key: InboxKey): Promise<InboxEntry> => {
      const found = await store().get(key);
      if (!found) throw new Error(`inbox holds no ${key.consumer}/${key.messageId}`);
      return found;
    };

    describe('handling once', () => {
      it("records a message once, as attempt 1, committed with the handler's writes", async () => {
        const key = newKey();
        const before = time().now();
        expect(await deliver(key, 'charged')).toBe(1);

        const recorded = await entry(key);
        expect(recorded).toEqual({
          ...key,
          status: 'processed',
          attempts: 1,
          lastError: null,
          message: null,
          processedAt: recorded.processedAt,
        });
        expectDate(recorded.processedAt);
        expect(Math.abs(recorded.processedAt.getTime() - before)).toBeLessThan(2_000);
        expect(await u().committedWrites()).toEqual(['charged']);
        expect(await store().getFailure(key)).toBeUndefined();
      });

      it('a later delivery of a handled message is a duplicate: null, and nothing changes', async () => {
        const key = newKey();
        expect(await deliver(key, 'first')).toBe(1);
        const recorded = await entry(key);
        expect(await deliver(key, 'second')).toBeNull();
        expect(await deliver(key, 'third')).toBeNull();
        expect(await entry(key)).toEqual(recorded);
        expect(await u().committedWrites()).toEqual(['first']);
      });

      it("transaction resolves with the body's value; a body that rejects rolls back the inbox row and the writes, and rethrows", async () => {
        const key = newKey();
        expect(await failedDelivery(key, 'doomed')).toBe(1);
        expect(await store().get(key)).toBeUndefined();
        expect(await u().committedWrites()).toEqual([]);
        // The rollback itself counts nothing (recordFailure does): the next delivery is attempt 1.
        expect(await store().getFailure(key)).toBeUndefined();

        const value = await store().transaction(async (tx) => {
          expect(await store().markProcessed(tx, key)).toBe(1);
          await u().write(tx, 'kept');
          return { value: 42 };
        });
        expect(value).toEqual({ value: 42 });
        expect(await u().committedWrites()).toEqual(['kept']);
      });

      it('the same key twice in one transaction: the second is a duplicate', async () => {
        const key = newKey();
        const attempts = await store().transaction(async (tx) => [
          await store().markProcessed(tx, key),
          await store().markProcessed(tx, key),
        ]);
        expect(attempts).toEqual([1, null]);
        expect(await entry(key)).toMatchObject({ status: 'processed', attempts: 1 });
      });

      it('consumers are independent: one message id is handled, counted and dead-lettered per consumer', async () => {
        const messageId = uuidv7();
        const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((s) => ({
          consumer: `conformance.${s}`,
          messageId,
        }));
        expect(await deliver(a!)).toBe(1);
        expect(await deliver(b!)).toBe(1);
        expect(await fail(c!, 'c failed')).toEqual({ outcome: 'counted', attempts: 1 });
        expect(await fail(d!, 'd failed', 1)).toEqual({ outcome: 'dead-lettered', attempts: 1 });

        expect(await deliver(a!)).toBeNull();
        expect(await store().getFailure(a!)).toBeUndefined();
        expect(await store().getFailure(c!)).toMatchObject({ attempts: 1, lastError: 'c failed' });
        expect(await deliver(c!)).toBe(2);
        expect((await entry(d!)).status).toBe('dead_letter');
        expect((await entry(b!)).status).toBe('processed');
      });

      it('two overlapping deliveries of one message: the second is a duplicate once the first commits', async () => {
        const key = newKey();
        const gate = deferred();
        const marked = deferred();
        const first = store().transaction(async (tx) => {
          const attempt = await store().markProcessed(tx, key);
          await u().write(tx, 'first');
          marked.resolve();
          await gate.promise;
          return attempt;
        });
        await marked.promise;
        // The second delivery starts while the first holds the key uncommitted. It is never waited
        // on here (a store may serialise transactions): the first commits regardless.
        const second = deliver(key, 'second');
        await turns();
        gate.resolve();
        expect(await first).toBe(1);
        expect(await second).toBeNull();
        expect(await u().committedWrites()).toEqual(['first']);
      });

      it('two overlapping deliveries of one message: the second handles it once the first rolls back', async () => {
        const key = newKey();
        const gate = deferred();
        const marked = deferred();
        const failure = new Error('first handler failed');
        const first = store().transaction(async (tx) => {
          await store().markProcessed(tx, key);
          await u().write(tx, 'first');
          marked.resolve();
          await gate.promise;
          throw failure;
        });
        await marked.promise;
        const second = deliver(key, 'second');
        await turns();
        gate.resolve();
        await expect(first).rejects.toBe(failure);
        expect(await second).toBe(1);
        expect(await u().committedWrites()).toEqual(['second']);
        expect(await entry(key)).toMatchObject({ status: 'processed', attempts: 1 });
      });

      it('many racing deliveries of one message: exactly one handles it', async () => {
        const key = newKey();
        const attempts = await Promise.all(
          Array.from({ length: 8 }, (_, i) => deliver(key, `delivery ${i}`)),
        );
        expect(attempts.filter((a) => a === 1)).toHaveLength(1);
        expect(attempts.filter((a) => a === null)).toHaveLength(7);
        expect(await u().committedWrites()).toHaveLength(1);
      });
    });

    if (harness.batches !== false)
      describe('batches (markProcessedBatch)', () => {
        const markBatch = (tx: Tx, consumer: string, ids: readonly string[]) => {
          const mark = store().markProcessedBatch?.bind(store());
          if (!mark)
            throw new Error('the store has no markProcessedBatch (harness: batches false)');
          return mark(tx, consumer, ids);
        };

        it('records the new ids of one consumer at once: attempt per id in the order given, null for one the inbox holds; failures counted so far number the attempt and go with the commit', async () => {
          const consumer = newKey().consumer;
          const [done, failing, fresh] = [uuidv7(), uuidv7(), uuidv7()];
          expect(await deliver({ consumer, messageId: done }, 'earlier')).toBe(1);
          await fail({ consumer, messageId: failing }, 'once');
          await fail({ consumer, messageId: failing }, 'twice');
          const attempts = await store().transaction(async (tx) => {
            const result = await markBatch(tx, consumer, [fresh, done, failing]);
            await u().write(tx, 'batch');
            return result;
          });
          expect(attempts).toEqual([1, null, 3]);
          expect(await entry({ consumer, messageId: fresh })).toMatchObject({
            status: 'processed',
            attempts: 1,
          });
          expect(await entry({ consumer, messageId: failing })).toMatchObject({
            status: 'processed',
            attempts: 3,
          });
          expect(await store().getFailure({ consumer, messageId: failing })).toBeUndefined();
          expect(await u().committedWrites()).toEqual(['earlier', 'batch']);
          // Each is now a duplicate, for a single delivery and for a batch alike.
          expect(await deliver({ consumer, messageId: fresh })).toBeNull();
          expect(
            await store().transaction((tx) => markBatch(tx, consumer, [failing, fresh])),
          ).toEqual([null, null]);
          expect(await store().transaction((tx) => markBatch(tx, consumer, []))).toEqual([]);
        });

        it('a batch that rolls back records nothing and keeps the failure counts', async () => {
          const consumer = newKey().consumer;
          const [a, b] = [uuidv7(), uuidv7()];
          await fail({ consumer, messageId: b }, 'once');
          const failure = new Error('a handler of the batch failed');
          await expect(
            store().transaction(async (tx) => {
              expect(await markBatch(tx, consumer, [a, b])).toEqual([1, 2]);
              await u().write(tx, 'rolled back');
              throw failure;
            }),
          ).rejects.toBe(failure);
          expect(await store().get({ consumer, messageId: a })).toBeUndefined();
          expect(await store().get({ consumer, messageId: b })).toBeUndefined();
          expect(await store().getFailure({ consumer, messageId: b })).toMatchObject({
            attempts: 1,
          });
          expect(await u().committedWrites()).toEqual([]);
          expect(await deliver({ consumer, messageId: b })).toBe(2);
        });

        it('only its consumer: the same ids of another consumer are new to it; a repeated id is refused', async () => {
          const [one, two] = ['conformance.batch-one', 'conformance.batch-two'];
          const ids = [uuidv7(), uuidv7()];
          expect(await store().transaction((tx) => markBatch(tx, one, ids))).toEqual([1, 1]);
          expect(await store().transaction((tx) => markBatch(tx, two, ids))).toEqual([1, 1]);
          const id = uuidv7();
          await expect(
            store().transaction((tx) => markBatch(tx, one, [id, uuidv7(), id])),
          ).rejects.toThrow(/repeats an id/);
          expect(await store().get({ consumer: one, messageId: id })).toBeUndefined();
        });

        it('a dead letter is never handled again: null for a batch', async () => {
          const key = newKey();
          expect(await fail(key, 'poison', 1)).toEqual({ outcome: 'dead-lettered', attempts: 1 });
          expect(
            await store().transaction((tx) => markBatch(tx, key.consumer, [key.messageId])),
          ).toEqual([null]);
          expect(await entry(key)).toMatchObject({ status: 'dead_letter' });
        });
      });

    describe('failures', () => {
      it('counts failed attempts; the next attempt is numbered count + 1; handling it clears the count', async () => {
        const key = newKey();
        expect(await fail(key, 'card declined: 503')).toEqual({ outcome: 'counted', attempts: 1 });
        const first = await store().getFailure(key);
        await time().pass(10);
        expect(await fail(key, 'still 503')).toEqual({ outcome: 'counted', attempts: 2 });

        const failing = await store().getFailure(key);
        expect(failing).toEqual({
          ...key,
          attempts: 2,
          lastError: 'still 503',
          firstFailedAt: first!.firstFailedAt,
          lastFailedAt: failing!.lastFailedAt,
        });
        expectDate(failing!.firstFailedAt);
        expectDate(failing!.lastFailedAt);
        expect(failing!.lastFailedAt.getTime()).toBeGreaterThan(failing!.firstFailedAt.getTime());
        expect(await store().get(key)).toBeUndefined(); // failing is not handled

        expect(await deliver(key, 'charged')).toBe(3);
        expect(await entry(key)).toMatchObject({ status: 'processed', attempts: 3 });
        expect(await store().getFailure(key)).toBeUndefined();
        expect(await u().committedWrites()).toEqual(['charged']);
      });

      it('a rolled-back attempt keeps the failure count', async () => {
        const key = newKey();
        await fail(key, 'one');
        await fail(key, 'two');
        expect(await failedDelivery(key)).toBe(3);
        expect(await store().getFailure(key)).toMatchObject({ attempts: 2, lastError: 'two' });
        expect(await fail(key, 'three')).toEqual({ outcome: 'counted', attempts: 3 });
      });

      it('the failure that reaches maxAttempts dead-letters the message with its error and message; it is never handled again', async () => {
        const key = newKey();
        const delivered: JsonValue = { order: 'o-1', lines: [1, 'two', null], ok: false };
        expect(await fail(key, 'parse error 1', 3, delivered)).toEqual({
          outcome: 'counted',
          attempts: 1,
        });
        expect(await fail(key, 'parse error 2', 3, delivered)).toEqual({
          outcome: 'counted',
          attempts: 2,
        });
        expect(await fail(key, 'parse error 3', 3, delivered)).toEqual({
          outcome: 'dead-lettered',
          attempts: 3,
        });

        const dead = await entry(key);
        expect(dead).toEqual({
          ...key,
          status: 'dead_letter',
          attempts: 3,
          lastError: 'parse error 3',
          message: delivered,
          processedAt: dead.processedAt,
        });
        expectDate(dead.processedAt);
        expect(await store().getFailure(key)).toBeUndefined();
        expect(await deliver(key, 'late')).toBeNull();
        expect(await fail(key, 'again', 3)).toEqual({ outcome: 'already-done' });
        expect(await u().committedWrites()).toEqual([]);
        expect(await entry(key)).toEqual(dead);
      });

      it("maxAttempts is the failing call's: 1 dead-letters at the first failure; a lower one at a later failure", async () => {
        const once = newKey();
        expect(await fail(once, 'fatal', 1)).toEqual({ outcome: 'dead-lettered', attempts: 1 });
        expect(await entry(once)).toMatchObject({
          status: 'dead_letter',
          attempts: 1,
          lastError: 'fatal',
          message: null,
        });

        const lowered = newKey();
        await fail(lowered, 'e1', 10);
        await fail(lowered, 'e2', 10);
        expect(await fail(lowered, 'e3', 2)).toEqual({ outcome: 'dead-lettered', attempts: 3 });
      });

      it('a failure of a message the inbox already holds records nothing: already-done', async () => {
        const key = newKey();
        expect(await deliver(key)).toBe(1);
        const recorded = await entry(key);
        expect(await fail(key, 'late failure of another delivery')).toEqual({
          outcome: 'already-done',
        });
        expect(await store().getFailure(key)).toBeUndefined();
        expect(await entry(key)).toEqual(recorded);
      });
    });

    describe('dead letters', () => {
      it('lists dead letters in (consumer, message id) order, by consumer, keyset-paged; nothing else', async () => {
        const keyOf = (consumer: string, messageId: string): InboxKey => ({
          consumer: `conformance.${consumer}`,
          messageId,
        });
        const dead = [
          keyOf('b', 'm2'),
          keyOf('a', 'm3'),
          keyOf('b', 'm1'),
          keyOf('a', 'm1'),
          keyOf('c', 'm1'),
        ];
        for (const key of dead) await fail(key, `dead ${key.messageId}`, 1);
        await deliver(keyOf('a', 'm2')); // processed
        await fail(keyOf('a', 'm4'), 'failing', 5); // failing, not dead

        const ordered = [
          keyOf('a', 'm1'),
          keyOf('a', 'm3'),
          keyOf('b', 'm1'),
          keyOf('b', 'm2'),
          keyOf('c', 'm1'),
        ];
        const pages: InboxKey[][] = [];
        let after: InboxKey | undefined;
        for (;;) {
          const page = await store().listDeadLetters({}, 2, after);
          pages.push(page.entries.map(keyOnly));
          expect(page.entries.every((e) => e.status === 'dead_letter')).toBe(true);
          if (page.nextCursor === null) break;
          after = page.nextCursor;
        }
        expect(pages).toEqual([ordered.slice(0, 2), ordered.slice(2, 4), ordered.slice(4)]);

        const exact = await store().listDeadLetters({}, 5);
        expect(exact.entries.map(keyOnly)).toEqual(ordered);
        expect(exact.nextCursor).toBeNull();

        const ofB = await store().listDeadLetters({ consumer: 'conformance.b' }, 1);
        expect(ofB.entries.map(keyOnly)).toEqual([keyOf('b', 'm1')]);
        const ofB2 = await store().listDeadLetters(
          { consumer: 'conformance.b' },
          1,
          ofB.nextCursor!,
        );
        expect(ofB2).toEqual({ entries: [await entry(keyOf('b', 'm2'))], nextCursor: null });
        expect(await store().listDeadLetters({ consumer: 'conformance.none' }, 10)).toEqual({
          entries: [],
          nextCursor: null,
        });
      });

      it("deleting dead letters releases only that consumer's dead letters; the next delivery is handled from attempt 1", async () => {
        const mine = 'conformance.mine';
        const theirs = 'conformance.theirs';
        const [m1, m2, m3] = [uuidv7(), uuidv7(), uuidv7()];
        await fail({ consumer: mine, messageId: m1 }, 'poison', 1);
        await fail({ consumer: mine, messageId: m2 }, 'poison', 1);
        await deliver({ consumer: mine, messageId: m3 });
        await fail({ consumer: theirs, messageId: m1 }, 'poison', 1);

        expect(await store().deleteDeadLetters(mine, [m1, m3, 'unknown', m1])).toEqual([m1]);
        expect(await store().deleteDeadLetters(mine, [])).toEqual([]);
        expect(await store().get({ consumer: mine, messageId: m1 })).toBeUndefined();
        expect((await entry({ consumer: mine, messageId: m2 })).status).toBe('dead_letter');
        expect((await entry({ consumer: mine, messageId: m3 })).status).toBe('processed');
        expect((await entry({ consumer: theirs, messageId: m1 })).status).toBe('dead_letter');

        expect(await deliver({ consumer: mine, messageId: m1 }, 'fixed')).toBe(1);
        expect(await deliver({ consumer: theirs, messageId: m1 })).toBeNull();
        expect(await u().committedWrites()).toEqual([`handled ${m3}`, 'fixed']);
      });
    });

    describe('retention', () => {
      it('deletes processed rows and failure counts older than the retention, at most `limit` of each per call; dead letters stay', async () => {
        const processed = newKey();
        const failing = [newKey(), newKey(), newKey()];
        const dead = newKey();
        await deliver(processed);
        for (const key of failing) await fail(key, 'transient');
        await fail(dead, 'poison', 1);

        expect(await store().deleteProcessedBatch(60 * 60_000, 10)).toBe(0);
        await time().pass(30);
        expect(await store().deleteProcessedBatch(10, 2)).toBe(3); // 1 processed + 2 counts
        expect(await store().deleteProcessedBatch(10, 2)).toBe(1);
        expect(await store().deleteProcessedBatch(10, 2)).toBe(0);
        // Optional: a store that can reclaim space does so without disturbing what is left.
        await store().vacuum?.();

        expect(await store().get(processed)).toBeUndefined();
        for (const key of failing) expect(await store().getFailure(key)).toBeUndefined();
        expect((await entry(dead)).status).toBe('dead_letter');
        // Forgotten means handled again if the broker ever redelivers it.
        expect(await deliver(processed, 'again')).toBe(1);
        expect(await deliver(failing[0]!)).toBe(1);
      });
    });
  });
}

function newKey(): InboxKey {
  return { consumer: 'conformance.payments', messageId: uuidv7() };
}

function keyOnly(e: InboxKey): InboxKey {
  return { consumer: e.consumer, messageId: e.messageId };
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A few macrotask turns: lets a started delivery reach the store. */
async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}
