/**
 * kill -9 of a Kafka consumer handling inbox batches, with real processes, Kafka and PostgreSQL:
 * the worker (workers/kafka-inbox-batch-worker.ts) handles up to 16 records of a partition in one
 * inbox transaction, each handler sleeping a little inside it, so the kill lands while a batch's
 * transaction is open (and usually with committed batches whose offsets are not committed yet).
 * A second worker of the same group then takes over from the committed offsets.
 *
 * Expected: every message takes effect exactly once (one business row, one inbox row), and per
 * key in order.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { waitUntil } from '@sage/saga-outbox/testing';
import { KafkaBroker } from '../../libs/saga-outbox/src/brokers/kafka/kafka-broker';
import type { BrokerMessage } from '../../libs/saga-outbox/src/core/ports/broker';
import { createPipelineDatabase } from '../support/inbox-pipeline';
import { withClient, type TestDatabase } from '../support/pg';

jest.setTimeout(90_000);

const WORKER = join(__dirname, 'workers', 'kafka-inbox-batch-worker.ts');
const KAFKA_BROKERS = process.env.SAGE_KAFKA_BROKERS ?? '127.0.0.1:19092';
const KEYS = 16;
const ROUNDS = 25;

interface Worker {
  child: ChildProcessWithoutNullStreams;
  ready: Promise<void>;
  exited: Promise<number | null>;
}

let db: TestDatabase;
let admin: Admin;
let producer: KafkaBroker;
const workers: Worker[] = [];
const topic = `sage-chaos-inbox-batch-${randomUUID()}`;

beforeAll(async () => {
  db = await createPipelineDatabase();
  admin = new Kafka({
    clientId: 'chaos-inbox-batch',
    brokers: KAFKA_BROKERS.split(','),
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  await admin.createTopics({
    topics: [{ topic, numPartitions: 4, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  producer = new KafkaBroker({ brokers: KAFKA_BROKERS.split(','), clientId: 'chaos-inbox-batch' });
});
afterAll(async () => {
  for (const w of workers.splice(0)) {
    if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await w.exited;
  }
  await producer?.close();
  await admin?.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin?.disconnect();
  await db?.drop();
});

function startWorker(group: string): Worker {
  const child = spawn(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', '-r', 'tsconfig-paths/register', WORKER],
    {
      env: {
        ...process.env,
        PGDATABASE: db.name,
        TS_NODE_TRANSPILE_ONLY: 'true',
        SAGE_KAFKA_BROKERS: KAFKA_BROKERS,
        TOPIC: topic,
        GROUP: group,
        BATCH_SIZE: '16',
        HANDLER_DELAY_MS: '3',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('"event":"ready"')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`worker exited ${code} before ready: ${stderr}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const worker = { child, ready, exited };
  workers.push(worker);
  return worker;
}

const counts = (consumer: string) =>
  withClient(db.name, async (client) => {
    const { rows } = await client.query<{ total: number; distinct: number; inbox: number }>(
      `SELECT (SELECT count(*)::int FROM public.effect WHERE consumer = $1) AS total,
              (SELECT count(DISTINCT message_id)::int FROM public.effect WHERE consumer = $1) AS distinct,
              (SELECT count(*)::int FROM sage.inbox_message WHERE consumer = $1) AS inbox`,
      [consumer],
    );
    return rows[0]!;
  });

it('kill -9 mid-batch: after the restart every message has taken effect exactly once, per key in order', async () => {
  const sent: BrokerMessage[] = [];
  for (let seq = 0; seq < ROUNDS; seq++) {
    const round = Array.from({ length: KEYS }, (_, k) => ({
      id: randomUUID(),
      destination: topic,
      key: `key-${k}`,
      type: 'chaos.inbox-batch',
      payload: { seq },
      headers: {},
      time: new Date(),
    }));
    sent.push(...round);
    expect((await producer.publish(round)).every((r) => r.ok)).toBe(true);
  }
  const consumer = `chaos-inbox-batch-${randomUUID().slice(0, 8)}`;

  const victim = startWorker(consumer);
  await victim.ready;
  await waitUntil(
    async () => (await counts(consumer)).total >= 100,
    'the victim committed a few batches',
    60_000,
    5,
  );
  // Mid-batch: a handler is sleeping inside an open batch transaction right now.
  await waitUntil(
    () =>
      withClient(db.name, async (client) => {
        const { rows } = await client.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()
             AND xact_start IS NOT NULL AND query LIKE 'SELECT pg_sleep%'`,
        );
        return rows[0]!.n > 0;
      }),
    'a batch transaction open',
    10_000,
    1,
  );
  victim.child.kill('SIGKILL');
  await victim.exited;
  const atKill = await counts(consumer);
  expect(atKill.total).toBeLessThan(sent.length);

  const survivor = startWorker(consumer);
  await survivor.ready;
  await waitUntil(
    async () => (await counts(consumer)).distinct >= sent.length,
    'every message handled after the restart',
    60_000,
    50,
  );
  survivor.child.kill('SIGTERM');
  await survivor.exited;

  expect(await counts(consumer)).toEqual({
    total: sent.length,
    distinct: sent.length,
    inbox: sent.length,
  });
  const rows = await withClient(db.name, async (client) => {
    const { rows } = await client.query<{ key: string; seq: number }>(
      'SELECT key, seq FROM public.effect WHERE consumer = $1 ORDER BY id',
      [consumer],
    );
    return rows;
  });
  const byKey = new Map<string, number[]>();
  for (const r of rows) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r.seq]);
  expect(byKey.size).toBe(KEYS);
  for (const [key, seqs] of byKey)
    expect({ key, seqs }).toEqual({ key, seqs: Array.from({ length: ROUNDS }, (_, i) => i) });
});
