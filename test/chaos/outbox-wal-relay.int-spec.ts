/**
 * Chaos for the WAL-streaming relay (wal_level = logical), with real processes, signals and broker:
 * - kill -9 of the streaming process mid-stream → a new streamer resumes from the slot's confirmed
 *   position: every message published, per-key order exact (first deliveries), duplicates within
 *   the documented bound (the unconfirmed window: `maxWindow` plus one transaction);
 * - RabbitMQ cut (a TCP proxy) mid-stream → nothing is dead-lettered or lost, every message is
 *   delivered once it is back, per key in commit order.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createServer } from 'node:net';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import amqplib from 'amqplib';
import { Pool } from 'pg';
import { waitUntil } from '@sage/saga-outbox/testing';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';
import { startRelayProcess } from '@test/support/relay-process';
import { TcpProxy } from '@test/support/tcp-proxy';
import { createWalTestDatabase, type WalTestDatabase } from '@test/support/wal-postgres';
import { RabbitMqBroker } from '../../libs/saga-outbox/src/brokers/rabbitmq/rabbitmq-broker';
import { WalOutboxRelay } from '../../libs/saga-outbox/src/core/outbox/wal-outbox-relay';
import {
  PostgresWalSource,
  replicationConnectionOf,
} from '../../libs/saga-outbox/src/persistence/postgres/postgres-wal-source';
import { CREATE_PUBLISHED_TABLE, TableBroker } from './workers/outbox-table-broker';

jest.setTimeout(120_000);

const WORKER = join(__dirname, 'workers', 'outbox-wal-relay-worker.ts');
const RABBITMQ_URL = process.env.SAGE_RABBITMQ_URL ?? 'amqp://sage:sage@127.0.0.1:56729';

interface Worker {
  child: ChildProcessWithoutNullStreams;
  events: Record<string, unknown>[];
  exited: Promise<number | null>;
}

let db: WalTestDatabase;
let ctx: OutboxTestContext;
let pool: Pool;
const workers: Worker[] = [];
const relays: WalOutboxRelay[] = [];

beforeAll(async () => {
  db = await createWalTestDatabase();
  ctx = await openOutboxTestContext(db.connection, 6);
  pool = new Pool({ ...db.connection, max: 3 });
  await pool.query(CREATE_PUBLISHED_TABLE);
});
afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.stop()));
  for (const w of workers.splice(0)) {
    if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await w.exited;
  }
});
afterAll(async () => {
  await pool?.end();
  await ctx?.close();
  await db?.cleanup();
});

function startWorker(env: Record<string, string>): Worker {
  const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', WORKER], {
    env: {
      ...process.env,
      PGHOST: db.connection.host,
      PGPORT: String(db.connection.port),
      PGDATABASE: db.name,
      TS_NODE_TRANSPILE_ONLY: 'true',
      ...env,
    },
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

it('kill -9 of the streamer mid-stream: nothing lost, key order exact, duplicates within the unconfirmed window', async () => {
  const slot = `chaos_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const MAX_WINDOW = 200;
  const TX_SIZE = 50;
  await pool.query('TRUNCATE chaos_published');
  const victim = startWorker({
    RELAY_ID: 'victim',
    SLOT: slot,
    PUBLISH_BATCH_SIZE: '10',
    MAX_IN_FLIGHT: '2',
    MAX_WINDOW: String(MAX_WINDOW),
    PUBLISH_DELAY_MS: '15',
  });
  await waitUntil(() => victim.events.some((e) => e.event === 'leader'), 'victim streams', 30_000);
  const ids: string[] = [];
  for (let t = 0; t < 20; t++)
    ids.push(
      ...(await ctx.commit(
        Array.from({ length: TX_SIZE }, (_, i) => ({
          destination: 'chaos-wal',
          type: 't',
          key: `k${i % 40}`,
          payload: { t, i },
        })),
      )),
    );
  await waitUntil(
    async () =>
      (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM chaos_published')).rows[0]!
        .n >= 250,
    'the victim published a few batches',
    60_000,
  );
  victim.child.kill('SIGKILL');
  await victim.exited;

  const survivor = new WalOutboxRelay({
    source: new PostgresWalSource(ctx.dataSource, replicationConnectionOf(ctx.dataSource), {
      slot,
    }),
    broker: new TableBroker(pool, 'survivor'),
    relayId: 'survivor',
    standbyRetryMs: 50,
  });
  relays.push(survivor);
  survivor.start();
  // The killed walsender's slot is free as soon as PostgreSQL sees the connection gone.
  await waitUntil(
    async () => (await ctx.store.stats()).sent === ids.length,
    'every message marked sent',
    60_000,
  );
  const { rows } = await pool.query<{ message_id: string; key: string; publisher: string }>(
    `SELECT message_id, key, publisher FROM chaos_published ORDER BY at`,
  );
  const distinct = new Set(rows.map((r) => r.message_id));
  expect(distinct.size).toBe(ids.length);
  const duplicates = rows.length - distinct.size;
  expect(duplicates).toBeLessThanOrEqual(MAX_WINDOW + TX_SIZE);
  // Per key, first deliveries follow the commit (= insert) order exactly.
  const { rows: order } = await pool.query<{ id: string; key: string }>(
    `SELECT id::text AS id, key FROM sage.outbox_message WHERE destination = 'chaos-wal' ORDER BY seq`,
  );
  const firstSeen: string[] = [];
  const seen = new Set<string>();
  for (const r of rows)
    if (!seen.has(r.message_id)) {
      seen.add(r.message_id);
      firstSeen.push(r.message_id);
    }
  const position = new Map(firstSeen.map((id, i) => [id, i]));
  const byKey = new Map<string, number[]>();
  for (const r of order) byKey.set(r.key, [...(byKey.get(r.key) ?? []), position.get(r.id)!]);
  for (const [, positions] of byKey)
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
  console.log(
    `WAL relay kill -9: ${ids.length} messages, ${rows.filter((r) => r.publisher === 'victim').length} published by the victim, ${duplicates} duplicates (bound ${MAX_WINDOW + TX_SIZE})`,
  );
});

it('RabbitMQ cut mid-stream: nothing lost or dead-lettered, every message delivered in key order once it is back', async () => {
  const slot = `chaos_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const exchange = `sage-wal-${randomUUID()}`;
  const destination = `wal-outage-${randomUUID()}`;
  const rabbit = new URL(RABBITMQ_URL);
  const proxy = new TcpProxy({ host: rabbit.hostname, port: Number(rabbit.port) });
  await proxy.start();
  const viaProxy = new URL(RABBITMQ_URL);
  viaProxy.port = String(proxy.port);
  const consumer = new RabbitMqBroker({
    url: RABBITMQ_URL,
    exchange,
    queueType: 'classic',
    declareDestinations: [destination],
  });
  const broker = new RabbitMqBroker({
    url: viaProxy.toString(),
    exchange,
    queueType: 'classic',
    declareDestinations: [destination],
    reconnectTimeInSeconds: 0.2,
    publishTimeoutMs: 500,
  });
  const delivered: { id: string; key: string | null; n: number }[] = [];
  const subscription = await consumer.subscribe(destination, (m) => {
    delivered.push({ id: m.id, key: m.key, n: (m.payload as { n: number }).n });
    return Promise.resolve();
  });
  const relay = new WalOutboxRelay({
    source: new PostgresWalSource(ctx.dataSource, replicationConnectionOf(ctx.dataSource), {
      slot,
    }),
    broker,
    standbyRetryMs: 50,
    // Two attempts only: an unreachable broker must not spend them (nothing dead-lettered).
    retry: { initialDelayMs: 50, maxDelayMs: 200, maxAttempts: 2 },
  });
  relays.push(relay);
  try {
    relay.start();
    await waitUntil(() => relay.stats.leader, 'the relay streams', 30_000);
    const write = async (from: number, to: number): Promise<string[]> => {
      const out: string[] = [];
      for (let n = from; n < to; n++)
        out.push(
          ...(await ctx.commit({ destination, type: 't', key: `k${n % 5}`, payload: { n } })),
        );
      return out;
    };
    const ids = await write(0, 100);
    await waitUntil(() => relay.stats.sent >= 50, 'some delivered before the cut', 30_000);
    await proxy.stop();
    ids.push(...(await write(100, 200)));
    await waitUntil(() => relay.stats.batches > 0 && relay.stats.window > 0, 'messages wait');
    await new Promise((resolve) => setTimeout(resolve, 1500)); // the outage lasts a while
    expect(relay.stats.deadLettered).toBe(0);
    await proxy.start();
    await waitUntil(
      () => new Set(delivered.map((d) => d.id)).size === ids.length,
      'every message delivered after the broker is back',
      60_000,
    );
    expect(relay.stats.deadLettered).toBe(0);
    await waitUntil(
      async () => (await ctx.store.stats()).pending === 0,
      'nothing pending in the table',
    );
    // Per key, first deliveries in commit order.
    const seen = new Set<string>();
    const perKey = new Map<string, number[]>();
    for (const d of delivered)
      if (!seen.has(d.id)) {
        seen.add(d.id);
        perKey.set(d.key!, [...(perKey.get(d.key!) ?? []), d.n]);
      }
    for (const [, ns] of perKey) expect(ns).toEqual([...ns].sort((a, b) => a - b));
  } finally {
    await relay.stop();
    await subscription.unsubscribe();
    await Promise.allSettled([broker.close(), consumer.close()]);
    await proxy.stop();
    const connection = await amqplib.connect(RABBITMQ_URL);
    try {
      for (const [kind, name] of [
        ['queue', destination],
        ['queue', `${destination}.dlq`],
        ['exchange', exchange],
        ['exchange', `${exchange}.dlx`],
      ] as const) {
        const channel = await connection.createChannel();
        channel.on('error', () => undefined);
        try {
          if (kind === 'queue') await channel.deleteQueue(name);
          else await channel.deleteExchange(name);
          await channel.close();
        } catch {
          // already gone
        }
      }
    } finally {
      await connection.close();
    }
  }
});

it('sage-relay with SAGE_RELAY_MODE=wal streams, serves the slot lag metric, and stops on SIGTERM', async () => {
  const port = await new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
  const slot = `chaos_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const c = db.connection;
  const relay = startRelayProcess({
    DATABASE_URL: `postgres://${c.user}:${c.password}@${c.host}:${c.port}/${c.database}`,
    SAGE_BROKER_URL: 'memory://',
    SAGE_RUN_MIGRATIONS: 'false',
    SAGE_RELAY_MODE: 'wal',
    SAGE_RELAY_WAL_SLOT: slot,
    HEALTH_PORT: String(port),
  });
  try {
    const metrics = async (): Promise<string> => {
      if (relay.child.exitCode !== null) throw new Error(`relay exited:\n${relay.output()}`);
      const res = await fetch(`http://127.0.0.1:${port}/metrics`).catch(() => undefined);
      return res?.ok ? await res.text() : '';
    };
    await waitUntil(
      async () => /outbox_wal_slot_lag_bytes \d+/.test(await metrics()),
      'the relay serves outbox_wal_slot_lag_bytes',
      60_000,
      100,
    );
    expect(await metrics()).toContain('outbox_relay_running 1');
    const [{ active }] = (await ctx.dataSource.query(
      'SELECT active FROM pg_replication_slots WHERE slot_name = $1',
      [slot],
    )) as [{ active: boolean }];
    expect(active).toBe(true);
    const ids = await ctx.commit({ destination: 'standalone-wal', type: 't', payload: {} });
    await waitUntil(
      async () =>
        (
          (await ctx.dataSource.query(`SELECT status FROM sage.outbox_message WHERE id = $1`, [
            ids[0],
          ])) as { status: string }[]
        )[0]?.status === 'sent',
      'the standalone WAL relay sent it',
      30_000,
    );
    relay.child.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
  } finally {
    await relay.kill();
  }
});
