/**
 * The hot statements keep their indexes on big tables. Each statement is built by the same SQL
 * builder the stores use, with realistic parameters, and planned (`EXPLAIN`, never run) against a
 * million rows per table in the mix a busy system has: mostly sent / completed / processed, a few
 * pending, due, claimed, parked and dead. A statement that falls back to a sequential scan of a big
 * table, or whose index scan would read a large share of it, fails here long before it slows a
 * production database down.
 */
import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import {
  busySystemAnalyze,
  busySystemSeed,
  SAGA_NAMES,
  SAGA_VERSIONS,
} from '@test/support/busy-system-seed';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { explain, indexScans, seqScans, type QueryPlan } from '@test/support/query-plan';
import { inboxTables } from './inbox-tables';
import * as inboxSql from './inbox-queries.sql';
import * as operatorSql from './operator-queries.sql';
import { outboxTables } from './outbox-tables';
import * as outboxSql from './outbox-queries.sql';
import * as sagaSql from './saga-queries.sql';
import { sagaSchema } from './schema-name';

jest.setTimeout(120_000);

const ROWS = 1_000_000;
const schema = sagaSchema();
const outbox = outboxTables(schema);
const inbox = inboxTables(schema);

describe(`hot statements on ${ROWS.toLocaleString('en')} rows per table`, () => {
  let db: TestDatabase;
  let client: Client;
  /** Realistic parameters, read from the seeded rows. */
  let claimed: { ids: string[]; token: string };
  let pendingIds: string[];
  let deadLetterId: string;
  let running: { ids: string[]; owner: string };
  let inboxDead: { consumer: string; messageId: string };
  /** A saga listing page's end, 500 sagas back: the keyset cursor of the next page. */
  let sagaCursor: { createdAtMicros: string; id: string };

  beforeAll(async () => {
    db = await createTestDatabase();
    // One connection per table group, loading in parallel.
    await Promise.all(
      busySystemSeed(ROWS).map(async (statements) => {
        const loader = new Client(db.connection);
        await loader.connect();
        try {
          for (const sql of statements) await loader.query(sql);
        } finally {
          await loader.end();
        }
      }),
    );
    client = new Client(db.connection);
    await client.connect();
    await client.query(busySystemAnalyze);
    const token = await client.query<{ claim_token: string }>(
      `SELECT claim_token FROM ${outbox.outboxMessage} WHERE status = 'claimed' LIMIT 1`,
    );
    claimed = {
      token: token.rows[0]!.claim_token,
      ids: await ids(`SELECT id FROM ${outbox.outboxMessage} WHERE status = 'claimed' LIMIT 100`),
    };
    pendingIds = await ids(
      `SELECT id FROM ${outbox.outboxMessage} WHERE status = 'pending' LIMIT 10`,
    );
    deadLetterId = (
      await ids(
        `SELECT id FROM ${outbox.outboxMessage} WHERE status = 'dead_letter' ORDER BY id OFFSET 200 LIMIT 1`,
      )
    )[0]!;
    running = {
      owner: 'worker-2',
      ids: await ids(
        `SELECT id FROM ${schema.sagaInstance} WHERE owner = 'worker-2' AND status = 'running' LIMIT 64`,
      ),
    };
    const dead = await client.query<{ consumer: string; message_id: string }>(
      `SELECT consumer, message_id FROM ${inbox.inboxMessage}
       WHERE status = 'dead_letter' ORDER BY consumer, message_id OFFSET 300 LIMIT 1`,
    );
    inboxDead = { consumer: dead.rows[0]!.consumer, messageId: dead.rows[0]!.message_id };
    const cursor = await client.query<{ micros: string; id: string }>(
      `SELECT (extract(epoch FROM created_at) * 1000000)::bigint::text AS micros, id
       FROM ${schema.sagaInstance} ORDER BY created_at DESC, id DESC OFFSET 500 LIMIT 1`,
    );
    sagaCursor = { createdAtMicros: cursor.rows[0]!.micros, id: cursor.rows[0]!.id };
  });

  afterAll(async () => {
    await client?.end();
    await db?.drop();
  });

  async function ids(sql: string): Promise<string[]> {
    const { rows } = await client.query<{ id: string }>(sql);
    if (!rows.length) throw new Error(`seed produced no rows for: ${sql}`);
    return rows.map((r) => r.id);
  }

  const BIG_TABLES = ['outbox_message', 'saga_instance', 'saga_step', 'inbox_message'] as const;

  /**
   * The plan uses each of `indexes` (an array entry: any one of those), scans no big table
   * sequentially, and no node on a big table expects more than `maxRows` rows (a partial index over
   * the few live rows, or a primary-key probe, not the table).
   */
  async function expectPlan(
    statement: { text: string; values: readonly unknown[] },
    expected: { indexes: readonly (string | readonly string[])[]; maxRows: number },
  ): Promise<QueryPlan> {
    const plan = await explain(client, statement);
    const problems: string[] = [];
    for (const wanted of expected.indexes) {
      const anyOf = typeof wanted === 'string' ? [wanted] : wanted;
      if (!anyOf.some((index) => indexScans(plan, index).length))
        problems.push(`uses no index scan of ${anyOf.join(' or ')}`);
    }
    for (const table of BIG_TABLES)
      if (seqScans(plan, table).length) problems.push(`scans ${table} sequentially`);
    for (const node of plan.nodes)
      if (
        node.relation !== undefined &&
        (BIG_TABLES as readonly string[]).includes(node.relation) &&
        node.rows > expected.maxRows
      )
        problems.push(`${node.nodeType} on ${node.relation} expects ${node.rows} rows`);
    if (problems.length) throw new Error(`${problems.join('; ')}\nplan:\n${plan.text}`);
    return plan;
  }

  describe('relay', () => {
    it('claims due pending rows from the claimable index, head-of-key by the key index', async () => {
      await expectPlan(
        outboxSql.claimOutboxMessages(outbox, {
          claimToken: randomUUID(),
          limit: 100,
          leaseMs: 30_000,
        }),
        {
          indexes: ['outbox_message_claimable_idx', 'outbox_message_key_unsent_idx'],
          maxRows: 50_000,
        },
      );
    });

    it('the windowed claim reads at most its window from the claimable index', async () => {
      await expectPlan(
        outboxSql.claimOutboxMessagesWindowed(outbox, {
          claimToken: randomUUID(),
          limit: 100,
          leaseMs: 30_000,
          window: 1000,
        }),
        {
          indexes: ['outbox_message_claimable_idx', 'outbox_message_key_unsent_idx'],
          maxRows: 50_000,
        },
      );
    });

    it('claims by ids (optimistic sender) by primary key', async () => {
      await expectPlan(
        outboxSql.claimOutboxMessagesByIds(outbox, {
          claimToken: randomUUID(),
          ids: pendingIds,
          leaseMs: 30_000,
        }),
        { indexes: ['outbox_message_pkey'], maxRows: 1_000 },
      );
    });

    it('marks sent, failed and released claims by primary key', async () => {
      const p = { claimToken: claimed.token, ids: claimed.ids };
      await expectPlan(outboxSql.markOutboxSent(outbox, p), {
        indexes: ['outbox_message_pkey'],
        maxRows: 1_000,
      });
      await expectPlan(outboxSql.releaseOutboxClaims(outbox, p), {
        indexes: ['outbox_message_pkey'],
        maxRows: 1_000,
      });
      await expectPlan(
        outboxSql.markOutboxFailed(outbox, {
          claimToken: claimed.token,
          ids: claimed.ids.slice(0, 10),
          errors: claimed.ids.slice(0, 10).map(() => 'broker unavailable'),
          delaysMs: claimed.ids.slice(0, 10).map((_, i) => (i % 2 ? 1_000 : null)),
          counted: claimed.ids.slice(0, 10).map(() => true),
        }),
        { indexes: ['outbox_message_pkey'], maxRows: 1_000 },
      );
    });

    it('reaps expired claims from the lease index', async () => {
      await expectPlan(outboxSql.reapExpiredClaims(outbox, { limit: 100 }), {
        indexes: ['outbox_message_lease_idx'],
        maxRows: 10_000,
      });
    });

    it('deletes old sent rows (retention) from the sent index', async () => {
      await expectPlan(
        outboxSql.deleteSentBatch(outbox, { olderThanMs: 3_600_000, limit: 1_000 }),
        {
          indexes: ['outbox_message_sent_idx'],
          // The sent index holds most of the table; the LIMIT stops the scan, the estimate does not.
          maxRows: ROWS,
        },
      );
    });
  });

  describe('outbox dead letters', () => {
    it('pages dead letters by id on the dead-letter index, filtered or not', async () => {
      for (const page of [
        { filter: {}, limit: 50, after: null },
        { filter: {}, limit: 50, after: deadLetterId },
        {
          filter: { destination: 'topic-3', type: 'order.event.5' },
          limit: 50,
          after: deadLetterId,
        },
      ])
        await expectPlan(outboxSql.selectDeadLetters(outbox, page), {
          // Either partial index of dead letters: with selective filters the planner may read the
          // expiry one and sort the few matches.
          indexes: [['outbox_message_dead_letter_idx', 'outbox_message_dead_letter_expiry_idx']],
          maxRows: 20_000,
        });
    });
  });

  describe('saga store', () => {
    it('claims orphans (recovery) from the claim index', async () => {
      const pairs = SAGA_NAMES.flatMap((name) =>
        SAGA_VERSIONS.map((version) => ({ name, version })),
      );
      await expectPlan(
        sagaSql.claimOrphans(schema, {
          owner: randomUUID(),
          names: pairs.map((p) => p.name),
          versions: pairs.map((p) => p.version),
          limit: 16,
          leaseMs: 30_000,
        }),
        { indexes: ['saga_instance_claim_idx'], maxRows: 50_000 },
      );
    });

    it('renews leases, transitions and loads a saga by primary key', async () => {
      const [sagaId] = running.ids;
      await expectPlan(
        sagaSql.renewLeases(schema, {
          owner: running.owner,
          sagaIds: running.ids,
          leaseMs: 30_000,
        }),
        { indexes: ['saga_instance_pkey'], maxRows: 1_000 },
      );
      await expectPlan(
        sagaSql.transitionSaga(schema, {
          sagaId: sagaId!,
          owner: running.owner,
          from: ['running'],
          to: 'completed',
          error: null,
          failedStep: null,
        }),
        { indexes: ['saga_instance_pkey'], maxRows: 1_000 },
      );
      await expectPlan(sagaSql.selectSaga(schema, { id: sagaId! }), {
        indexes: ['saga_instance_pkey', 'saga_step_pkey'],
        maxRows: 1_000,
      });
      await expectPlan(
        sagaSql.completeStep(schema, {
          sagaId: sagaId!,
          owner: running.owner,
          step: 'capture',
          result: { ok: true },
          attempt: 1,
        }),
        { indexes: ['saga_instance_pkey', 'saga_step_pkey'], maxRows: 1_000 },
      );
    });

    it('counts live versions from the claim index only', async () => {
      await expectPlan(sagaSql.selectActiveVersions(schema), {
        indexes: ['saga_instance_claim_idx'],
        maxRows: 50_000,
      });
    });
  });

  describe('inbox', () => {
    it('deduplicates a delivery against the primary key (ON CONFLICT arbiter)', async () => {
      const plan = await expectPlan(
        inboxSql.markInboxProcessed(inbox, { consumer: 'consumer-3', messageId: randomUUID() }),
        { indexes: ['inbox_failure_pkey'], maxRows: 1_000 },
      );
      const insert = plan.nodes.find(
        (n) => n.nodeType === 'ModifyTable' && n.relation === 'inbox_message',
      );
      expect(insert?.arbiterIndexes).toEqual(['inbox_message_pkey']);
    });

    it('deduplicates a batch of deliveries against the primary key in one statement', async () => {
      const plan = await expectPlan(
        inboxSql.markInboxProcessedBatch(inbox, {
          consumer: 'consumer-3',
          messageIds: Array.from({ length: 64 }, () => randomUUID()),
        }),
        { indexes: ['inbox_failure_pkey'], maxRows: 1_000 },
      );
      const insert = plan.nodes.find(
        (n) => n.nodeType === 'ModifyTable' && n.relation === 'inbox_message',
      );
      expect(insert?.arbiterIndexes).toEqual(['inbox_message_pkey']);
    });

    it('records a failure after a primary-key probe of the inbox', async () => {
      await expectPlan(
        inboxSql.recordInboxFailure(inbox, {
          consumer: 'consumer-3',
          messageId: randomUUID(),
          error: 'handler threw',
        }),
        { indexes: ['inbox_message_pkey'], maxRows: 1_000 },
      );
    });

    it('pages dead letters on the dead-letter index, all consumers or one', async () => {
      for (const page of [
        { consumer: null, limit: 50, after: null },
        { consumer: inboxDead.consumer, limit: 50, after: inboxDead },
        { consumer: null, limit: 50, after: inboxDead },
      ])
        await expectPlan(inboxSql.selectInboxDeadLetters(inbox, page), {
          indexes: ['inbox_message_dead_letter_idx'],
          maxRows: 20_000,
        });
    });
  });

  describe('operator queries', () => {
    const stalledAfterSeconds = 60;

    it('lists the newest sagas, of any status, one status or one name, without a table scan', async () => {
      // Ended sagas newest first along their created index (the LIMIT stops the backward scan
      // early; the estimate is the whole index, hence no row bound), live ones from the claim index.
      const ended = 'saga_instance_ended_created_idx';
      const live = 'saga_instance_claim_idx';
      for (const [filter, indexes] of [
        [{ status: null, name: null }, [ended, live]],
        [{ status: 'failed', name: null }, [ended]],
        [{ status: 'waiting', name: null }, [live]],
        [{ status: null, name: 'refund' }, [ended, live]],
        [{ status: null, name: null, before: sagaCursor }, [ended, live]],
        [{ status: 'completed', name: null, before: sagaCursor }, [ended]],
      ] as const)
        await expectPlan(
          operatorSql.selectSagaList(schema, { ...filter, limit: 50, stalledAfterSeconds }),
          { indexes: [...indexes, 'saga_step_pkey'], maxRows: ROWS },
        );
    });

    it('lists the oldest live sagas from the claim index', async () => {
      await expectPlan(
        operatorSql.selectOldestLiveSagas(schema, { limit: 20, stalledAfterSeconds }),
        {
          indexes: ['saga_instance_claim_idx', 'saga_step_pkey'],
          maxRows: 50_000,
        },
      );
    });

    it('breaks down unsent messages and groups dead letters from the partial indexes', async () => {
      await expectPlan(operatorSql.selectOutboxPendingBreakdown(outbox), {
        indexes: ['outbox_message_claimable_idx', 'outbox_message_lease_idx'],
        maxRows: 50_000,
      });
      await expectPlan(operatorSql.selectOutboxDeadLetterGroups(outbox, { limit: 20 }), {
        indexes: [['outbox_message_dead_letter_idx', 'outbox_message_dead_letter_expiry_idx']],
        maxRows: 20_000,
      });
      await expectPlan(operatorSql.selectInboxDeadLetterGroups(inbox), {
        indexes: ['inbox_message_dead_letter_idx'],
        maxRows: 20_000,
      });
    });
  });
});
