/**
 * Retention on real PostgreSQL: old terminal sagas go with their steps, live ones never; the
 * dead-letter TTL; the outbox archive; leader-only through the maintenance advisory locks; and the
 * saga delete reads its partial index.
 */
import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';
import { InboxRetention } from '../../core/inbox/inbox-retention';
import { OutboxRetention } from '../../core/outbox/outbox-retention';
import { SagaRetention } from '../../core/saga/saga-retention';
import { PostgresInboxStore } from './postgres-inbox-store';
import { PostgresSagaRetentionStore } from './postgres-saga-retention-store';
import { deleteTerminalSagaBatch, SAGA_MAINTENANCE_LOCK_KEY } from './saga-retention.sql';
import { sagaSchema } from './schema-name';

jest.setTimeout(30_000);

const DAY = 24 * 3_600_000;

let db: TestDatabase;
let ctx: OutboxTestContext;
let ds: DataSource;

beforeAll(async () => {
  db = await createTestDatabase();
  ctx = await openOutboxTestContext(db.connection, 6);
  ds = ctx.dataSource;
});
afterAll(async () => {
  await ctx?.close();
  await db?.drop();
});

const one = async <T>(sql: string, values: unknown[] = []): Promise<T> =>
  ((await ds.query(sql, values)) as T[])[0]!;
const countOf = async (sql: string, values: unknown[] = []): Promise<number> =>
  (await one<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`, values)).n;

/** A saga in `status` whose last transition was `ageMs` ago, with two steps. */
async function saga(status: string, ageMs: number, name = 'retention'): Promise<string> {
  const id = randomUUID();
  await ds.query(
    `INSERT INTO sage.saga_instance (id, name, version, status, input, created_at, updated_at)
     VALUES ($1, $2, 'v1', $3, '{}', clock_timestamp() - $4 * interval '1 millisecond',
             clock_timestamp() - $4 * interval '1 millisecond')`,
    [id, name, status, ageMs],
  );
  await ds.query(
    `INSERT INTO sage.saga_step (saga_id, name, position) VALUES ($1, 'a', 0), ($1, 'b', 1)`,
    [id],
  );
  return id;
}

const sagaExists = async (id: string): Promise<boolean> =>
  (await countOf('sage.saga_instance WHERE id = $1', [id])) === 1;
const stepsOf = (id: string): Promise<number> => countOf('sage.saga_step WHERE saga_id = $1', [id]);

/** Runs `fn` while another session holds the advisory lock `key`. */
async function whileLocked<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const other = ds.createQueryRunner();
  await other.connect();
  try {
    await other.query(`SELECT pg_advisory_lock(${key})`);
    try {
      return await fn();
    } finally {
      await other.query(`SELECT pg_advisory_unlock(${key})`);
    }
  } finally {
    await other.release();
  }
}

describe('saga retention', () => {
  const store = () => new PostgresSagaRetentionStore(ds);

  afterEach(async () => {
    await ds.query(`DELETE FROM sage.saga_instance WHERE name = 'retention'`);
  });

  it('deletes terminal sagas older than the retention with their steps; never live ones, however old; keeps young ones', async () => {
    const oldTerminal = [
      await saga('completed', 40 * DAY),
      await saga('compensated', 40 * DAY),
      await saga('failed', 40 * DAY),
    ];
    const oldLive = [
      await saga('running', 3650 * DAY),
      await saga('waiting', 3650 * DAY),
      await saga('compensating', 3650 * DAY),
    ];
    const young = [await saga('completed', DAY), await saga('failed', DAY)];

    const retention = new SagaRetention({ store: store(), retentionMs: 30 * DAY, batchSize: 2 });
    expect(await retention.runOnce()).toEqual({ leader: true, deleted: 3 });

    for (const id of oldTerminal) {
      expect(await sagaExists(id)).toBe(false);
      expect(await stepsOf(id)).toBe(0);
    }
    for (const id of [...oldLive, ...young]) {
      expect(await sagaExists(id)).toBe(true);
      expect(await stepsOf(id)).toBe(2);
    }
    expect(retention.stats.deletedTotal).toBe(3);

    // Even with no retention at all, live sagas stay.
    const eager = new SagaRetention({ store: store(), retentionMs: 0 });
    expect(await eager.runOnce()).toEqual({ leader: true, deleted: 2 });
    for (const id of oldLive) expect(await sagaExists(id)).toBe(true);
  });

  it('is bounded: batchSize rows per statement, maxBatchesPerRun statements per run', async () => {
    for (let i = 0; i < 7; i++) await saga('completed', 40 * DAY);
    const bounded = new SagaRetention({
      store: store(),
      retentionMs: 30 * DAY,
      batchSize: 2,
      maxBatchesPerRun: 2,
    });
    expect(await bounded.runOnce()).toEqual({ leader: true, deleted: 4 });
    expect(await countOf(`sage.saga_instance WHERE name = 'retention'`)).toBe(3);
    expect(await store().deleteTerminalSagaBatch(30 * DAY, 2)).toBe(2);
    expect(await bounded.runOnce()).toEqual({ leader: true, deleted: 1 });
    expect(await bounded.runOnce()).toEqual({ leader: true, deleted: 0 });
  });

  it('is leader-only: nothing while another process holds the lock; two loops racing delete each saga once', async () => {
    const ids = await Promise.all(Array.from({ length: 30 }, () => saga('completed', 40 * DAY)));
    const a = new SagaRetention({ store: store(), retentionMs: 30 * DAY, batchSize: 3 });
    const b = new SagaRetention({ store: store(), retentionMs: 30 * DAY, batchSize: 3 });

    const locked = await whileLocked(SAGA_MAINTENANCE_LOCK_KEY, () =>
      Promise.all([a.runOnce(), b.runOnce()]),
    );
    expect(locked).toEqual([
      { leader: false, deleted: 0 },
      { leader: false, deleted: 0 },
    ]);
    expect(await countOf(`sage.saga_instance WHERE name = 'retention'`)).toBe(30);

    const runs = await Promise.all([a.runOnce(), b.runOnce()]);
    expect(runs.some((r) => r.leader)).toBe(true);
    expect(runs[0]!.deleted + runs[1]!.deleted).toBe(30);
    for (const id of ids) expect(await sagaExists(id)).toBe(false);
  });

  it('reads the partial terminal index, not the table', async () => {
    // Many live sagas (the ones the delete must not scan), a few old terminal ones.
    await ds.query(
      `INSERT INTO sage.saga_instance (id, name, version, status, input, owner, lease_until)
       SELECT gen_random_uuid(), 'retention', 'v1', 'running', '{}', 'w', clock_timestamp()
       FROM generate_series(1, 20000)`,
    );
    for (let i = 0; i < 3; i++) await saga('completed', 40 * DAY);
    await ds.query('ANALYZE sage.saga_instance');
    const statement = deleteTerminalSagaBatch(sagaSchema(), { olderThanMs: 30 * DAY, limit: 100 });
    const plan = (await ds.query(`EXPLAIN (FORMAT JSON) ${statement.text}`, [
      ...statement.values,
    ])) as { 'QUERY PLAN': unknown }[];
    const scans: string[] = [];
    interface PlanNode {
      'Node Type': string;
      'Relation Name'?: string;
      'Index Name'?: string;
      Plans?: PlanNode[];
    }
    const walk = (node: PlanNode): void => {
      if (node['Relation Name'] === 'saga_instance')
        scans.push(`${node['Node Type']} ${node['Index Name'] ?? ''}`.trim());
      for (const child of node.Plans ?? []) walk(child);
    };
    walk((plan[0]!['QUERY PLAN'] as { Plan: PlanNode }[])[0]!.Plan);
    expect(scans.some((s) => s.endsWith('saga_instance_terminal_idx'))).toBe(true);
    expect(scans.filter((s) => s.startsWith('Seq Scan'))).toEqual([]);
  });
});

describe('outbox dead-letter TTL and archive', () => {
  beforeEach(async () => {
    await ds.query('DELETE FROM sage.outbox_message');
    await ds.query('DELETE FROM sage.outbox_message_archive');
  });

  /** Commits `n` messages and claims them all; returns their ids and the claim token. */
  async function claimed(n: number): Promise<{ ids: string[]; token: string }> {
    const ids = await ctx.commit(
      Array.from({ length: n }, (_, i) => ({ destination: 'd', type: 't', payload: { i } })),
    );
    const token = randomUUID();
    const got = await ctx.store.claim(token, 100, 60_000);
    expect(got.map((m) => m.id).sort()).toEqual([...ids].sort());
    return { ids, token };
  }

  it('dead letters are kept by default; with deadLetterTtlMs only those dead-lettered longer ago go', async () => {
    const { ids, token } = await claimed(3);
    await ctx.store.markFailed(
      token,
      ids.map((id) => ({ id, error: 'broker said no', delayMs: null })),
    );
    // The failure mark records when each became a dead letter.
    expect(
      await countOf(
        `sage.outbox_message WHERE status = 'dead_letter' AND dead_lettered_at > clock_timestamp() - interval '1 minute'`,
      ),
    ).toBe(3);
    await ds.query(
      `UPDATE sage.outbox_message SET dead_lettered_at = dead_lettered_at - interval '10 days'
       WHERE id = ANY($1::uuid[])`,
      [ids.slice(0, 2)],
    );

    const keep = new OutboxRetention({ store: ctx.store, retentionMs: 0 });
    expect(await keep.runOnce()).toEqual({ leader: true, deleted: 0 });
    expect(await countOf(`sage.outbox_message WHERE status = 'dead_letter'`)).toBe(3);

    const ttl = new OutboxRetention({ store: ctx.store, deadLetterTtlMs: 7 * DAY, batchSize: 1 });
    const locked = await whileLocked(
      (await import('./outbox-tables')).OUTBOX_MAINTENANCE_LOCK_KEY,
      () => ttl.runOnce(),
    );
    expect(locked).toEqual({ leader: false, deleted: 0 });
    expect(await ttl.runOnce()).toEqual({ leader: true, deleted: 0, swept: { deadLetters: 2 } });
    expect(ttl.stats.sweptTotal).toEqual({ deadLetters: 2 });
    const left = (await ds.query(`SELECT id FROM sage.outbox_message`)) as { id: string }[];
    expect(left.map((r) => r.id)).toEqual([ids[2]]);
  });

  it('archive: sent rows past retention move to the archive in one statement, later purged', async () => {
    const { ids, token } = await claimed(4);
    expect((await ctx.store.markSent(token, ids)).sort()).toEqual([...ids].sort());
    await ds.query(
      `UPDATE sage.outbox_message SET sent_at = sent_at - interval '2 hours' WHERE id = ANY($1::uuid[])`,
      [ids.slice(0, 3)],
    );
    const before = (await ds.query(
      `SELECT id, destination, key, type, payload, headers, created_at, sent_at
       FROM sage.outbox_message WHERE id = ANY($1::uuid[]) ORDER BY id`,
      [ids.slice(0, 3)],
    )) as unknown[];

    const retention = new OutboxRetention({
      store: ctx.store,
      retentionMs: 3_600_000,
      batchSize: 2,
      archive: { keepMs: DAY },
    });
    expect(retention.archiving).toBe(true);
    expect(await retention.runOnce()).toEqual({
      leader: true,
      deleted: 3,
      swept: { archivePurged: 0 },
    });
    // Moved, not copied: the same rows, gone from the hot table.
    const archived = (await ds.query(
      `SELECT id, destination, key, type, payload, headers, created_at, sent_at
       FROM sage.outbox_message_archive ORDER BY id`,
    )) as unknown[];
    expect(archived).toEqual(before);
    expect((await ds.query(`SELECT id FROM sage.outbox_message`)) as unknown[]).toEqual([
      { id: ids[3] },
    ]);

    // Kept `keepMs` after archiving, then purged.
    await ds.query(
      `UPDATE sage.outbox_message_archive SET archived_at = archived_at - interval '2 days'
       WHERE id = ANY($1::uuid[])`,
      [ids.slice(0, 2)],
    );
    expect(await retention.runOnce()).toEqual({
      leader: true,
      deleted: 0,
      swept: { archivePurged: 2 },
    });
    expect((await ds.query(`SELECT id FROM sage.outbox_message_archive`)) as unknown[]).toEqual([
      { id: ids[2] },
    ]);
  });
});

describe('inbox dead-letter TTL', () => {
  it('deletes only inbox dead letters older than the TTL; processed rows and young dead letters stay', async () => {
    const store = new PostgresInboxStore(ds);
    const consumer = `c.${randomUUID().slice(0, 8)}`;
    for (const messageId of ['old', 'young'])
      expect(
        await store.recordFailure({
          consumer,
          messageId,
          error: 'boom',
          maxAttempts: 1,
          message: { messageId },
        }),
      ).toEqual({ outcome: 'dead-lettered', attempts: 1 });
    await store.transaction((tx) => store.markProcessed(tx, { consumer, messageId: 'done' }));
    await ds.query(
      `UPDATE sage.inbox_message SET processed_at = processed_at - interval '10 days'
       WHERE consumer = $1 AND message_id = 'old'`,
      [consumer],
    );

    const retention = new InboxRetention({ store, deadLetterTtlMs: 7 * DAY });
    expect(await retention.runOnce()).toEqual({
      leader: true,
      deleted: 0,
      swept: { deadLetters: 1 },
    });
    const left = (await ds.query(
      `SELECT message_id, status FROM sage.inbox_message WHERE consumer = $1 ORDER BY message_id`,
      [consumer],
    )) as unknown[];
    expect(left).toEqual([
      { message_id: 'done', status: 'processed' },
      { message_id: 'young', status: 'dead_letter' },
    ]);
  });
});
