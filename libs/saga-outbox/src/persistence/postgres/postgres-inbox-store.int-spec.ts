import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { inboxMigration } from '../../migrations/1764403200000-inbox';
import { outboxMigration } from '../../migrations/1764316800000-outbox';
import { sagaStateMigration } from '../../migrations/1764230400000-saga-state';
import { createTestDatabase, dataSourceOptions, type TestDatabase } from '@test/support/pg';
import { InboxHandlerFailedError } from '../../core/inbox/inbox-errors';
import { InboxProcessor, type InboxHandler } from '../../core/inbox/inbox-processor';
import { InboxRetention } from '../../core/inbox/inbox-retention';
import type { JsonValue } from '../../core/json';
import { openEmbeddedDatabase } from '@test/support/sage-databases';
import { createSagaDataSource } from './data-source';
import { PostgresInboxStore } from './postgres-inbox-store';
import { INBOX_MAINTENANCE_LOCK_KEY } from './inbox-queries.sql';
import { waitUntil } from '../../testing/async';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';
import { sagaSchema } from './schema-name';

jest.setTimeout(30_000);

let db: TestDatabase;
let ctx: OutboxTestContext;
let store: PostgresInboxStore;

beforeAll(async () => {
  db = await createTestDatabase();
  ctx = await openOutboxTestContext(db.connection, 24);
  store = new PostgresInboxStore(ctx.dataSource);
  // The handlers' business table: an effect is a row here.
  await ctx.dataSource.query(
    'CREATE TABLE public.effect (id serial PRIMARY KEY, consumer text NOT NULL, message_id text NOT NULL, note text)',
  );
});
afterAll(async () => {
  await ctx?.close();
  await db?.drop();
});

const consumerName = (): string => `payments.${randomUUID().slice(0, 8)}`;
const processor = (maxAttempts?: number) =>
  new InboxProcessor<EntityManager>({ store, maxAttempts });

/** A handler writing one effect row through the inbox transaction, then running `after`. */
const writeEffect =
  (note: string, after?: () => Promise<void> | void): InboxHandler<EntityManager, void> =>
  async ({ tx, consumer, messageId }) => {
    await tx.query('INSERT INTO public.effect (consumer, message_id, note) VALUES ($1, $2, $3)', [
      consumer,
      messageId,
      note,
    ]);
    await after?.();
  };

const effects = async (consumer: string): Promise<{ message_id: string; note: string }[]> =>
  (await ctx.dataSource.query(
    'SELECT message_id, note FROM public.effect WHERE consumer = $1 ORDER BY id',
    [consumer],
  )) as { message_id: string; note: string }[];

const failure = (error: string) => () => {
  throw new Error(error);
};

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('PostgresInboxStore with the InboxProcessor', () => {
  it('the same message delivered twice → one effect; the second is a duplicate', async () => {
    const consumer = consumerName();
    const inbox = processor();
    const messageId = randomUUID();
    await expect(
      inbox.process({ consumer, messageId }, writeEffect('first')),
    ).resolves.toMatchObject({ outcome: 'processed', attempt: 1 });
    await expect(inbox.process({ consumer, messageId }, writeEffect('again'))).resolves.toEqual({
      outcome: 'duplicate',
    });
    expect(await effects(consumer)).toEqual([{ message_id: messageId, note: 'first' }]);
    await expect(store.get({ consumer, messageId })).resolves.toMatchObject({
      status: 'processed',
      attempts: 1,
      lastError: null,
      message: null,
      processedAt: expect.any(Date),
    });
    // Another consumer of the same message handles it too.
    const other = consumerName();
    await inbox.process({ consumer: other, messageId }, writeEffect('other'));
    expect(await effects(other)).toHaveLength(1);
  });

  it('a racing delivery waits on the first one’s uncommitted inbox row, then is a duplicate', async () => {
    const consumer = consumerName();
    const messageId = randomUUID();
    const gate = deferred();
    const firstWrote = deferred();
    const first = processor().process(
      { consumer, messageId },
      writeEffect('first', async () => {
        firstWrote.resolve();
        await gate.promise;
      }),
    );
    await firstWrote.promise;
    const secondHandler = jest.fn(writeEffect('second'));
    const second = processor().process({ consumer, messageId }, secondHandler);
    // Really blocked in PostgreSQL on the first transaction's lock, not failed, not done.
    await waitUntil(async () => {
      const rows = (await ctx.dataSource.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%inbox_failure%'`,
      )) as { n: number }[];
      return rows[0]!.n === 1;
    }, 'the second delivery waits on a lock');
    gate.resolve();
    await expect(first).resolves.toMatchObject({ outcome: 'processed' });
    await expect(second).resolves.toEqual({ outcome: 'duplicate' });
    expect(secondHandler).not.toHaveBeenCalled();
    expect(await effects(consumer)).toEqual([{ message_id: messageId, note: 'first' }]);
  });

  it('when the first of two racing deliveries rolls back, the waiting one handles it: one effect', async () => {
    const consumer = consumerName();
    const messageId = randomUUID();
    const gate = deferred();
    const firstWrote = deferred();
    const first = processor().process(
      { consumer, messageId },
      writeEffect('first', async () => {
        firstWrote.resolve();
        await gate.promise;
        throw new Error('first fails');
      }),
    );
    await firstWrote.promise;
    const second = processor().process({ consumer, messageId }, writeEffect('second'));
    gate.resolve();
    await expect(first).rejects.toBeInstanceOf(InboxHandlerFailedError);
    await expect(second).resolves.toMatchObject({ outcome: 'processed' });
    expect(await effects(consumer)).toEqual([{ message_id: messageId, note: 'second' }]);
  });

  it('16 deliveries of one message racing on 16 connections → exactly one effect', async () => {
    const consumer = consumerName();
    const messageId = randomUUID();
    const inbox = processor();
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        inbox.process(
          { consumer, messageId },
          writeEffect(`d${i}`, () => new Promise((r) => setTimeout(r, 20))),
        ),
      ),
    );
    expect(results.filter((r) => r.outcome === 'processed')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'duplicate')).toHaveLength(15);
    expect(await effects(consumer)).toHaveLength(1);
    expect(inbox.stats).toMatchObject({ processed: 1, duplicates: 15, failed: 0 });
  });

  it('a handler error rolls back its writes and the inbox row, counts the attempt; the retry commits once', async () => {
    const consumer = consumerName();
    const messageId = randomUUID();
    const inbox = processor();
    await expect(
      inbox.process({ consumer, messageId }, writeEffect('doomed', failure('card declined: 503'))),
    ).rejects.toMatchObject({ attempts: 1, cause: new Error('card declined: 503') });
    expect(await effects(consumer)).toEqual([]);
    await expect(store.get({ consumer, messageId })).resolves.toBeUndefined();
    await expect(store.getFailure({ consumer, messageId })).resolves.toMatchObject({
      attempts: 1,
      lastError: 'card declined: 503',
    });
    await expect(
      inbox.process({ consumer, messageId }, writeEffect('doomed', failure('still 503'))),
    ).rejects.toMatchObject({ attempts: 2 });
    await expect(store.getFailure({ consumer, messageId })).resolves.toMatchObject({
      attempts: 2,
      lastError: 'still 503',
    });

    const seen: number[] = [];
    await expect(
      inbox.process({ consumer, messageId }, async (c) => {
        seen.push(c.attempt);
        await writeEffect('charged')(c);
      }),
    ).resolves.toMatchObject({ outcome: 'processed', attempt: 3 });
    expect(seen).toEqual([3]);
    expect(await effects(consumer)).toEqual([{ message_id: messageId, note: 'charged' }]);
    await expect(store.get({ consumer, messageId })).resolves.toMatchObject({ attempts: 3 });
    await expect(store.getFailure({ consumer, messageId })).resolves.toBeUndefined();
  });

  it('poison: dead-lettered in the inbox after maxAttempts, with error and message; never handled again; operators can list and release it', async () => {
    const consumer = consumerName();
    const inbox = processor(3);
    const poison = { consumer, messageId: `poison-${randomUUID()}`, message: { bad: true } };
    for (const n of [1, 2]) {
      await expect(
        inbox.process(poison, writeEffect('x', failure(`parse error ${n}`))),
      ).rejects.toMatchObject({ attempts: n });
    }
    await expect(
      inbox.process(poison, writeEffect('x', failure('parse error 3'))),
    ).resolves.toEqual({ outcome: 'dead-lettered', attempts: 3, error: 'parse error 3' });
    await expect(store.get(poison)).resolves.toMatchObject({
      status: 'dead_letter',
      attempts: 3,
      lastError: 'parse error 3',
      message: { bad: true },
    });
    await expect(store.getFailure(poison)).resolves.toBeUndefined();
    const late = jest.fn(writeEffect('late'));
    await expect(inbox.process(poison, late)).resolves.toEqual({ outcome: 'duplicate' });
    expect(late).not.toHaveBeenCalled();
    expect(await effects(consumer)).toEqual([]);

    // Paging and filtering.
    const more = ['a', 'b', 'c'].map((s) => ({ consumer, messageId: `${s}-${randomUUID()}` }));
    for (const m of more) await processor(1).process(m, failure('nope'));
    await processor(1).process({ consumer: consumerName(), messageId: 'elsewhere' }, failure('x'));
    const page1 = await store.listDeadLetters({ consumer }, 3);
    expect(page1.entries.map((e) => e.messageId)).toEqual(
      [...more.map((m) => m.messageId), poison.messageId].sort().slice(0, 3),
    );
    expect(page1.nextCursor).not.toBeNull();
    const page2 = await store.listDeadLetters({ consumer }, 3, page1.nextCursor!);
    expect(page2.entries).toHaveLength(1);
    expect(page2.nextCursor).toBeNull();
    expect((await store.listDeadLetters({}, 100)).entries.length).toBeGreaterThanOrEqual(5);

    // Releasing a dead letter: the next delivery is handled (processed rows are never deleted).
    const processedId = randomUUID();
    await inbox.process({ consumer, messageId: processedId }, writeEffect('ok'));
    await expect(
      store.deleteDeadLetters(consumer, [poison.messageId, processedId, 'unknown']),
    ).resolves.toEqual([poison.messageId]);
    await expect(inbox.process(poison, writeEffect('fixed'))).resolves.toMatchObject({
      outcome: 'processed',
      attempt: 1,
    });
    expect((await effects(consumer)).map((e) => e.note)).toEqual(['ok', 'fixed']);
  });

  it('a dead letter keeps a message jsonb would reject (NUL, lone surrogate) instead of failing forever', async () => {
    const consumer = consumerName();
    const key = { consumer, messageId: randomUUID() };
    const message: JsonValue = { text: 'a\u0000b', lone: 'x\ud800y', ['k\u0000']: ['\udc00'] };
    await expect(processor(1).process({ ...key, message }, failure('bad'))).resolves.toMatchObject({
      outcome: 'dead-lettered',
    });
    await expect(store.get(key)).resolves.toMatchObject({
      message: { text: 'a\uFFFDb', lone: 'x\uFFFDy', ['k\uFFFD']: ['\uFFFD'] },
    });
  });

  it('outbox messages published by the handler commit with the inbox row, or not at all', async () => {
    const consumer = consumerName();
    const destination = `payments-${randomUUID().slice(0, 8)}`;
    const inbox = processor();
    const publish = (tx: EntityManager, note: string) =>
      ctx.publisher.publish(
        { destination, type: 'payment.charged', key: 'o-1', payload: { note } },
        { manager: tx },
      );
    const outboxRows = async (): Promise<unknown[]> =>
      (await ctx.dataSource.query(
        `SELECT payload->>'note' AS note FROM sage.outbox_message WHERE destination = $1`,
        [destination],
      )) as unknown[];

    const failed = randomUUID();
    await expect(
      inbox.process({ consumer, messageId: failed }, async ({ tx }) => {
        await publish(tx, 'rolled back');
        throw new Error('after publish');
      }),
    ).rejects.toBeInstanceOf(InboxHandlerFailedError);
    expect(await outboxRows()).toEqual([]);

    const ok = randomUUID();
    await inbox.process({ consumer, messageId: ok }, ({ tx }) => publish(tx, 'committed'));
    await inbox.process({ consumer, messageId: ok }, ({ tx }) => publish(tx, 'duplicate'));
    expect(await outboxRows()).toEqual([{ note: 'committed' }]);
  });

  it('migration: upgrades an inbox written by the previous version; its rows stay handled', async () => {
    const fresh = await createTestDatabase({ migrated: false });
    const dataSource = await createSagaDataSource(
      dataSourceOptions(fresh.name, { poolSize: 4 }),
    ).initialize();
    const schema = sagaSchema();
    const runner = dataSource.createQueryRunner();
    const concurrent = dataSource.createQueryRunner();
    try {
      await new (sagaStateMigration(schema))().up(runner);
      await new (outboxMigration(schema))().up(runner);
      await runner.query(
        `INSERT INTO sage.inbox_message (consumer, message_id) VALUES ('old', 'm-1')`,
      );
      const Inbox = inboxMigration(schema);
      // Two migrators at once: serialised by the advisory lock; the second finds it applied.
      await Promise.all([new Inbox().up(runner), new Inbox().up(concurrent)]);

      const upgraded = new PostgresInboxStore(dataSource);
      await expect(upgraded.get({ consumer: 'old', messageId: 'm-1' })).resolves.toMatchObject({
        status: 'processed',
        attempts: 1,
        lastError: null,
      });
      const inbox = new InboxProcessor<EntityManager>({ store: upgraded, maxAttempts: 1 });
      await expect(
        inbox.process({ consumer: 'old', messageId: 'm-1' }, () => Promise.resolve()),
      ).resolves.toEqual({ outcome: 'duplicate' });
      await expect(
        inbox.process({ consumer: 'old', messageId: 'm-2' }, failure('x')),
      ).resolves.toMatchObject({ outcome: 'dead-lettered' });
      // The CHECKs hold for new rows.
      await expect(
        runner.query(
          `INSERT INTO sage.inbox_message (consumer, message_id, status) VALUES ('old', 'm-3', 'dead_letter')`,
        ),
      ).rejects.toThrow(/inbox_message_dead_letter_check/);

      // down and up again
      await runner.query(`DELETE FROM sage.inbox_message WHERE status = 'dead_letter'`);
      await new Inbox().down(runner);
      const columns = (await runner.query(
        `SELECT column_name FROM information_schema.columns
         WHERE table_schema = 'sage' AND table_name = 'inbox_message' ORDER BY column_name`,
      )) as { column_name: string }[];
      expect(columns.map((c) => c.column_name)).toEqual(['consumer', 'message_id', 'processed_at']);
      await expect(
        runner.query(`SELECT to_regclass('sage.inbox_failure') IS NULL AS gone`),
      ).resolves.toEqual([{ gone: true }]);
      await new Inbox().up(runner);
      await expect(upgraded.get({ consumer: 'old', messageId: 'm-1' })).resolves.toMatchObject({
        status: 'processed',
      });
    } finally {
      await concurrent.release();
      await runner.release();
      await dataSource.destroy();
      await fresh.drop();
    }
  });
});

describe('inbox retention (leader-only, batched)', () => {
  it('deletes processed rows and stale failure counters past retention; keeps dead letters and recent rows; one leader at a time', async () => {
    const consumer = consumerName();
    const inbox = processor(1);
    for (let i = 0; i < 25; i++)
      await inbox.process({ consumer, messageId: `old-${i}` }, writeEffect('x'));
    await inbox
      .process({ consumer, messageId: 'poison' }, () => Promise.reject(new Error('poison')))
      .catch(() => undefined);
    await processor(5)
      .process({ consumer, messageId: 'failing' }, () => Promise.reject(new Error('transient')))
      .catch(() => undefined);
    // Age everything by an hour (processed_at / last_failed_at are the database's clock).
    await ctx.dataSource.query(
      `UPDATE sage.inbox_message SET processed_at = processed_at - interval '1 hour' WHERE consumer = $1`,
      [consumer],
    );
    await ctx.dataSource.query(
      `UPDATE sage.inbox_failure SET last_failed_at = last_failed_at - interval '1 hour' WHERE consumer = $1`,
      [consumer],
    );
    await inbox.process({ consumer, messageId: 'recent' }, writeEffect('x'));
    const rows = async (): Promise<Record<string, number>> => {
      const [r] = (await ctx.dataSource.query(
        `SELECT (SELECT count(*) FROM sage.inbox_message WHERE consumer = $1 AND status = 'processed')::int AS processed,
                (SELECT count(*) FROM sage.inbox_message WHERE consumer = $1 AND status = 'dead_letter')::int AS dead,
                (SELECT count(*) FROM sage.inbox_failure WHERE consumer = $1)::int AS failures`,
        [consumer],
      )) as Record<string, number>[];
      return r!;
    };
    expect(await rows()).toEqual({ processed: 26, dead: 1, failures: 1 });

    const retention = new InboxRetention({
      store,
      retentionMs: 30 * 60_000,
      batchSize: 10,
      vacuumAfterRows: 20,
    });
    const vacuums = async (): Promise<number> => {
      const [row] = (await ctx.dataSource.query(
        `SELECT vacuum_count::int AS n FROM pg_stat_user_tables WHERE schemaname = 'sage' AND relname = 'inbox_message'`,
      )) as { n: number }[];
      return row?.n ?? 0;
    };
    const vacuumsBefore = await vacuums();
    const other = ctx.dataSource.createQueryRunner();
    await other.connect();
    try {
      await other.query(`SELECT pg_advisory_lock(${INBOX_MAINTENANCE_LOCK_KEY})`);
      expect(await retention.runOnce()).toEqual({ leader: false, deleted: 0 });
      await other.query(`SELECT pg_advisory_unlock(${INBOX_MAINTENANCE_LOCK_KEY})`);
    } finally {
      await other.release();
    }
    const run = await retention.runOnce();
    expect(run.leader).toBe(true);
    expect(run.deleted).toBeGreaterThanOrEqual(26);
    expect(await rows()).toEqual({ processed: 1, dead: 1, failures: 0 });
    // Enough rows went for the leader to reclaim their space at once (vacuumAfterRows).
    expect(run.vacuumed).toBe(true);
    await waitUntil(async () => (await vacuums()) > vacuumsBefore, 'the VACUUM to be counted');
    // Forgotten means handled again if the broker ever redelivers: the reason for a long default.
    await expect(
      inbox.process({ consumer, messageId: 'old-0' }, writeEffect('again')),
    ).resolves.toMatchObject({ outcome: 'processed' });
  });
});

describe('on embedded PGlite (transactions of different connections serialised)', () => {
  it('dedups, serialises racing deliveries, counts failures and dead-letters', async () => {
    const { dataSource, close } = await openEmbeddedDatabase({ maxConnections: 6, poolSize: 5 });
    try {
      await dataSource.query('CREATE TABLE public.effect (message_id text NOT NULL)');
      const embedded = new PostgresInboxStore(dataSource);
      const inbox = new InboxProcessor<EntityManager>({ store: embedded, maxAttempts: 2 });
      const consumer = 'embedded';
      const write: InboxHandler<EntityManager, void> = async ({ tx, messageId }) => {
        await tx.query('INSERT INTO public.effect (message_id) VALUES ($1)', [messageId]);
      };
      const count = async (messageId: string): Promise<number> =>
        (
          (await dataSource.query(
            'SELECT count(*)::int AS n FROM public.effect WHERE message_id = $1',
            [messageId],
          )) as { n: number }[]
        )[0]!.n;

      const results = await Promise.all(
        [0, 1, 2, 3].map(() => inbox.process({ consumer, messageId: 'm-1' }, write)),
      );
      expect(results.map((r) => r.outcome).sort()).toEqual([
        'duplicate',
        'duplicate',
        'duplicate',
        'processed',
      ]);
      expect(await count('m-1')).toBe(1);

      await expect(
        inbox.process({ consumer, messageId: 'm-2' }, async (c) => {
          await write(c);
          throw new Error('transient');
        }),
      ).rejects.toMatchObject({ attempts: 1 });
      expect(await count('m-2')).toBe(0);
      await expect(inbox.process({ consumer, messageId: 'm-2' }, write)).resolves.toMatchObject({
        outcome: 'processed',
        attempt: 2,
      });
      expect(await count('m-2')).toBe(1);

      await inbox.process({ consumer, messageId: 'm-3' }, failure('poison')).catch(() => {});
      await expect(
        inbox.process({ consumer, messageId: 'm-3', message: { p: 1 } }, failure('poison')),
      ).resolves.toMatchObject({ outcome: 'dead-lettered', attempts: 2 });
      await expect(embedded.get({ consumer, messageId: 'm-3' })).resolves.toMatchObject({
        status: 'dead_letter',
        message: { p: 1 },
      });
    } finally {
      await close();
    }
  });
});
