import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import type { JsonValue } from '../core/json';
import type {
  ClaimedOutboxMessage,
  NewOutboxMessage,
  OutboxMessage,
} from '../core/outbox/outbox-message';
import { failureOutcome, resolveOutboxRetryPolicy } from '../core/outbox/outbox-retry';
import type { OutboxStatus } from '../core/outbox/outbox-transitions';
import type { OutboxStats, OutboxStore, OutboxWriter } from '../core/ports/outbox-store';
import { uuidv7 } from '../core/uuid';

/**
 * The clock a store runs on, when a test controls it (an in-memory store built with a manual
 * clock). Without one the store runs on real time (PostgreSQL: the database clock) and the suites
 * wait for time to pass.
 */
export interface ConformanceClock {
  now(): number;
  /** Moves the store's clock forward by `ms`. */
  advance(ms: number): void;
}

/** One fresh outbox, as a test of the suite gets it. */
export interface OutboxStoreUnderTest<Tx = unknown> {
  /** Holds no messages when handed over. */
  store: OutboxStore;
  /** The write side of the same outbox (usually the same object as `store`). */
  writer: OutboxWriter<Tx>;
  /**
   * Runs `body` in a new transaction the writer can join: commits when it resolves, rolls back and
   * rethrows when it rejects (PostgreSQL: `dataSource.transaction`).
   */
  transaction<T>(body: (tx: Tx) => Promise<T>): Promise<T>;
  /** A handle that is not an open transaction (PostgreSQL: the DataSource's own manager). */
  notATransaction: Tx;
  /** See ConformanceClock. Omitted: real time. */
  clock?: ConformanceClock;
  /**
   * Resolves once every message committed so far is claimable as far as the store's own visibility
   * rules go (for a store whose committed rows become claimable with a delay, e.g. a replica or a
   * commit watermark). Called after each commit, so the cases decide eligibility by the port's
   * other rules only. Omitted: commits are claimable at once (PostgreSQL since 0.3).
   */
  untilCommittedClaimable?(): Promise<void>;
  /** Releases what `create` opened for this test. */
  cleanup?(): Promise<void>;
}

/** What an outbox store adapter hands describeOutboxStoreConformance. */
export interface OutboxStoreConformanceHarness<Tx = unknown> {
  /** Once, before the first test (start a server, create a database). */
  setup?(): Promise<void>;
  /** Before each test: a fresh outbox that holds no messages (a new store, emptied tables). */
  create(): Promise<OutboxStoreUnderTest<Tx>>;
  /** Once, after the last test. */
  teardown?(): Promise<void>;
  /**
   * False where an open transaction holds every other connection up (PGlite behind its socket
   * multiplexer): the case that looks at the outbox from outside an open transaction is not
   * declared. Default true.
   */
  concurrentTransactions?: boolean;
  /**
   * False where `listen` cannot deliver notifications to this process (PGlite: NOTIFY does not
   * cross the multiplexer; the relay only polls): the wake-up case is replaced by one that only
   * opens and closes a subscription. Default true.
   */
  notifications?: boolean;
  /**
   * False for a writer without the optional `insertClaimed` (optimistic sending then claims after
   * the commit): its cases are not declared. Default true.
   */
  claimAtWrite?: boolean;
}

/**
 * Declares the tests every OutboxStore (+ OutboxWriter) implementation must pass, through the port
 * only: the contract the relay, the optimistic sender, the dead-letter API and retention rely on.
 * Each test gets a fresh, empty outbox from `harness.create()`, so claims and stats are exact.
 * Leases and backoff run on the harness clock when it has one, else on real time with short
 * durations awaited as conditions. Per-key commit order under concurrent writers (PostgreSQL's key
 * locks) is the store's own mechanism and is tested there.
 */
export function describeOutboxStoreConformance<Tx>(
  label: string,
  harness: OutboxStoreConformanceHarness<Tx>,
): void {
  describe(`OutboxStore conformance: ${label}`, () => {
    let current: OutboxStoreUnderTest<Tx> | undefined;
    const u = (): OutboxStoreUnderTest<Tx> => {
      if (!current) throw new Error('conformance harness not initialised (did create() fail?)');
      return current;
    };
    const store = (): OutboxStore => u().store;

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

    const time = (): StoreTime => storeTime(u().clock);

    /** Commits each batch as one `insert` of one transaction; waits until they are claimable. */
    const commit = async (...batches: NewOutboxMessage[][]): Promise<string[]> => {
      await u().transaction(async (tx) => {
        for (const batch of batches) await u().writer.insert(tx, batch);
      });
      await u().untilCommittedClaimable?.();
      return batches.flat().map((m) => m.id);
    };
    /** Commits one message per transaction, in order. */
    const commitEach = async (...messages: NewOutboxMessage[]): Promise<string[]> => {
      for (const m of messages) await commit([m]);
      return messages.map((m) => m.id);
    };
    const claimIds = async (token: string, limit = 100, leaseMs = 60_000): Promise<string[]> =>
      (await store().claim(token, limit, leaseMs)).map((m) => m.id);
    const found = async (id: string): Promise<OutboxMessage> => {
      const message = await store().get(id);
      if (!message) throw new Error(`outbox message ${id} not found`);
      return message;
    };
    const statusOf = async (id: string): Promise<OutboxStatus | undefined> =>
      (await store().get(id))?.status;
    /** Drives `ids` to dead_letter through the relay's path: claimed, then failed for good. */
    const deadLetter = async (ids: readonly string[]): Promise<void> => {
      const want = new Set(ids);
      await time().eventually('messages dead-lettered', async () => {
        const token = uuidv7();
        const claimed = await claimIds(token, 1000);
        const doomed = claimed.filter((id) => want.has(id));
        await store().release(
          token,
          claimed.filter((id) => !want.has(id)),
        );
        await store().markFailed(
          token,
          doomed.map((id) => ({ id, error: 'rejected by the broker', delayMs: null })),
        );
        const statuses = await Promise.all(ids.map(statusOf));
        return statuses.every((s) => s === 'dead_letter');
      });
    };
    /** Claims `ids` (and whatever else is eligible), then marks `ids` sent and releases the rest. */
    const send = async (ids: readonly string[]): Promise<void> => {
      const token = uuidv7();
      const claimed = await claimIds(token, 1000);
      expect(claimed).toEqual(expect.arrayContaining([...ids]));
      expect([...(await store().markSent(token, ids))].sort()).toEqual([...ids].sort());
      await store().release(
        token,
        claimed.filter((id) => !ids.includes(id)),
      );
    };

    describe('write side', () => {
      it('writes only when the transaction commits; a rolled-back transaction leaves nothing', async () => {
        const kept = [message(), message(), message()];
        const lost = [message(), message()];
        await commit([kept[0]!], [kept[1]!, kept[2]!]);
        const failure = new Error('business rule failed after the outbox write');
        await expect(
          u().transaction(async (tx) => {
            await u().writer.insert(tx, [lost[0]!]);
            await u().writer.insert(tx, [lost[1]!]);
            throw failure;
          }),
        ).rejects.toBe(failure);
        await u().untilCommittedClaimable?.();

        for (const m of kept) expect(await statusOf(m.id)).toBe('pending');
        for (const m of lost) expect(await store().get(m.id)).toBeUndefined();
        expect(await store().stats()).toMatchObject({ pending: 3, claimed: 0 });
        expect(await claimIds(uuidv7())).toEqual(kept.map((m) => m.id));
      });

      it('stores every field as given: pending, no attempts, due now, not sent, no error', async () => {
        const before = time().now();
        const full = message({
          destination: 'billing.invoices',
          type: 'invoice.issued',
          key: 'customer-7',
          payload: {
            invoice: 'i-1',
            amount: 12.5,
            lines: [{ sku: 'a', qty: 2 }, null, true, false, 0, -1.5e-7],
            note: 'zażółć ünïcødé ✓ "quoted" \\ back',
            nested: { deep: { deeper: [[]] } },
          },
          headers: {
            traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
            'ce-source': '/billing',
          },
          sagaId: uuidv7(),
        });
        const scalars: JsonValue[] = ['text', 42, null, false, [1, 'two']];
        const others = scalars.map((payload) => message({ payload }));
        await commit([full, ...others]);

        const stored = await found(full.id);
        expect(stored).toEqual({
          ...full,
          status: 'pending',
          attempts: 0,
          nextAttemptAt: stored.nextAttemptAt,
          createdAt: stored.createdAt,
          sentAt: null,
          lastError: null,
        });
        expectDate(stored.createdAt);
        expectDate(stored.nextAttemptAt);
        expectNear(stored.createdAt, before, 'createdAt');
        expect(stored.nextAttemptAt.getTime()).toBeLessThanOrEqual(time().now() + CLOCK_SLACK_MS);
        for (const [i, m] of others.entries()) {
          expect((await found(m.id)).payload).toEqual(scalars[i]);
        }
        expect(await store().get(uuidv7())).toBeUndefined();
        expect(await store().get('not-a-uuid')).toBeUndefined();
      });

      it('isTransaction: true inside an open transaction only; insert through anything else fails and writes nothing', async () => {
        let ended: Tx | undefined;
        await u().transaction((tx) => {
          expect(u().writer.isTransaction(tx)).toBe(true);
          ended = tx;
          return Promise.resolve();
        });
        expect(u().writer.isTransaction(ended!)).toBe(false);
        expect(u().writer.isTransaction(u().notATransaction)).toBe(false);

        const outside = message();
        const late = message();
        await expect(u().writer.insert(u().notATransaction, [outside])).rejects.toBeDefined();
        await expect(u().writer.insert(ended!, [late])).rejects.toBeDefined();
        expect(await store().get(outside.id)).toBeUndefined();
        expect(await store().get(late.id)).toBeUndefined();
        expect(await store().stats()).toMatchObject({ pending: 0 });
      });

      it('a message id is unique: writing an id again fails that transaction, and the stored message stays as it was', async () => {
        const original = message({ payload: 'original' });
        await commit([original]);
        await send([original.id]);

        await expect(
          u().transaction((tx) => u().writer.insert(tx, [{ ...original, payload: 'again' }])),
        ).rejects.toBeDefined();
        const twice = message();
        await expect(
          u().transaction((tx) => u().writer.insert(tx, [twice, { ...twice, payload: 'twin' }])),
        ).rejects.toBeDefined();

        expect(await found(original.id)).toMatchObject({ status: 'sent', payload: 'original' });
        expect(await store().get(twice.id)).toBeUndefined();
        expect(await store().stats()).toMatchObject({ pending: 0, sent: 1 });
      });

      if (harness.concurrentTransactions !== false) {
        it('messages of a transaction still open are invisible: not found, not counted, not claimed', async () => {
          const m = message();
          await u().transaction(async (tx) => {
            await u().writer.insert(tx, [m]);
            expect(await store().get(m.id)).toBeUndefined();
            expect(await store().stats()).toMatchObject({ pending: 0 });
            expect(await claimIds(uuidv7())).toEqual([]);
            expect(await store().claimByIds(uuidv7(), [m.id], 60_000)).toEqual({
              claimed: [],
              waiting: [],
            });
          });
          await u().untilCommittedClaimable?.();
          expect(await claimIds(uuidv7())).toEqual([m.id]);
        });
      }
    });

    describe('claim', () => {
      it('claims pending messages in publish order (commit order, then write order), up to the limit, each once', async () => {
        const [a, b, c, d, e] = [message(), message(), message(), message(), message()];
        await commit([a], [b]);
        await commit([c, d]);
        await commit([e]);

        expect(await store().claim(uuidv7(), 0, 60_000)).toEqual([]);
        const token = uuidv7();
        const first = await store().claim(token, 3, 60_000);
        expect(first.map((m) => m.id)).toEqual([a.id, b.id, c.id]);
        const stored = await found(a.id);
        expect(first[0]).toEqual(claimedView(stored));
        expect(stored.status).toBe('claimed');
        expect(await claimIds(uuidv7())).toEqual([d.id, e.id]);
        expect(await claimIds(uuidv7())).toEqual([]);
        expect(await store().stats()).toMatchObject({ pending: 0, claimed: 5 });
      });

      it('only the head of each key is claimed; other keys and null keys never wait for it', async () => {
        const a1 = message({ key: 'A' });
        const n1 = message({ key: null });
        const a2 = message({ key: 'A' });
        const b1 = message({ key: 'B' });
        const n2 = message({ key: null });
        const a3 = message({ key: 'A' });
        const b2 = message({ key: 'B' });
        await commit([a1, n1, a2]);
        await commit([b1, n2], [a3, b2]);

        expect(await claimIds(uuidv7())).toEqual([a1.id, n1.id, b1.id, n2.id]);
        expect(await claimIds(uuidv7())).toEqual([]);
        expect(await statusOf(a2.id)).toBe('pending');
      });

      it("a key's next message waits while its head is claimed or backing off, and follows once the head is sent", async () => {
        const kHead = message({ key: 'K' });
        const jHead = message({ key: 'J' });
        const kNext = message({ key: 'K' });
        const jNext = message({ key: 'J' });
        await commitEach(kHead, jHead);
        await commit([kNext, jNext]);

        const token = uuidv7();
        expect(await claimIds(token)).toEqual([kHead.id, jHead.id]);
        expect(await claimIds(uuidv7())).toEqual([]); // both heads claimed: both keys wait

        // K's head fails and backs off for a long while; J's head is sent.
        expect(
          await store().markFailed(token, [{ id: kHead.id, error: 'timeout', delayMs: 60_000 }]),
        ).toEqual([kHead.id]);
        expect(await store().markSent(token, [jHead.id])).toEqual([jHead.id]);

        expect(await claimIds(uuidv7())).toEqual([jNext.id]);
        expect(await claimIds(uuidv7())).toEqual([]);
        expect(await store().claimByIds(uuidv7(), [kNext.id], 60_000)).toEqual({
          claimed: [],
          waiting: [kNext.id],
        });
        expect(await statusOf(kNext.id)).toBe('pending');
      });

      it('a message backing off is not claimed before its next attempt is due, and is claimed after', async () => {
        const [slow, soon] = [message({ key: 'slow' }), message({ key: 'soon' })];
        await commit([slow, soon]);
        const token = uuidv7();
        expect(await claimIds(token)).toEqual([slow.id, soon.id]);
        const failedAt = time().now();
        await store().markFailed(token, [
          { id: slow.id, error: 'broker down', delayMs: 60_000 },
          { id: soon.id, error: 'broker down', delayMs: 50 },
        ]);
        const slowRow = await found(slow.id);
        expectNear(slowRow.nextAttemptAt, failedAt + 60_000, 'nextAttemptAt');

        let retried: ClaimedOutboxMessage[] = [];
        await time().eventually('the short backoff to be over', async () => {
          retried = await store().claim(uuidv7(), 100, 60_000);
          return retried.length > 0;
        });
        expect(retried.map((m) => ({ id: m.id, attempts: m.attempts }))).toEqual([
          { id: soon.id, attempts: 1 },
        ]);
        expect(await statusOf(slow.id)).toBe('pending');
      });

      it('a failure not counted (the broker was unreachable) backs off without spending an attempt', async () => {
        const [down, bad] = [message({ key: 'down' }), message({ key: 'bad' })];
        await commit([down, bad]);
        const token = uuidv7();
        expect(await claimIds(token)).toEqual([down.id, bad.id]);
        const failedAt = time().now();
        await store().markFailed(token, [
          { id: down.id, error: 'broker unreachable', delayMs: 50, counted: false },
          { id: bad.id, error: 'nacked', delayMs: 50 },
        ]);
        expectNear((await found(down.id)).nextAttemptAt, failedAt + 50, 'nextAttemptAt');
        let retried: ClaimedOutboxMessage[] = [];
        await time().eventually('the backoff to be over', async () => {
          retried.push(...(await store().claim(uuidv7(), 100, 60_000)));
          return retried.length === 2;
        });
        retried = retried.sort((a, b) => (a.id === down.id ? -1 : b.id === down.id ? 1 : 0));
        expect(retried.map((m) => ({ id: m.id, attempts: m.attempts }))).toEqual([
          { id: down.id, attempts: 0 },
          { id: bad.id, attempts: 1 },
        ]);
        expect(await statusOf(down.id)).toBe('claimed');
      });

      it('concurrent claimers: every message is claimed exactly once, and each key in publish order', async () => {
        const keys = ['k0', 'k1', 'k2', 'k3', 'k4'];
        const all: NewOutboxMessage[] = [];
        for (let t = 0; t < 4; t++) {
          const batch = [
            ...keys.map((key) => message({ key })),
            ...Array.from({ length: 5 }, () => message({ key: null })),
          ];
          all.push(...batch);
          await commit(batch);
        }
        const claims = new Map<string, number>();
        const order: string[] = [];
        let sent = 0;
        const deadline = Date.now() + WAIT_TIMEOUT_MS;
        const claimer = async (): Promise<void> => {
          while (sent < all.length) {
            if (Date.now() > deadline) throw new Error('concurrent claimers made no progress');
            const token = uuidv7();
            const got = await store().claim(token, 7, 60_000);
            for (const m of got) {
              claims.set(m.id, (claims.get(m.id) ?? 0) + 1);
              order.push(m.id);
            }
            if (got.length) {
              const marked = await store().markSent(token, ids(got));
              sent += marked.length; // after the await: `sent += await …` would lose updates
            } else await turn();
          }
        };
        await Promise.all([claimer(), claimer(), claimer(), claimer()]);

        expect(sent).toBe(all.length);
        expect([...claims.values()].every((n) => n === 1)).toBe(true);
        expect(claims.size).toBe(all.length);
        for (const key of keys) {
          const published = all.filter((m) => m.key === key).map((m) => m.id);
          expect(order.filter((id) => published.includes(id))).toEqual(published);
        }
        expect(await store().stats()).toMatchObject({ pending: 0, claimed: 0, sent: all.length });
      });
    });

    describe('fencing', () => {
      it('markSent, markFailed and release under another claim token change nothing and return no ids', async () => {
        const m = message({ key: 'fenced' });
        await commit([m]);
        const token = uuidv7();
        expect(await claimIds(token)).toEqual([m.id]);
        const before = await found(m.id);

        const stranger = uuidv7();
        expect(await store().markSent(stranger, [m.id])).toEqual([]);
        expect(await store().markFailed(stranger, [{ id: m.id, error: 'x', delayMs: 0 }])).toEqual(
          [],
        );
        expect(
          await store().markFailed(stranger, [{ id: m.id, error: 'x', delayMs: null }]),
        ).toEqual([]);
        expect(await store().release(stranger, [m.id])).toEqual([]);
        expect(await found(m.id)).toEqual(before);
        expect(await claimIds(uuidv7())).toEqual([]);

        expect(await store().markSent(token, [m.id])).toEqual([m.id]);
        const sent = await found(m.id);
        expect(sent).toMatchObject({ status: 'sent', attempts: 0, lastError: null });
        expectDate(sent.sentAt);
        // Once sent, the claim is over: nothing moves it again, not even its own token.
        expect(await store().markSent(token, [m.id])).toEqual([]);
        expect(await store().markFailed(token, [{ id: m.id, error: 'x', delayMs: 0 }])).toEqual([]);
        expect(await store().release(token, [m.id])).toEqual([]);
        expect(await found(m.id)).toEqual(sent);
      });

      it('returns exactly the ids it changed', async () => {
        const [a, b, c] = [message(), message(), message()];
        await commit([a, b]);
        const token = uuidv7();
        expect(await claimIds(token)).toEqual([a.id, b.id]);
        await commit([c]); // pending, never claimed

        expect(await store().markSent(token, [a.id, c.id, uuidv7()])).toEqual([a.id]);
        expect(await store().release(token, [c.id, a.id, b.id])).toEqual([b.id]);
        expect(await store().markSent(uuidv7(), [])).toEqual([]);
        expect(await store().markFailed(uuidv7(), [])).toEqual([]);
        expect(await store().release(uuidv7(), [])).toEqual([]);
        expect(await statusOf(a.id)).toBe('sent');
        expect(await statusOf(b.id)).toBe('pending');
        expect(await statusOf(c.id)).toBe('pending');
      });

      it('a claimant whose lease ran out and whose message was taken over changes nothing; the new claimant can', async () => {
        const m = message({ key: 'taken-over' });
        await commit([m]);
        const stale = uuidv7();
        expect(await claimIds(stale, 10, SHORT_LEASE_MS)).toEqual([m.id]);
        await time().eventually('the expired claim to be reaped', async () => {
          await store().reapExpired(100);
          return (await statusOf(m.id)) === 'pending';
        });
        const fresh = uuidv7();
        expect(await claimIds(fresh)).toEqual([m.id]);

        expect(await store().markSent(stale, [m.id])).toEqual([]);
        expect(
          await store().markFailed(stale, [{ id: m.id, error: 'late', delayMs: null }]),
        ).toEqual([]);
        expect(await store().release(stale, [m.id])).toEqual([]);
        expect(await statusOf(m.id)).toBe('claimed');
        expect(await store().markSent(fresh, [m.id])).toEqual([m.id]);
        expect(await statusOf(m.id)).toBe('sent');
      });

      it('a claim whose lease ran out but that nobody took over can still be recorded as sent', async () => {
        const m = message();
        await commit([m]);
        const token = uuidv7();
        expect(await claimIds(token, 10, SHORT_LEASE_MS)).toEqual([m.id]);
        await time().pass(SHORT_LEASE_MS * 2);
        expect(await store().markSent(token, [m.id])).toEqual([m.id]);
        expect(await statusOf(m.id)).toBe('sent');
      });
    });

    describe('release and lease expiry', () => {
      it('release hands a claim back as it was: pending, attempts and last error unchanged, claimable at once', async () => {
        const m = message({ key: 'released' });
        await commit([m]);
        const first = uuidv7();
        await claimIds(first);
        await store().markFailed(first, [{ id: m.id, error: 'first failure', delayMs: 0 }]);
        const token = uuidv7();
        await time().eventually('the retry to be due', async () =>
          (await claimIds(token)).includes(m.id),
        );

        expect(await store().release(token, [m.id])).toEqual([m.id]);
        expect(await found(m.id)).toMatchObject({
          status: 'pending',
          attempts: 1,
          lastError: 'first failure',
          sentAt: null,
        });
        const again = await store().claim(uuidv7(), 10, 60_000);
        expect(again.map((c) => ({ id: c.id, attempts: c.attempts }))).toEqual([
          { id: m.id, attempts: 1 },
        ]);
      });

      it('reapExpired frees only claims whose lease ran out, at most `limit` per call, attempts unchanged; they are claimable again', async () => {
        const short = [message(), message(), message()];
        await commit(short);
        expect(await claimIds(uuidv7(), 10, SHORT_LEASE_MS)).toEqual(ids(short));
        const long = message();
        await commit([long]);
        expect(await claimIds(uuidv7(), 10, 60_000)).toEqual([long.id]);

        await time().pass(SHORT_LEASE_MS * 2);
        expect(await store().reapExpired(2)).toBe(2);
        expect(await store().reapExpired(10)).toBe(1);
        expect(await store().reapExpired(10)).toBe(0);

        for (const m of short)
          expect(await found(m.id)).toMatchObject({ status: 'pending', attempts: 0 });
        expect(await statusOf(long.id)).toBe('claimed');
        const reclaimed = await store().claim(uuidv7(), 10, 60_000);
        expect(reclaimed.map((c) => ({ id: c.id, attempts: c.attempts }))).toEqual(
          short.map((m) => ({ id: m.id, attempts: 0 })),
        );
      });
    });

    describe('retries and dead letters', () => {
      it('markFailed with a delay: back to pending, attempts + 1, the error kept, due after the delay; without one: dead letter', async () => {
        const [retry, dead] = [message({ key: 'r' }), message({ key: 'd' })];
        await commit([retry, dead]);
        const token = uuidv7();
        await claimIds(token);
        const failedAt = time().now();
        const recorded = await store().markFailed(token, [
          { id: retry.id, error: 'broker unavailable', delayMs: 60_000 },
          { id: dead.id, error: 'rejected: unknown topic', delayMs: null },
        ]);
        expect([...recorded].sort()).toEqual([retry.id, dead.id].sort());

        const retrying = await found(retry.id);
        expect(retrying).toMatchObject({
          status: 'pending',
          attempts: 1,
          lastError: 'broker unavailable',
          sentAt: null,
        });
        expectNear(retrying.nextAttemptAt, failedAt + 60_000, 'nextAttemptAt');
        expect(await found(dead.id)).toMatchObject({
          status: 'dead_letter',
          attempts: 1,
          lastError: 'rejected: unknown topic',
          sentAt: null,
        });
        expect(await claimIds(uuidv7())).toEqual([]);
        expect(await store().stats()).toMatchObject({ pending: 1, claimed: 0, deadLetter: 1 });
      });

      it('any error text is recordable (NUL, new lines, very long): the attempt counts and the text stays readable', async () => {
        // Broker errors are passed through as they come; one the store cannot keep would leave
        // the message claimed, reaped and failed again forever, never counted, never dead-lettered.
        const [retry, dead] = [message({ key: 'nul' }), message({ key: 'long' })];
        await commit([retry, dead]);
        const token = uuidv7();
        await claimIds(token);
        const recorded = await store().markFailed(token, [
          { id: retry.id, error: 'broker said: bad\u0000byte', delayMs: 60_000 },
          { id: dead.id, error: `line 1\nline 2 ${'x'.repeat(10_000)}`, delayMs: null },
        ]);
        expect([...recorded].sort()).toEqual([retry.id, dead.id].sort());

        const retrying = await found(retry.id);
        expect(retrying).toMatchObject({ status: 'pending', attempts: 1 });
        expect(retrying.lastError).toMatch(/^broker said: bad.{1,6}byte$/);
        const deadLettered = await found(dead.id);
        expect(deadLettered).toMatchObject({ status: 'dead_letter', attempts: 1 });
        expect(deadLettered.lastError).toMatch(/^line 1\nline 2 x{100}/);
      });

      it("counts every failed publish; the relay's retry policy dead-letters the message at its last allowed attempt", async () => {
        const policy = resolveOutboxRetryPolicy({
          maxAttempts: 4,
          initialDelayMs: 10,
          maxDelayMs: 20,
          jitter: 0,
        });
        const m = message({ key: 'poison' });
        const behind = message({ key: 'poison' });
        await commit([m, behind]);
        const seen: number[] = [];
        for (let n = 1; n <= policy.maxAttempts; n++) {
          const token = uuidv7();
          let claimed: ClaimedOutboxMessage[] = [];
          await time().eventually(`attempt ${n} to be due`, async () => {
            claimed = await store().claim(token, 10, 60_000);
            return claimed.length > 0;
          });
          expect(ids(claimed)).toEqual([m.id]);
          const attempts = claimed[0]!.attempts;
          seen.push(attempts);
          const outcome = failureOutcome(policy, attempts, true);
          await store().markFailed(token, [
            {
              id: m.id,
              error: `attempt ${n} failed`,
              delayMs: outcome.kind === 'retry' ? outcome.delayMs : null,
            },
          ]);
        }
        expect(seen).toEqual([0, 1, 2, 3]);
        expect(await found(m.id)).toMatchObject({
          status: 'dead_letter',
          attempts: 4,
          lastError: 'attempt 4 failed',
        });
        // The dead letter no longer holds its key back.
        expect(await claimIds(uuidv7())).toEqual([behind.id]);
      });

      it('lists dead letters in id order, keyset-paged, by destination, type, key, saga and age; nothing else', async () => {
        const saga = uuidv7();
        const early = [
          message({ destination: 'orders', type: 'order.placed', key: 'k1', sagaId: saga }),
          message({ destination: 'orders', type: 'order.cancelled', key: 'k1' }),
          message({ destination: 'billing', type: 'order.placed', key: 'k2' }),
        ];
        await commit(early);
        await time().pass(20);
        const late = [
          message({ destination: 'orders', type: 'order.placed', key: null, sagaId: saga }),
          message({ destination: 'orders', type: 'order.placed', key: 'k3' }),
        ];
        await commit(late);
        const dead = [...early, ...late];
        await deadLetter(ids(dead));
        // Same shape, but not dead letters: never listed.
        const pending = message({ destination: 'orders', type: 'order.placed', key: 'k9' });
        const sent = message({ destination: 'orders', type: 'order.placed', key: 'k8' });
        await commit([pending, sent]);
        await send([sent.id]);

        const byId = ids(dead).sort();
        const pages: string[][] = [];
        let after: string | undefined;
        for (;;) {
          const page = await store().listDeadLetters({}, 2, after);
          pages.push(ids(page.messages));
          if (page.nextCursor === null) break;
          after = page.nextCursor;
        }
        expect(pages).toEqual([byId.slice(0, 2), byId.slice(2, 4), byId.slice(4)]);
        const exact = await store().listDeadLetters({}, 5);
        expect(ids(exact.messages)).toEqual(byId);
        expect(exact.nextCursor).toBeNull();
        expect(exact.messages.every((m) => m.status === 'dead_letter')).toBe(true);

        const list = async (filter: Parameters<OutboxStore['listDeadLetters']>[0]) =>
          ids((await store().listDeadLetters(filter, 100)).messages).sort();
        const sorted = (...ms: NewOutboxMessage[]): string[] => ids(ms).sort();
        expect(await list({ destination: 'billing' })).toEqual(sorted(early[2]!));
        expect(await list({ type: 'order.cancelled' })).toEqual(sorted(early[1]!));
        expect(await list({ key: 'k1' })).toEqual(sorted(early[0]!, early[1]!));
        expect(await list({ sagaId: saga })).toEqual(sorted(early[0]!, late[0]!));
        expect(await list({ destination: 'orders', type: 'order.placed' })).toEqual(
          sorted(early[0]!, late[0]!, late[1]!),
        );
        const lateCreatedAt = (await found(late[0]!.id)).createdAt;
        expect(await list({ createdBefore: lateCreatedAt })).toEqual(sorted(...early));
        expect(await list({ destination: 'nowhere' })).toEqual([]);
      });

      it('replay: a dead letter goes back to pending with attempts reset, due now, and is claimed again; nothing else is replayed', async () => {
        const [dead, other, third] = [
          message({ destination: 'x' }),
          message({ destination: 'x' }),
          message({ destination: 'x' }),
        ];
        const lone = message({ destination: 'y' });
        await commit([dead, other, third, lone]);
        await deadLetter([dead.id, other.id, third.id, lone.id]);
        const [pending, sent] = [message({ destination: 'x' }), message({ destination: 'x' })];
        await commit([pending, sent]);
        await send([sent.id]); // claims `pending` too, and hands it back untouched
        const replayedAt = time().now();

        expect(
          await store().replayDeadLetters({
            ids: [dead.id, pending.id, sent.id, uuidv7(), 'not-a-uuid', dead.id],
          }),
        ).toEqual([dead.id]);
        const replayed = await found(dead.id);
        expect(replayed).toMatchObject({ status: 'pending', attempts: 0 });
        expect(replayed.nextAttemptAt.getTime()).toBeLessThanOrEqual(replayedAt + CLOCK_SLACK_MS);
        expect(await statusOf(pending.id)).toBe('pending');
        expect(await statusOf(sent.id)).toBe('sent');
        expect(await store().replayDeadLetters({ ids: [dead.id] })).toEqual([]);

        // By filter, bounded by limit, lowest ids first.
        const rest = [other.id, third.id].sort();
        expect(await store().replayDeadLetters({ filter: { destination: 'x' }, limit: 1 })).toEqual(
          rest.slice(0, 1),
        );
        expect(
          await store().replayDeadLetters({ filter: { destination: 'x' }, limit: 10 }),
        ).toEqual(rest.slice(1));
        expect(await statusOf(lone.id)).toBe('dead_letter');

        const claimed = await store().claim(uuidv7(), 100, 60_000);
        expect(ids(claimed).sort()).toEqual([dead.id, other.id, third.id, pending.id].sort());
        expect(claimed.every((c) => c.attempts === 0)).toBe(true);
      });

      it('a replayed dead letter takes its place back at the head of its key', async () => {
        const first = message({ key: 'order-9' });
        await commit([first]);
        await deadLetter([first.id]);
        const second = message({ key: 'order-9' });
        await commit([second]);

        expect(await store().replayDeadLetters({ ids: [first.id] })).toEqual([first.id]);
        const token = uuidv7();
        expect(await claimIds(token)).toEqual([first.id]);
        expect(await claimIds(uuidv7())).toEqual([]);
        await store().markSent(token, [first.id]);
        expect(await claimIds(uuidv7())).toEqual([second.id]);
      });

      it('discard deletes only dead letters, by ids or by filter (bounded), and returns the ids deleted', async () => {
        const dead = [message({ type: 't.a' }), message({ type: 't.b' }), message({ type: 't.b' })];
        await commit(dead);
        await deadLetter(ids(dead));
        const pending = message({ type: 't.b' });
        await commit([pending]);

        expect(
          await store().discardDeadLetters({
            ids: [dead[0]!.id, pending.id, uuidv7(), 'not-a-uuid', dead[0]!.id],
          }),
        ).toEqual([dead[0]!.id]);
        expect(await store().get(dead[0]!.id)).toBeUndefined();
        expect(await statusOf(pending.id)).toBe('pending');

        const bs = [dead[1]!.id, dead[2]!.id].sort();
        expect(await store().discardDeadLetters({ filter: { type: 't.b' }, limit: 1 })).toEqual(
          bs.slice(0, 1),
        );
        expect(await store().discardDeadLetters({ filter: { type: 't.b' }, limit: 10 })).toEqual(
          bs.slice(1),
        );
        expect(await store().discardDeadLetters({ filter: {}, limit: 10 })).toEqual([]);
        expect(await statusOf(pending.id)).toBe('pending');
        expect(await store().stats()).toMatchObject({ pending: 1, deadLetter: 0 });
      });
    });

    describe('claimByIds (the optimistic sender)', () => {
      it("claims only the given ids, under claim's rules, in publish order; the ones left pending are waiting", async () => {
        const a1 = message({ key: 'A' });
        const a2 = message({ key: 'A' });
        const b1 = message({ key: 'B' });
        const n1 = message({ key: null });
        const other = message({ key: 'C' });
        await commit([a1, a2, b1, n1]);
        await commit([other]);

        const token = uuidv7();
        const result = await store().claimByIds(token, [n1.id, a2.id, b1.id, a1.id], 60_000);
        expect(ids(result.claimed)).toEqual([a1.id, b1.id, n1.id]);
        expect(result.claimed[0]).toEqual(claimedView(await found(a1.id)));
        expect(result.waiting).toEqual([a2.id]);
        expect(await statusOf(other.id)).toBe('pending'); // not asked for: untouched

        // Its claims are claims: fenced by its token, and a2 follows once a1 is sent.
        expect(await store().markSent(uuidv7(), [a1.id])).toEqual([]);
        expect(await store().claimByIds(uuidv7(), [a2.id], 60_000)).toEqual({
          claimed: [],
          waiting: [a2.id],
        });
        expect(await store().markSent(token, [a1.id, b1.id, n1.id])).toHaveLength(3);
        expect(ids((await store().claimByIds(uuidv7(), [a2.id], 60_000)).claimed)).toEqual([a2.id]);
      });

      it('a message behind an earlier message of its key outside the ids, or not due yet, is waiting', async () => {
        const head = message({ key: 'H' });
        const behind = message({ key: 'H' });
        const later = message({ key: 'L' });
        await commit([head, behind, later]);
        const token = uuidv7();
        expect(ids((await store().claimByIds(token, [later.id], 60_000)).claimed)).toEqual([
          later.id,
        ]);
        await store().markFailed(token, [{ id: later.id, error: 'nack', delayMs: 60_000 }]);

        const result = await store().claimByIds(uuidv7(), [behind.id, later.id], 60_000);
        expect(result.claimed).toEqual([]);
        expect([...result.waiting].sort()).toEqual([behind.id, later.id].sort());
        expect(await statusOf(head.id)).toBe('pending');
      });

      it('ids claimed elsewhere, sent, dead-lettered or unknown are neither claimed nor waiting', async () => {
        const [claimed, sent, dead] = [message(), message(), message()];
        await commit([claimed, sent, dead]);
        await deadLetter([dead.id]);
        const relay = uuidv7();
        expect(await claimIds(relay)).toEqual([claimed.id, sent.id]);
        await store().markSent(relay, [sent.id]);

        expect(
          await store().claimByIds(
            uuidv7(),
            [claimed.id, sent.id, dead.id, uuidv7(), 'not-a-uuid'],
            60_000,
          ),
        ).toEqual({ claimed: [], waiting: [] });
        expect(await store().claimByIds(uuidv7(), [], 60_000)).toEqual({
          claimed: [],
          waiting: [],
        });
      });

      it('racing a relay for the same messages: each message is claimed by exactly one of them', async () => {
        const batch = Array.from({ length: 20 }, () => message());
        await commit(batch);
        const [relay, optimistic] = await Promise.all([
          store().claim(uuidv7(), 10, 60_000),
          store().claimByIds(uuidv7(), ids(batch), 60_000),
        ]);
        const taken = [...ids(optimistic.claimed), ...ids(relay)];
        expect(taken.sort()).toEqual(ids(batch).sort());
        // `waiting` may name rows the relay was claiming at that moment, and nothing else.
        expect(optimistic.waiting.every((id) => ids(relay).includes(id))).toBe(true);
      });
    });

    if (harness.claimAtWrite !== false)
      describe('insertClaimed (optimistic sending, claimed at write)', () => {
        /** One transaction writing `batches` through insertClaimed; returns what it claimed. */
        const commitClaimed = async (
          token: string,
          claimIds: (m: NewOutboxMessage) => boolean,
          ...batches: NewOutboxMessage[][]
        ): Promise<string[]> => {
          const writer = u().writer;
          if (!writer.insertClaimed) throw new Error('the writer has no insertClaimed');
          const claimed: string[] = [];
          await u().transaction(async (tx) => {
            for (const batch of batches) {
              const rows = await writer.insertClaimed!(tx, batch, {
                claimToken: token,
                leaseMs: 60_000,
                ids: batch.filter(claimIds).map((m) => m.id),
              });
              claimed.push(...rows.map((r) => r.id));
            }
          });
          await u().untilCommittedClaimable?.();
          return claimed;
        };

        it('claims the rows that head their key (keyless always); the rest are written pending', async () => {
          const earlier = message({ key: 'busy' });
          await commit([earlier]);
          const a1 = message({ key: 'a' });
          const a2 = message({ key: 'a' });
          const b1 = message({ key: 'busy' });
          const free = message({ key: null });
          const notAsked = message({ key: 'c' });
          const token = uuidv7();
          const claimed = await commitClaimed(
            token,
            (m) => m !== notAsked,
            [a1, a2, b1],
            [free, notAsked],
          );
          expect(claimed).toEqual([a1.id, free.id]);
          expect(await statusOf(a1.id)).toBe('claimed');
          expect(await statusOf(free.id)).toBe('claimed');
          for (const m of [a2, b1, notAsked]) expect(await statusOf(m.id)).toBe('pending');
          // A relay takes the heads of other keys only: a2 waits behind a1, b1 behind `earlier`.
          expect(await claimIds(uuidv7())).toEqual([earlier.id, notAsked.id]);
          // The token fences them like any claim.
          expect(await store().markSent(uuidv7(), [a1.id])).toEqual([]);
          expect(await store().markSent(token, [a1.id])).toEqual([a1.id]);
          expect(await store().release(token, [free.id])).toEqual([free.id]);
          expect(await statusOf(free.id)).toBe('pending');
        });

        it('a rolled-back transaction leaves nothing, claimed or not', async () => {
          const writer = u().writer;
          const m = message({ key: 'k' });
          await expect(
            u().transaction(async (tx) => {
              await writer.insertClaimed!(tx, [m], {
                claimToken: uuidv7(),
                leaseMs: 60_000,
                ids: [m.id],
              });
              throw new Error('rolled back');
            }),
          ).rejects.toThrow('rolled back');
          expect(await store().get(m.id)).toBeUndefined();
          expect(await store().stats()).toMatchObject({ pending: 0, claimed: 0 });
        });

        it('a row claimed at write whose holder never publishes returns to the relay when its lease ends', async () => {
          const writer = u().writer;
          const m = message({ key: 'lease' });
          await u().transaction(async (tx) => {
            await writer.insertClaimed!(tx, [m], {
              claimToken: uuidv7(),
              leaseMs: SHORT_LEASE_MS,
              ids: [m.id],
            });
          });
          await u().untilCommittedClaimable?.();
          expect(await statusOf(m.id)).toBe('claimed');
          expect(await claimIds(uuidv7())).toEqual([]);
          await time().pass(SHORT_LEASE_MS * 2);
          expect(await store().reapExpired(10)).toBe(1);
          expect(await claimIds(uuidv7())).toEqual([m.id]);
        });
      });

    describe('stats and retention', () => {
      it('counts messages per status, and the age of the oldest pending one (0 when none is pending)', async () => {
        const empty: OutboxStats = {
          pending: 0,
          claimed: 0,
          sent: 0,
          deadLetter: 0,
          oldestPendingAgeSeconds: 0,
        };
        expect(await store().stats()).toEqual(empty);
        const oldest = message();
        await commit([oldest]);
        await time().pass(60);
        const [claimed, sent, dead, pending] = [message(), message(), message(), message()];
        await commit([claimed, sent, dead]);
        await deadLetter([dead.id]);
        await send([sent.id]);
        const token = uuidv7();
        expect(await claimIds(token)).toEqual([oldest.id, claimed.id]);
        await store().release(token, [oldest.id]);
        await commit([pending]);

        const stats = await store().stats();
        expect(stats).toMatchObject({ pending: 2, claimed: 1, sent: 1, deadLetter: 1 });
        expect(stats.oldestPendingAgeSeconds).toBeGreaterThanOrEqual(0.06);
        expect(stats.oldestPendingAgeSeconds).toBeLessThan(60);

        await send([oldest.id, pending.id]);
        expect(await store().stats()).toMatchObject({
          pending: 0,
          claimed: 1,
          sent: 3,
          oldestPendingAgeSeconds: 0,
        });
      });

      it('deleteSentBatch deletes sent messages older than the retention, at most `limit` per call; nothing else', async () => {
        const sent = [message(), message(), message()];
        const [pending, claimed, dead] = [message(), message(), message()];
        await commit([...sent, claimed, dead]);
        await deadLetter([dead.id]);
        await send(ids(sent));
        expect(await claimIds(uuidv7())).toEqual([claimed.id]);
        await commit([pending]);

        expect(await store().deleteSentBatch(60 * 60_000, 10)).toBe(0);
        await time().pass(30);
        expect(await store().deleteSentBatch(10, 2)).toBe(2);
        expect(await store().deleteSentBatch(10, 2)).toBe(1);
        expect(await store().deleteSentBatch(10, 2)).toBe(0);
        await store().vacuum?.();

        for (const m of sent) expect(await store().get(m.id)).toBeUndefined();
        expect(await statusOf(pending.id)).toBe('pending');
        expect(await statusOf(claimed.id)).toBe('claimed');
        expect(await statusOf(dead.id)).toBe('dead_letter');
        expect(await store().stats()).toMatchObject({
          pending: 1,
          claimed: 1,
          sent: 0,
          deadLetter: 1,
        });
      });
    });

    describe('listen', () => {
      if (harness.notifications !== false) {
        it('wakes listeners once per committed transaction with messages, on release and on replay; not on rollback', async () => {
          let wakes = 0;
          const errors: unknown[] = [];
          const subscription = await store().listen(
            () => wakes++,
            (error) => errors.push(error),
          );
          expect(subscription).not.toBeNull();
          try {
            await commit([message(), message()], [message()]);
            await time().eventually('a wake-up after the commit', () => wakes >= 1);
            // A rolled-back transaction wakes nobody: the next commit's wake-up is the only one.
            await u()
              .transaction(async (tx) => {
                await u().writer.insert(tx, [message()]);
                throw new Error('rolled back');
              })
              .catch(() => undefined);
            const m = message();
            await commit([m]);
            await time().eventually('a wake-up after the second commit', () => wakes >= 2);
            expect(wakes).toBe(2);

            const token = uuidv7();
            await claimIds(token);
            await store().release(token, [m.id]);
            await time().eventually('a wake-up after the release', () => wakes >= 3);
            await deadLetter([m.id]);
            await store().replayDeadLetters({ ids: [m.id] });
            await time().eventually('a wake-up after the replay', () => wakes >= 4);
            expect(errors).toEqual([]);
          } finally {
            await subscription?.close();
          }
        });
      } else {
        it('listen resolves null or a subscription that closes (this store only polls)', async () => {
          const subscription = await store().listen(
            () => undefined,
            () => undefined,
          );
          await subscription?.close();
          await commit([message()]);
          expect(await store().stats()).toMatchObject({ pending: 1 });
        });
      }
    });
  });
}

/** How far a store's timestamps may sit from the clock the test reads (database vs process clock). */
const CLOCK_SLACK_MS = 2_000;
/** A lease that runs out within the test (on a real clock: waited for as a condition). */
const SHORT_LEASE_MS = 100;
/** How long a condition may take to hold (a loaded machine, a busy database). */
const WAIT_TIMEOUT_MS = 20_000;

function message(overrides: Partial<NewOutboxMessage> = {}): NewOutboxMessage {
  return {
    id: uuidv7(),
    destination: 'orders',
    type: 'order.placed',
    key: null,
    payload: { orderId: uuidv7(), total: 42 },
    headers: {},
    sagaId: null,
    ...overrides,
  };
}

function ids(messages: readonly { id: string }[]): string[] {
  return messages.map((m) => m.id);
}

/** What `claim` hands the relay for a stored message. */
function claimedView(m: OutboxMessage): ClaimedOutboxMessage {
  return {
    id: m.id,
    destination: m.destination,
    type: m.type,
    key: m.key,
    payload: m.payload,
    headers: m.headers,
    sagaId: m.sagaId,
    attempts: m.attempts,
    createdAt: m.createdAt,
  };
}

/**
 * @internal Shared with inbox-store-conformance.ts.
 * A valid Date. Checked by tag, not instanceof: a store may build its Dates in another realm (e.g.
 * with structuredClone, whose objects are not instances of the jest sandbox's Date).
 */
export function expectDate(value: unknown): void {
  expect(Object.prototype.toString.call(value)).toBe('[object Date]');
  expect(Number.isNaN((value as Date).getTime())).toBe(false);
}

function expectNear(actual: Date, expected: number, what: string): void {
  expectDate(actual);
  const off = Math.abs(actual.getTime() - expected);
  if (off > CLOCK_SLACK_MS)
    throw new Error(
      `${what} is ${off} ms away from the expected ${new Date(expected).toISOString()}`,
    );
}

/** One macrotask turn: lets timers, I/O and other async work run. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** @internal Time as a store under test sees it: its controllable clock, or real time. */
export interface StoreTime {
  now(): number;
  /** Lets `ms` pass on the store's clock: advances the harness clock, or waits until real time has moved on. */
  pass(ms: number): Promise<void>;
  /**
   * Polls `check` until it holds; between polls time moves on (the harness clock by 25 ms, or real
   * time by 10 ms). Fails after WAIT_TIMEOUT_MS of real time, naming `what`.
   */
  eventually(what: string, check: () => boolean | Promise<boolean>): Promise<void>;
}

/** @internal */
export function storeTime(clock: ConformanceClock | undefined): StoreTime {
  return {
    now: () => clock?.now() ?? Date.now(),
    pass: async (ms) => {
      if (clock) return clock.advance(ms);
      const until = Date.now() + ms + 1;
      while (Date.now() < until)
        await new Promise((resolve) => setTimeout(resolve, until - Date.now()));
    },
    eventually: async (what, check) => {
      const deadline = Date.now() + WAIT_TIMEOUT_MS;
      while (!(await check())) {
        if (Date.now() > deadline)
          throw new Error(`timed out after ${WAIT_TIMEOUT_MS} ms waiting for ${what}`);
        if (clock) {
          clock.advance(25);
          await turn();
        } else await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
  };
}
