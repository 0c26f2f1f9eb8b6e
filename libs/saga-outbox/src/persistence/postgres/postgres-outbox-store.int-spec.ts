import { randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { NotSerializableError } from '../../core/errors';
import {
  OutboxMessageInvalidError,
  OutboxMessageTooLargeError,
  OutboxTransactionRequiredError,
} from '../../core/outbox/outbox-errors';
import { OutboxPublisher } from '../../core/outbox/outbox-publisher';
import { OutboxRelay } from '../../core/outbox/outbox-relay';
import { analysePublications } from '../../testing/recording-broker';
import { waitUntil } from '../../testing/async';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';

jest.setTimeout(120_000);

let db: TestDatabase;
let ctx: OutboxTestContext;

beforeAll(async () => {
  db = await createTestDatabase();
  ctx = await openOutboxTestContext(db.connection, 12);
});
afterAll(async () => {
  await ctx?.close();
  await db?.drop();
});

const dest = (): string => `orders-${randomUUID().slice(0, 8)}`;
const count = async (where: string, values: unknown[] = []): Promise<number> => {
  const rows = (await ctx.dataSource.query(
    `SELECT count(*)::int AS n FROM sage.outbox_message WHERE ${where}`,
    values,
  )) as { n: number }[];
  return rows[0]!.n;
};
/**
 * Runs relay rounds until `done` holds. Never "drain once and assert": the commit watermark is the
 * cluster-wide snapshot xmin, so any transaction open elsewhere on the server (other test files)
 * legitimately delays eligibility for a moment.
 */
const runUntil = async (
  relay: OutboxRelay,
  what: string,
  done: () => boolean | Promise<boolean>,
): Promise<void> =>
  waitUntil(async () => {
    await relay.runOnce();
    return done();
  }, what);
const statusOf = async (id: string): Promise<string | undefined> =>
  (await ctx.store.get(id))?.status;

describe('write path', () => {
  it('commit → the message exists (pending, with the writer txid); rollback → no message', async () => {
    const destination = dest();
    const [committed] = await ctx.commit({
      destination,
      type: 'order.placed',
      key: 'o-1',
      payload: { total: 12 },
    });
    await expect(
      ctx.dataSource.transaction(async (manager) => {
        await ctx.publisher.publish(
          { destination, type: 'order.placed', key: 'o-2', payload: {} },
          { manager },
        );
        throw new Error('business rule failed');
      }),
    ).rejects.toThrow('business rule failed');
    expect(await count('destination = $1', [destination])).toBe(1);
    const row = await ctx.store.get(committed!);
    expect(row).toMatchObject({
      status: 'pending',
      attempts: 0,
      key: 'o-1',
      payload: { total: 12 },
      headers: {},
    });
    const rows = (await ctx.dataSource.query(
      `SELECT txid IS NOT NULL AS has_txid FROM sage.outbox_message WHERE id = $1`,
      [committed],
    )) as { has_txid: boolean }[];
    expect(rows).toEqual([{ has_txid: true }]);
  });

  it('refuses to write outside a transaction', async () => {
    const destination = dest();
    await expect(
      ctx.publisher.publish({ destination, type: 't', payload: 1 }),
    ).rejects.toBeInstanceOf(OutboxTransactionRequiredError);
    await expect(
      ctx.publisher.publish(
        { destination, type: 't', payload: 1 },
        { manager: ctx.dataSource.manager },
      ),
    ).rejects.toBeInstanceOf(OutboxTransactionRequiredError);
    const ambient = new OutboxPublisher({ writer: ctx.store, ambientTransaction: () => undefined });
    await expect(ambient.publish({ destination, type: 't', payload: 1 })).rejects.toBeInstanceOf(
      OutboxTransactionRequiredError,
    );
    expect(await count('destination = $1', [destination])).toBe(0);
  });

  it('validates every message before writing any (typed errors, nothing written)', async () => {
    const destination = dest();
    const small = new OutboxPublisher({ writer: ctx.store, maxMessageBytes: 100 });
    const attempt = (p: OutboxPublisher<never> | typeof ctx.publisher, messages: unknown) =>
      ctx.dataSource.transaction((manager) =>
        (p as typeof ctx.publisher).publish(messages as never, { manager }),
      );
    await expect(
      attempt(ctx.publisher, [
        { destination, type: 't', payload: 1 },
        { destination, type: '', payload: 1 },
      ]),
    ).rejects.toBeInstanceOf(OutboxMessageInvalidError);
    await expect(attempt(ctx.publisher, { type: 't', payload: 1 })).rejects.toThrow(
      /"destination" is required/,
    );
    await expect(
      attempt(ctx.publisher, { destination, type: 't', payload: { at: new Date() } }),
    ).rejects.toBeInstanceOf(NotSerializableError);
    await expect(
      attempt(small, { destination, type: 't', payload: 'x'.repeat(200) }),
    ).rejects.toBeInstanceOf(OutboxMessageTooLargeError);
    await expect(
      attempt(ctx.publisher, { destination, type: 't', payload: 1, headers: { n: 1 } }),
    ).rejects.toThrow(/headers.n/);
    expect(await count('destination = $1', [destination])).toBe(0);
  });

  it('sends one NOTIFY per transaction, however many publish calls it makes', async () => {
    let notifications = 0;
    const sub = await ctx.store.listen(
      () => notifications++,
      () => undefined,
    );
    try {
      const destination = dest();
      await ctx.dataSource.transaction(async (manager) => {
        for (let i = 0; i < 5; i++)
          await ctx.publisher.publish(
            [
              { destination, type: 't', payload: i },
              { destination, type: 't', payload: i },
            ],
            { manager },
          );
      });
      // A second transaction as a sentinel: notifications arrive in commit order.
      await ctx.commit({ destination, type: 't', payload: 'sentinel' });
      await waitUntil(() => notifications >= 2, 'two notifications');
      expect(notifications).toBe(2);
    } finally {
      await sub?.close();
    }
  });
});

describe('relay against PostgreSQL', () => {
  const relayFor = (
    broker: InMemoryBroker,
    extra: Partial<ConstructorParameters<typeof OutboxRelay>[0]> = {},
  ) => new OutboxRelay({ store: ctx.store, broker, pollIntervalMs: 20, leaseMs: 30_000, ...extra });

  it('late commit: a second writer of a key waits for the open one, publishes after it in commit order, and nothing else is held back', async () => {
    const destination = dest();
    const key = `late-${randomUUID()}`;
    const broker = new InMemoryBroker();
    const relay = relayFor(broker);
    const seqOf = async (id: string): Promise<bigint> => {
      const rows = (await ctx.dataSource.query(
        'SELECT seq::text AS seq FROM sage.outbox_message WHERE id = $1',
        [id],
      )) as { seq: string }[];
      return BigInt(rows[0]!.seq);
    };

    // Transaction A writes the key first and stays open.
    const runner = ctx.dataSource.createQueryRunner();
    await runner.connect();
    await runner.startTransaction();
    let a: string[] = [];
    try {
      a = await ctx.publisher.publish(
        { destination, type: 'A', key, payload: 'a' },
        { manager: runner.manager },
      );
      // B writes the same key: it waits for A (the key's lock), it does not commit first.
      let bDone = false;
      const bCommit = ctx
        .commit({ destination, type: 'B', key, payload: 'b' })
        .finally(() => (bDone = true));
      // C (another key) commits meanwhile, and is published at once: an open transaction holds
      // back nothing but the writers of its own keys (no commit watermark).
      const c = await ctx.commit({ destination, type: 'C', key: `c-${key}`, payload: 'c' });
      await runUntil(relay, 'C while A is open', () => broker.published.some((m) => m.id === c[0]));
      expect(bDone).toBe(false);
      expect(broker.published.some((m) => m.key === key)).toBe(false);
      await runner.commitTransaction();
      const b = await bCommit;
      // B drew its seq only once it held the key (after C's): seq order is commit order.
      expect(await seqOf(b[0]!)).toBeGreaterThan(await seqOf(c[0]!));
      await runUntil(
        relay,
        'A and B',
        () => broker.published.filter((m) => m.key === key).length >= 2,
      );
      expect(broker.published.filter((m) => m.key === key).map((m) => m.id)).toEqual([a[0], b[0]]);
      expect(broker.published.filter((m) => m.destination === destination)).toHaveLength(3);
    } finally {
      if (runner.isTransactionActive) await runner.rollbackTransaction();
      await runner.release();
    }
  });

  it('a rolled-back writer releases its keys: the waiting writer goes on, no gap in the order', async () => {
    const destination = dest();
    const key = `rollback-${randomUUID()}`;
    const broker = new InMemoryBroker();
    const relay = relayFor(broker);
    const runner = ctx.dataSource.createQueryRunner();
    await runner.connect();
    await runner.startTransaction();
    try {
      await ctx.publisher.publish(
        [
          { destination, type: 'X', key: `${key}-z`, payload: 'x' },
          { destination, type: 'X', key, payload: 'x' },
        ],
        { manager: runner.manager },
      );
      // Two keys in one call, in the other order than A's: locks are taken in one global order,
      // so this waits instead of deadlocking.
      const next = ctx.commit([
        { destination, type: 'Y', key, payload: 'y' },
        { destination, type: 'Y', key: `${key}-z`, payload: 'y' },
      ]);
      await new Promise((resolve) => setTimeout(resolve, 100));
      await runner.rollbackTransaction();
      const ids = await next;
      await runUntil(relay, 'the surviving writer', () =>
        ids.every((id) => broker.published.some((m) => m.id === id)),
      );
      expect(
        broker.published.filter((m) => m.destination === destination).map((m) => m.type),
      ).toEqual(['Y', 'Y']);
    } finally {
      if (runner.isTransactionActive) await runner.rollbackTransaction();
      await runner.release();
    }
  });

  it('fencing: a stale claim token cannot mark sent, fail or release; the new claimant can', async () => {
    const destination = dest();
    const [id] = await ctx.commit({
      destination,
      type: 't',
      key: `fence-${randomUUID()}`,
      payload: 1,
    });
    const stale = randomUUID();
    /** Claims with `token` until our row is among the claimed; hands every other row back at once. */
    const claimOurs = (token: string, leaseMs: number) =>
      waitUntil(async () => {
        const claimed = await ctx.store.claim(token, 10_000, leaseMs);
        await ctx.store.release(
          token,
          claimed.filter((m) => m.id !== id).map((m) => m.id),
        );
        return claimed.some((m) => m.id === id);
      }, 'our row claimed');
    await claimOurs(stale, 50);
    await waitUntil(
      async () => (await ctx.store.reapExpired(100)) > 0 || (await statusOf(id!)) === 'pending',
      'lease expiry reaped',
    );
    const fresh = randomUUID();
    await claimOurs(fresh, 30_000);

    expect(await ctx.store.markSent(stale, [id!])).toEqual([]);
    expect(await ctx.store.markFailed(stale, [{ id: id!, error: 'x', delayMs: 1 }])).toEqual([]);
    expect(await ctx.store.release(stale, [id!])).toEqual([]);
    expect(await statusOf(id!)).toBe('claimed');
    expect(await ctx.store.markSent(fresh, [id!])).toEqual([id]);
    expect(await statusOf(id!)).toBe('sent');
  });

  it('poison message: dead-lettered after N attempts with the reason; it blocks only its own key', async () => {
    const destination = dest();
    const poisonKey = `poison-${randomUUID()}`;
    const [p1] = await ctx.commit({ destination, type: 'ok', key: poisonKey, payload: 1 });
    const [poison] = await ctx.commit({ destination, type: 'poison', key: poisonKey, payload: 2 });
    const [p3] = await ctx.commit({ destination, type: 'ok', key: poisonKey, payload: 3 });
    const others = await ctx.commit(
      Array.from({ length: 30 }, (_, i) => ({
        destination,
        type: 'ok',
        key: `k${i % 3}-${poisonKey}`,
        payload: i,
      })),
    );
    const broker = new InMemoryBroker();
    broker.setFault((m) =>
      m.type === 'poison'
        ? { error: 'schema registry rejected payload', retryable: true }
        : undefined,
    );
    const relay = relayFor(broker, {
      retry: { maxAttempts: 4, initialDelayMs: 20, maxDelayMs: 50 },
    });
    relay.start();
    try {
      // The other keys flow while the poison message is still retrying.
      await broker.waitFor((pub) => others.every((id) => pub.some((m) => m.id === id)));
      await waitUntil(
        async () => (await statusOf(poison!)) === 'dead_letter',
        'poison dead-lettered',
      );
      await broker.waitFor((pub) => pub.some((m) => m.id === p3));
    } finally {
      await relay.stop();
    }
    const row = await ctx.store.get(poison!);
    expect(row).toMatchObject({
      status: 'dead_letter',
      attempts: 4,
      lastError: expect.stringContaining('schema registry rejected payload'),
    });
    const keyOrder = broker.published.filter((m) => m.key === poisonKey).map((m) => m.id);
    expect(keyOrder).toEqual([p1, p3]);
    expect(relay.stats.deadLettered).toBe(1);
    expect(relay.stats.retried).toBe(3);
  });

  it('broker unavailable for a while: the backlog drains after recovery, nothing lost, order kept', async () => {
    const destination = dest();
    const broker = new InMemoryBroker();
    broker.setAvailable(false);
    const relay = relayFor(broker, {
      retry: { initialDelayMs: 10, maxDelayMs: 40, maxAttempts: 1000 },
    });
    const expected: { id: string; key: string }[] = [];
    for (let t = 0; t < 20; t++) {
      const batch = Array.from({ length: 10 }, (_, i) => ({
        destination,
        type: 't',
        key: `k${i}-${destination}`,
        payload: { t, i },
      }));
      const ids = await ctx.commit(batch);
      ids.forEach((id, i) => expected.push({ id, key: batch[i]!.key }));
    }
    relay.start();
    try {
      await waitUntil(() => relay.stats.retried >= 30, 'failed attempts recorded');
      expect(broker.published).toHaveLength(0);
      broker.setAvailable(true);
      await broker.waitFor(
        (pub) => pub.filter((m) => m.destination === destination).length >= expected.length,
      );
    } finally {
      await relay.stop();
    }
    const analysis = analysePublications(
      broker.published.filter((m) => m.destination === destination),
      expected,
    );
    expect(analysis).toMatchObject({
      distinct: 200,
      duplicates: 0,
      missing: [],
      orderViolations: [],
    });
  });

  it('graceful stop: in-flight publishes are recorded, unstarted claims released', async () => {
    const destination = dest();
    await ctx.commit(
      Array.from({ length: 40 }, (_, i) => ({ destination, type: 't', key: null, payload: i })),
    );
    const broker = new InMemoryBroker({ latencyMs: 200 });
    const relay = relayFor(broker, {
      batchSize: 40,
      publishBatchSize: 10,
      maxInFlight: 1,
      shutdownTimeoutMs: 5000,
    });
    relay.start();
    await waitUntil(
      async () => (await count(`destination = $1 AND status = 'claimed'`, [destination])) === 40,
      'claimed',
    );
    await relay.stop();
    expect(await count(`destination = $1 AND status = 'claimed'`, [destination])).toBe(0);
    const sent = await count(`destination = $1 AND status = 'sent'`, [destination]);
    expect(sent).toBe(broker.published.filter((m) => m.destination === destination).length);
    expect(sent).toBeGreaterThanOrEqual(10);
    expect(await count(`destination = $1 AND status = 'pending'`, [destination])).toBe(40 - sent);
    expect(relay.stats.released).toBe(40 - sent);
  });
});

describe('dead letters and retention', () => {
  /** Commits `n` messages and drives them to dead_letter through the real relay path (non-retryable failure). */
  const deadLetters = async (
    destination: string,
    n: number,
    key: (i: number) => string | null = () => null,
  ): Promise<string[]> => {
    const ids = await ctx.commit(
      Array.from({ length: n }, (_, i) => ({ destination, type: 'bad', key: key(i), payload: i })),
    );
    const broker = new InMemoryBroker();
    broker.setFault((m) =>
      m.type === 'bad' ? { error: 'unknown destination', retryable: false } : undefined,
    );
    const relay = new OutboxRelay({ store: ctx.store, broker });
    await runUntil(
      relay,
      'dead-lettered',
      async () => (await count(`status = 'dead_letter' AND id = ANY($1::uuid[])`, [ids])) === n,
    );
    return ids;
  };

  it('lists (paged, filtered), inspects, replays one, replays by filter and discards', async () => {
    const { OutboxDeadLetters } = await import('../../core/outbox/outbox-dead-letters');
    const { OutboxMessageNotFoundError } = await import('../../core/outbox/outbox-errors');
    const api = new OutboxDeadLetters(ctx.store);
    const destination = dest();
    const ids = await deadLetters(destination, 7, (i) => `dl-${i % 2}-${destination}`);

    const first = await api.list({ destination }, { limit: 5 });
    expect(first.messages).toHaveLength(5);
    const second = await api.list({ destination }, { limit: 5, after: first.nextCursor! });
    expect(second).toMatchObject({ nextCursor: null });
    expect([...first.messages, ...second.messages].map((m) => m.id).sort()).toEqual(
      [...ids].sort(),
    );
    expect((await api.list({ destination, key: `dl-0-${destination}` })).messages).toHaveLength(4);

    const inspected = await api.inspect(ids[0]!);
    expect(inspected).toMatchObject({
      status: 'dead_letter',
      attempts: 1,
      lastError: expect.stringContaining('unknown destination'),
    });
    await expect(api.inspect('00000000-0000-7000-8000-000000000000')).rejects.toBeInstanceOf(
      OutboxMessageNotFoundError,
    );

    await api.replay(ids[0]!);
    expect(await ctx.store.get(ids[0]!)).toMatchObject({ status: 'pending', attempts: 0 });
    await expect(api.replay(ids[0]!)).rejects.toBeInstanceOf(OutboxMessageNotFoundError);

    const replayed = await api.replayMatching({ destination, key: `dl-1-${destination}` });
    expect(replayed).toHaveLength(3);
    await api.discard(ids[2]!);
    expect(await ctx.store.get(ids[2]!)).toBeUndefined();
    const discarded = await api.discardMatching({ destination });
    expect(discarded).toHaveLength(2); // 7 - 1 replayed - 3 replayed - 1 discarded
    expect(await count(`destination = $1 AND status = 'dead_letter'`, [destination])).toBe(0);

    // Replayed messages are published by the relay again.
    const broker = new InMemoryBroker();
    const relay = new OutboxRelay({ store: ctx.store, broker });
    await runUntil(
      relay,
      'replayed published',
      () => broker.published.filter((m) => m.destination === destination).length >= 4,
    );
    expect(broker.published.filter((m) => m.destination === destination)).toHaveLength(4);
  });

  it('retention: leader-only (advisory lock), bounded batches, keeps dead letters and unsent rows', async () => {
    const { OutboxRetention } = await import('../../core/outbox/outbox-retention');
    const destination = dest();
    await ctx.commit(
      Array.from({ length: 25 }, (_, i) => ({ destination, type: 't', payload: i })),
    );
    const relay = new OutboxRelay({ store: ctx.store, broker: new InMemoryBroker() });
    await runUntil(
      relay,
      '25 sent',
      async () => (await count(`destination = $1 AND status = 'sent'`, [destination])) === 25,
    );
    await deadLetters(destination, 2);
    await ctx.commit({ destination, type: 'later', payload: 'pending' });
    expect(await count(`destination = $1 AND status = 'sent'`, [destination])).toBe(25);

    const retention = new OutboxRetention({
      store: ctx.store,
      retentionMs: 0,
      batchSize: 10,
      vacuumAfterRows: 20,
    });
    const vacuums = async (): Promise<number> => {
      const [row] = (await ctx.dataSource.query(
        `SELECT vacuum_count::int AS n FROM pg_stat_user_tables WHERE schemaname = 'sage' AND relname = 'outbox_message'`,
      )) as { n: number }[];
      return row?.n ?? 0;
    };
    const vacuumsBefore = await vacuums();
    const { OUTBOX_MAINTENANCE_LOCK_KEY } = await import('./outbox-tables');
    const other = ctx.dataSource.createQueryRunner();
    await other.connect();
    try {
      await other.query(`SELECT pg_advisory_lock(${OUTBOX_MAINTENANCE_LOCK_KEY})`);
      expect(await retention.runOnce()).toEqual({ leader: false, deleted: 0 });
      await other.query(`SELECT pg_advisory_unlock(${OUTBOX_MAINTENANCE_LOCK_KEY})`);
    } finally {
      await other.release();
    }
    const run = await retention.runOnce();
    expect(run.leader).toBe(true);
    expect(run.deleted).toBeGreaterThanOrEqual(25);
    // Enough rows went for the leader to reclaim their space at once.
    expect(run.vacuumed).toBe(true);
    await waitUntil(async () => (await vacuums()) > vacuumsBefore, 'the VACUUM to be counted');
    expect(await count(`destination = $1 AND status = 'sent'`, [destination])).toBe(0);
    expect(await count(`destination = $1 AND status = 'dead_letter'`, [destination])).toBe(2);
    expect(await count(`destination = $1 AND status = 'pending'`, [destination])).toBe(1);

    // A retention period keeps recent rows.
    await runUntil(
      relay,
      'later sent',
      async () => (await count(`destination = $1 AND status = 'sent'`, [destination])) === 1,
    );
    const keep = new OutboxRetention({ store: ctx.store, retentionMs: 60 * 60_000 });
    expect(await keep.runOnce()).toEqual({ leader: true, deleted: 0 });
    expect(await count(`destination = $1 AND status = 'sent'`, [destination])).toBe(1);
  });
});

describe('windowed claim', () => {
  it('a key backing off with more rows than the window holds back only itself: the claim looks past the window', async () => {
    const destination = dest();
    const hot = `hot-${randomUUID()}`;
    // The hot key's head, then more of its rows than the claim window (1,000 at limit 100).
    const [head] = await ctx.commit({ destination, type: 'head', key: hot, payload: 0 });
    const rest = Array.from({ length: 1_100 }, (_, i) => ({
      destination,
      type: 'behind',
      key: hot,
      payload: i + 1,
    }));
    await ctx.commit(rest);
    const token = randomUUID();
    let claimed = await ctx.store.claim(token, 100, 60_000);
    expect(claimed.map((m) => m.id)).toContain(head);
    // The head fails and backs off for a minute: its 1,100 rows wait behind it.
    await ctx.store.markFailed(token, [{ id: head!, error: 'broker said no', delayMs: 60_000 }]);
    await ctx.store.release(
      token,
      claimed.filter((m) => m.id !== head).map((m) => m.id),
    );
    // A newer row of another key, beyond the window of rows that wait: still claimed.
    const [other] = await ctx.commit({
      destination,
      type: 'other',
      key: `k-${randomUUID()}`,
      payload: 1,
    });
    claimed = await ctx.store.claim(randomUUID(), 100, 60_000);
    expect(claimed.map((m) => m.id)).toContain(other);
    expect(claimed.filter((m) => m.key === hot)).toEqual([]);
  });
});
