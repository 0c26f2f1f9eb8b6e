/**
 * Chaos for the outbox relay, with real processes and real signals:
 * - kill -9 a relay mid-batch → every message is eventually published; duplicates are counted
 *   and bounded by what it held claimed: one claim batch per pipeline lane;
 * - SIGSTOP a relay past its lease, let another relay take over, SIGCONT → the stale relay's
 *   mark-sent is rejected by the fencing token.
 * Publications are counted in a table (TableBroker) so they survive the killed process.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { Pool } from 'pg';
import { OutboxRelay } from '../../libs/saga-outbox/src/core/outbox/outbox-relay';
import { waitUntil } from '@sage/saga-outbox/testing';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';
import { createTestDatabase, type TestDatabase } from '../support/pg';
import { CREATE_PUBLISHED_TABLE, TableBroker } from './workers/outbox-table-broker';

jest.setTimeout(120_000);

const WORKER = join(__dirname, 'workers', 'outbox-relay-worker.ts');

interface Worker {
  child: ChildProcessWithoutNullStreams;
  events: Record<string, unknown>[];
  exited: Promise<number | null>;
}

let db: TestDatabase;
let ctx: OutboxTestContext;
let pool: Pool;
const workers: Worker[] = [];

beforeEach(async () => {
  db = await createTestDatabase();
  ctx = await openOutboxTestContext(db.connection, 6);
  pool = new Pool({ ...db.connection, max: 3 });
  await pool.query(CREATE_PUBLISHED_TABLE);
});
afterEach(async () => {
  for (const w of workers.splice(0)) {
    if (w.child.exitCode === null && w.child.signalCode === null) {
      w.child.kill('SIGCONT');
      w.child.kill('SIGKILL');
    }
    await w.exited;
  }
  await pool?.end();
  await ctx?.close();
  await db?.drop();
});

function startWorker(env: Record<string, string>): Worker {
  const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', WORKER], {
    env: { ...process.env, PGDATABASE: db.name, TS_NODE_TRANSPILE_ONLY: 'true', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const events: Record<string, unknown>[] = [];
  let buffer = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      try {
        events.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not one of ours
      }
    }
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      if (code) console.error(`worker exited ${code}: ${stderr}`);
      resolve(code);
    }),
  );
  const worker = { child, events, exited };
  workers.push(worker);
  return worker;
}

const published = async (): Promise<{ total: number; distinct: number }> => {
  const { rows } = await pool.query<{ total: number; distinct: number }>(
    `SELECT count(*)::int AS total, count(DISTINCT message_id)::int AS distinct FROM chaos_published`,
  );
  return rows[0]!;
};

it('kill -9 mid-batch: everything is eventually published, duplicates bounded by the batches in flight', async () => {
  const BATCH = 100;
  const LANES = 2; // the relay's pipelineDepth: that many claimed batches at once
  const ids: string[] = [];
  for (let t = 0; t < 20; t++) {
    ids.push(
      ...(await ctx.commit(
        Array.from({ length: 50 }, (_, i) => ({
          destination: 'chaos',
          type: 't',
          key: `k${i % 40}`,
          payload: { t, i },
        })),
      )),
    );
  }
  const victim = startWorker({
    RELAY_ID: 'victim',
    LEASE_MS: '1000',
    BATCH_SIZE: String(BATCH),
    PUBLISH_BATCH_SIZE: '10',
    PIPELINE_DEPTH: String(LANES),
    PUBLISH_DELAY_MS: '15',
  });
  // Kill once it is well into the work, and mid-batch: between a broker write and the batch's mark.
  await waitUntil(
    async () => (await published()).total >= 250,
    'victim published a few batches',
    60_000,
    5,
  );
  victim.child.kill('SIGKILL');
  await victim.exited;
  const atKill = await published();
  expect(atKill.distinct).toBeLessThan(ids.length);

  const survivor = new OutboxRelay({
    store: ctx.store,
    broker: new TableBroker(pool, 'survivor'),
    relayId: 'survivor',
    batchSize: BATCH,
    pollIntervalMs: 20,
    reapIntervalMs: 100,
  });
  survivor.start();
  try {
    await waitUntil(
      async () => (await ctx.store.stats()).sent === ids.length,
      'all sent',
      30_000,
      20,
    );
  } finally {
    await survivor.stop();
  }
  const after = await published();
  expect(after.distinct).toBe(ids.length);
  const duplicates = after.total - after.distinct;
  console.log(
    `kill -9: victim published ${atKill.total} before dying; duplicates ${duplicates} (bound ${LANES * BATCH}); reaped ${survivor.stats.reaped}`,
  );
  expect(duplicates).toBeLessThanOrEqual(LANES * BATCH);
  // Every duplicate is a message the victim published but never recorded as sent.
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM chaos_published s WHERE publisher = 'survivor'
       AND EXISTS (SELECT 1 FROM chaos_published v WHERE v.publisher = 'victim' AND v.message_id = s.message_id)`,
  );
  expect(rows[0]!.n).toBe(duplicates);
});

it('SIGSTOP past the lease, SIGCONT: the stale relay’s mark-sent is rejected by the fencing token', async () => {
  const ids = await ctx.commit(
    Array.from({ length: 20 }, (_, i) => ({
      destination: 'chaos',
      type: 't',
      key: `k${i}`,
      payload: i,
    })),
  );
  // The worker holds each publish for 1.5 s after writing to the broker: we stop it in that window.
  const stalled = startWorker({
    RELAY_ID: 'stalled',
    LEASE_MS: '500',
    BATCH_SIZE: '100',
    PUBLISH_BATCH_SIZE: '100',
    PUBLISH_DELAY_MS: '1500',
  });
  await waitUntil(
    () => stalled.events.some((e) => e.event === 'published'),
    'stalled relay published its batch',
    60_000,
    5,
  );
  stalled.child.kill('SIGSTOP');

  // Another relay reaps the expired claims, publishes and records them with its own token.
  const takeover = new OutboxRelay({
    store: ctx.store,
    broker: new TableBroker(pool, 'takeover'),
    relayId: 'takeover',
    pollIntervalMs: 20,
    reapIntervalMs: 50,
  });
  takeover.start();
  try {
    await waitUntil(
      async () => (await ctx.store.stats()).sent === ids.length,
      'takeover sent everything',
      20_000,
      20,
    );
  } finally {
    await takeover.stop();
  }
  expect(takeover.stats.reaped).toBe(ids.length);

  stalled.child.kill('SIGCONT');
  await waitUntil(
    () => stalled.events.some((e) => e.event === 'batch'),
    'stalled relay reported its batch',
    20_000,
    10,
  );
  const report = stalled.events.find((e) => e.event === 'batch')!;
  expect(report).toMatchObject({ claimed: ids.length, sent: 0, staleMarks: ids.length });
  // Rows stay as the takeover recorded them: sent once, not re-marked by the stale relay.
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM sage.outbox_message WHERE status = 'sent'`,
  );
  expect(rows[0]!.n).toBe(ids.length);
  const after = await published();
  expect(after).toEqual({ total: 2 * ids.length, distinct: ids.length });
});
