/**
 * The WAL-streaming relay on real PostgreSQL (wal_level = logical): commit order with no watermark
 * wait, per-key order, resume from the confirmed position, one streamer per slot, fencing of a
 * deposed streamer, dead letters. Chaos (kill -9, broker outage): test/chaos/outbox-wal-relay.int-spec.ts.
 */
import { randomUUID } from 'node:crypto';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';
import { createWalTestDatabase, type WalTestDatabase } from '@test/support/wal-postgres';
import type { ClientConfig } from 'pg';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { WalOutboxRelay, type WalOutboxRelayOptions } from '../../core/outbox/wal-outbox-relay';
import { waitUntil } from '../../testing/async';
import { PostgresWalSource } from './postgres-wal-source';

jest.setTimeout(60_000);

let db: WalTestDatabase;
let ctx: OutboxTestContext;
let replication: ClientConfig;
const relays: WalOutboxRelay[] = [];

beforeAll(async () => {
  db = await createWalTestDatabase();
  ctx = await openOutboxTestContext(db.connection, 8);
  replication = db.connection;
  await ctx.dataSource.query(
    `CREATE TABLE public.aggregate (key text PRIMARY KEY, version int NOT NULL)`,
  );
});
afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.stop()));
});
afterAll(async () => {
  await ctx?.close();
  await db?.cleanup();
});

/** A relay on its own slot (per test), started. */
function startRelay(
  slot: string,
  broker: InMemoryBroker,
  extra: Partial<WalOutboxRelayOptions> = {},
): WalOutboxRelay {
  const relay = new WalOutboxRelay({
    source: new PostgresWalSource(ctx.dataSource, replication, { slot }),
    broker,
    standbyRetryMs: 100,
    retry: { initialDelayMs: 20, maxDelayMs: 100, jitter: 0 },
    ...extra,
  });
  relays.push(relay);
  relay.start();
  return relay;
}

const slotName = (): string => `t_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
const statusOf = async (ids: readonly string[]): Promise<string[]> =>
  (
    (await ctx.dataSource.query(
      `SELECT status FROM sage.outbox_message WHERE id = ANY($1::uuid[]) ORDER BY seq`,
      [ids],
    )) as { status: string }[]
  ).map((r) => r.status);

it('delivers in commit order without waiting for an older open transaction', async () => {
  const broker = new InMemoryBroker();
  const destination = `d-${randomUUID().slice(0, 8)}`;
  const relay = startRelay(slotName(), broker);
  await waitUntil(() => relay.stats.leader, 'the relay streams', 15_000);

  const older = ctx.dataSource.createQueryRunner();
  await older.connect();
  try {
    // Begins first (and writes its message first)...
    await older.startTransaction();
    await ctx.publisher.publish(
      { destination, type: 't', key: 'k1', payload: { n: 'older' } },
      { manager: older.manager },
    );
    // ...while a younger transaction commits: it is delivered at once, the older one still open.
    await ctx.commit({ destination, type: 't', key: 'k2', payload: { n: 'younger' } });
    await waitUntil(
      () => broker.published.some((m) => m.destination === destination),
      'the younger message is published while the older transaction is open',
    );
    // ...and the older one, committed last, is delivered last.
    await older.commitTransaction();
  } finally {
    await older.release();
  }
  await waitUntil(
    () => broker.published.filter((m) => m.destination === destination).length === 2,
    'both published',
  );
  expect(
    broker.published.filter((m) => m.destination === destination).map((m) => m.payload),
  ).toEqual([{ n: 'younger' }, { n: 'older' }]);
});

it('keeps per-key order across concurrent writers, marks rows sent and confirms the slot', async () => {
  const broker = new InMemoryBroker({ latencyMs: 2 });
  const destination = `d-${randomUUID().slice(0, 8)}`;
  const slot = slotName();
  const relay = startRelay(slot, broker, { publishBatchSize: 7, maxInFlight: 4 });
  await waitUntil(() => relay.stats.leader, 'the relay streams', 15_000);
  const keys = Array.from({ length: 6 }, (_, i) => `key-${i}-${randomUUID().slice(0, 6)}`);
  await ctx.dataSource.query(
    `INSERT INTO public.aggregate (key, version) SELECT unnest($1::text[]), 0`,
    [keys],
  );
  // 8 writers, 20 transactions each; a transaction bumps one aggregate under its row lock and
  // publishes its new version: per key, versions commit in order 1, 2, 3, ...
  const ids: string[] = [];
  await Promise.all(
    Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; i < 20; i++) {
        const key = keys[(w * 7 + i) % keys.length]!;
        await ctx.dataSource.transaction(async (manager) => {
          const [rows] = (await manager.query(
            `UPDATE public.aggregate SET version = version + 1 WHERE key = $1 RETURNING version`,
            [key],
          )) as [{ version: number }[]];
          ids.push(
            ...(await ctx.publisher.publish(
              { destination, type: 't', key, payload: { version: rows[0]!.version } },
              { manager },
            )),
          );
        });
      }
    }),
  );
  await waitUntil(
    () => broker.published.filter((m) => m.destination === destination).length >= 160,
    'all 160 published',
    30_000,
  );
  const byKey = new Map<string, number[]>();
  for (const m of broker.published.filter((p) => p.destination === destination))
    byKey.set(m.key!, [...(byKey.get(m.key!) ?? []), (m.payload as { version: number }).version]);
  for (const [, versions] of byKey)
    expect(versions).toEqual(Array.from({ length: versions.length }, (_, i) => i + 1));
  await waitUntil(
    async () => (await statusOf(ids)).every((s) => s === 'sent'),
    'every row marked sent',
  );
  await waitUntil(async () => {
    const lag = await relay.slotLag();
    return lag !== null && relay.stats.window === 0 && lag.lagBytes < 1024 * 1024;
  }, 'the slot confirmed past the messages');
  expect(relay.stats.sent).toBe(160);
});

it('resumes from the confirmed position after a restart, without duplicates after a clean stop', async () => {
  const broker = new InMemoryBroker();
  const destination = `d-${randomUUID().slice(0, 8)}`;
  const slot = slotName();
  const first = startRelay(slot, broker);
  await waitUntil(() => first.stats.leader, 'the first relay streams', 15_000);
  for (let i = 0; i < 30; i++) await ctx.commit({ destination, type: 't', payload: { i } });
  await waitUntil(() => first.stats.sent === 30, 'the first 30 sent');
  await first.stop();
  // Written while no relay runs: the slot keeps them.
  for (let i = 30; i < 50; i++) await ctx.commit({ destination, type: 't', payload: { i } });
  const second = startRelay(slot, broker);
  await waitUntil(
    () => broker.published.filter((m) => m.destination === destination).length >= 50,
    'the 20 written while stopped are published',
  );
  await waitUntil(() => second.stats.window === 0, 'the second relay is idle');
  expect(
    broker.published
      .filter((m) => m.destination === destination)
      .map((m) => (m.payload as { i: number }).i),
  ).toEqual(Array.from({ length: 50 }, (_, i) => i));
});

it('lets one of two relays stream from a slot; the other takes over when it stops', async () => {
  const broker = new InMemoryBroker();
  const destination = `d-${randomUUID().slice(0, 8)}`;
  const slot = slotName();
  const a = startRelay(slot, broker);
  const b = startRelay(slot, broker);
  await waitUntil(() => a.stats.leader || b.stats.leader, 'one relay streams', 15_000);
  for (let i = 0; i < 20; i++) await ctx.commit({ destination, type: 't', payload: { i } });
  await waitUntil(() => a.stats.sent + b.stats.sent === 20, 'the 20 sent');
  // Standing-by relays keep trying (every 100 ms) and never get the slot while it is held.
  expect([a.stats.leader, b.stats.leader].filter(Boolean)).toHaveLength(1);
  const [leader, standby] = a.stats.leader ? [a, b] : [b, a];
  expect(standby.stats.streamed).toBe(0);
  await leader.stop();
  await waitUntil(() => standby.stats.leader, 'the other relay takes over', 15_000);
  for (let i = 20; i < 30; i++) await ctx.commit({ destination, type: 't', payload: { i } });
  await waitUntil(() => standby.stats.sent === 10, 'the next 10 sent by the new leader');
  expect(
    broker.published
      .filter((m) => m.destination === destination)
      .map((m) => (m.payload as { i: number }).i),
  ).toEqual(Array.from({ length: 30 }, (_, i) => i));
});

it('fences a deposed streamer: its writes change nothing once another holds the slot', async () => {
  const slot = slotName();
  const source = new PostgresWalSource(ctx.dataSource, replication, { slot });
  const closed: (Error | undefined)[] = [];
  const deposed = await source.open({
    onTransaction: () => undefined,
    onKeepalive: () => undefined,
    onClose: (error) => closed.push(error),
  });
  expect(deposed).not.toBeNull();
  const [id] = await ctx.commit({ destination: 'fenced', type: 't', payload: {} });
  // Its walsender is cut off (a network partition, as PostgreSQL sees it)...
  const [{ pid }] = (await ctx.dataSource.query(
    `SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  )) as [{ pid: number }];
  await ctx.dataSource.query('SELECT pg_terminate_backend($1)', [pid]);
  await waitUntil(() => closed.length === 1, 'the deposed session notices');
  // ...and a new streamer takes the slot.
  const broker = new InMemoryBroker();
  const leader = startRelay(slot, broker);
  await waitUntil(() => leader.stats.leader, 'the new streamer holds the slot', 15_000);
  // The deposed one records a late ack and a dead letter: fenced, nothing changes.
  await expect(deposed!.markSent([id!])).resolves.toEqual({ owner: false, ids: [], unseen: [] });
  await expect(deposed!.deadLetter([{ id: id!, error: 'late' }])).resolves.toEqual({
    owner: false,
    ids: [],
    unseen: [],
  });
  await waitUntil(() => broker.published.some((m) => m.id === id), 'the new streamer sends it');
  await waitUntil(async () => (await statusOf([id!]))[0] === 'sent', 'marked sent by the leader');
});

it('dead-letters a message the broker refuses, keeps it in the table and goes on with its key', async () => {
  const broker = new InMemoryBroker();
  broker.setFault((m) =>
    (m.payload as { poison?: boolean }).poison
      ? { error: 'message too large for the topic', retryable: false }
      : undefined,
  );
  const destination = `d-${randomUUID().slice(0, 8)}`;
  const relay = startRelay(slotName(), broker);
  await waitUntil(() => relay.stats.leader, 'the relay streams', 15_000);
  const ids = await ctx.commit([
    { destination, type: 't', key: 'k', payload: { poison: true } },
    { destination, type: 't', key: 'k', payload: { after: true } },
  ]);
  await waitUntil(
    async () => (await statusOf(ids)).join() === 'dead_letter,sent',
    'poison dead-lettered, the next sent',
  );
  const [row] = (await ctx.dataSource.query(
    `SELECT last_error FROM sage.outbox_message WHERE id = $1`,
    [ids[0]],
  )) as [{ last_error: string }];
  expect(row.last_error).toContain('message too large');
  expect(relay.stats.deadLettered).toBe(1);
  // The dead letter is replayable through the usual API.
  await expect(ctx.store.replayDeadLetters({ ids: [ids[0]!] })).resolves.toEqual([ids[0]]);
});

it('finishes a row still claimed by a catch-up the database cut short when the stream delivers it again', async () => {
  const broker = new InMemoryBroker();
  const destination = `d-${randomUUID().slice(0, 8)}`;
  const slot = slotName();
  const first = startRelay(slot, broker);
  await waitUntil(() => first.stats.leader, 'the slot exists', 15_000);
  await first.stop();
  // Committed after the confirmed position, then claimed (lease not over) as a catch-up that
  // published it and could not record it before PostgreSQL went away leaves it.
  const [id] = await ctx.commit({ destination, type: 't', key: 'k', payload: {} });
  await ctx.dataSource.query(
    `UPDATE sage.outbox_message
     SET status = 'claimed', claim_token = gen_random_uuid(), lease_until = now() + interval '10 minutes'
     WHERE id = $1`,
    [id],
  );
  const second = startRelay(slot, broker);
  await waitUntil(() => second.stats.sent === 1, 'the streamed row recorded');
  expect(await statusOf([id!])).toEqual(['sent']);
  const [row] = (await ctx.dataSource.query(
    `SELECT claim_token, lease_until FROM sage.outbox_message WHERE id = $1`,
    [id],
  )) as { claim_token: string | null; lease_until: Date | null }[];
  expect(row).toEqual({ claim_token: null, lease_until: null });
});
