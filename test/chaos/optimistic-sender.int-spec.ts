/**
 * Chaos for optimistic sending, with a real process and a real signal: a producing process that
 * publishes optimistically after each commit is killed with kill -9 mid-publish (between the broker
 * write and the mark-sent), while a relay races it. The relay then finishes the job: every committed message is published,
 * per-key order of first publications holds, and the duplicates — the crash window — are counted
 * and bounded by what the dead process could hold claimed at once (maxConcurrent attempts × the
 * ids one attempt takes, 4 × publishBatchSize). Publications are counted in a table (TableBroker) so they survive the kill.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { Pool } from 'pg';
import { OutboxRelay } from '../../libs/saga-outbox/src/core/outbox/outbox-relay';
import { waitUntil } from '@sage/saga-outbox/testing';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';
import { analysePublications } from '../../libs/saga-outbox/src/testing/recording-broker';
import { createTestDatabase, type TestDatabase } from '../support/pg';
import { CREATE_PUBLISHED_TABLE, TableBroker } from './workers/outbox-table-broker';

jest.setTimeout(120_000);

const WORKER = join(__dirname, 'workers', 'optimistic-writer-worker.ts');
const MAX_CONCURRENT = 4;
/** Ids one optimistic attempt may hold claimed: 4 × publishBatchSize (1 here, to keep it tight). */
const IDS_PER_ATTEMPT = 4;

let db: TestDatabase;
let ctx: OutboxTestContext;
let pool: Pool;
let child: ChildProcessWithoutNullStreams | undefined;
let exited: Promise<number | null> | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  ctx = await openOutboxTestContext(db.connection, 6);
  pool = new Pool({ ...db.connection, max: 3 });
  await pool.query(CREATE_PUBLISHED_TABLE);
});
afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await exited;
  await pool?.end();
  await ctx?.close();
  await db?.drop();
});

const publishedBy = async (publisher: string): Promise<number> => {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM chaos_published WHERE publisher = $1`,
    [publisher],
  );
  return rows[0]!.n;
};

const published = async (): Promise<{ total: number; distinct: number }> => {
  const { rows } = await pool.query<{ total: number; distinct: number }>(
    `SELECT count(*)::int AS total, count(DISTINCT message_id)::int AS distinct FROM chaos_published`,
  );
  return rows[0]!;
};

it('kill -9 of the producing process mid-publish: all published by the relay, duplicates bounded', async () => {
  // A relay runs throughout (as another process would): it takes what the optimistic sender
  // skips or hands back, races it on the same rows, and finishes the job after the kill (reaping
  // the rows the dead process still held claimed once their lease is over).
  const relay = new OutboxRelay({
    store: ctx.store,
    broker: new TableBroker(pool, 'relay'),
    relayId: 'survivor',
    pollIntervalMs: 20,
    reapIntervalMs: 100,
  });
  relay.start();
  try {
    child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', WORKER], {
      env: {
        ...process.env,
        PGDATABASE: db.name,
        TS_NODE_TRANSPILE_ONLY: 'true',
        MAX_CONCURRENT: String(MAX_CONCURRENT),
        PUBLISH_BATCH_SIZE: '1',
        LEASE_MS: '1000',
        TIMEOUT_MS: '800',
        TRANSACTIONS: '1500',
        // Each optimistic publish pauses after the broker write: the kill lands in that window.
        PUBLISH_DELAY_MS: '20',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const victim = child;
    exited = new Promise((resolve) => victim.on('exit', (code) => resolve(code)));

    await waitUntil(
      async () => (await publishedBy('optimistic')) >= 200,
      'the victim published optimistically for a while',
      60_000,
      5,
    );
    victim.kill('SIGKILL');
    expect(await exited).toBeNull(); // killed by the signal, not exited on its own
    expect(stderr).toBe('');
    const atKill = await published();

    const committed = (
      (await ctx.dataSource.query(`SELECT count(*)::int AS n FROM sage.outbox_message`)) as {
        n: number;
      }[]
    )[0]!.n;
    await waitUntil(
      async () => (await ctx.store.stats()).sent === committed,
      'every committed message sent',
      60_000,
      20,
    );

    const after = await published();
    expect(after.distinct).toBe(committed);
    const duplicates = after.total - after.distinct;
    const bound = MAX_CONCURRENT * IDS_PER_ATTEMPT;
    console.log(
      `optimistic kill -9: ${committed} committed, ${atKill.total} published at the kill ` +
        `(${await publishedBy('optimistic')} optimistically); duplicates ${duplicates} (bound ${bound}); ` +
        `reaped ${relay.stats.reaped}`,
    );
    expect(duplicates).toBeLessThanOrEqual(bound);
    // Every duplicate is a message the victim published but never recorded as sent.
    const { rows: dup } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM chaos_published s WHERE publisher = 'relay'
         AND EXISTS (SELECT 1 FROM chaos_published v WHERE v.publisher = 'optimistic' AND v.message_id = s.message_id)`,
    );
    expect(dup[0]!.n).toBe(duplicates);

    // Per-key order of first publications is commit order, across both publishers and the crash.
    const { rows: order } = await pool.query<{ id: string; key: string }>(
      `SELECT message_id AS id, key FROM chaos_published ORDER BY at`,
    );
    const expected = (await ctx.dataSource.query(
      `SELECT id, key FROM sage.outbox_message ORDER BY txid, seq`,
    )) as { id: string; key: string }[];
    const analysis = analysePublications(order, expected);
    expect(analysis.missing).toEqual([]);
    expect(analysis.orderViolations).toEqual([]);
  } finally {
    await relay.stop();
  }
});
