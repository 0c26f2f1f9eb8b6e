/**
 * The standalone relay entry point (libs/saga-outbox/src/bin/sage-relay.ts, the sage-relay bin) as a real child process against
 * a test database: it publishes what services wrote, and on SIGTERM / SIGINT it drains within its
 * bound and exits 0, leaving no row `claimed`. Its in-memory broker lives in the child, so every
 * assertion goes through the outbox rows' status.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { waitUntil } from '@sage/saga-outbox/testing';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';
import { createTestDatabase, type TestDatabase } from '../support/pg';

jest.setTimeout(120_000);

const ROOT = join(__dirname, '..', '..');
const ENTRY = 'libs/saga-outbox/src/bin/sage-relay.ts';

interface RelayProcess {
  child: ChildProcessWithoutNullStreams;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

let db: TestDatabase;
let ctx: OutboxTestContext;
const relays: RelayProcess[] = [];

beforeEach(async () => {
  db = await createTestDatabase();
  ctx = await openOutboxTestContext(db.connection, 4);
});
afterEach(async () => {
  for (const r of relays.splice(0)) {
    if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    await r.exited;
  }
  await ctx?.close();
  await db?.drop();
});

function databaseUrl(): string {
  const c = db.connection;
  return `postgres://${c.user}:${c.password}@${c.host}:${c.port}/${c.database}`;
}

function startRelay(env: Record<string, string | undefined>): RelayProcess {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, TS_NODE_TRANSPILE_ONLY: 'true' };
  delete childEnv.DATABASE_URL;
  delete childEnv.SAGE_BROKER_URL;
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete childEnv[k];
    else childEnv[k] = v;
  }
  const child = spawn(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', '-r', 'tsconfig-paths/register', ENTRY],
    { cwd: ROOT, env: childEnv, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>(
    (resolve) => child.on('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  const relay = { child, output: () => output, exited };
  relays.push(relay);
  return relay;
}

const ready = (relay: RelayProcess): Promise<void> =>
  waitUntil(
    () => {
      if (relay.child.exitCode !== null)
        throw new Error(`relay exited early (${relay.child.exitCode}):\n${relay.output()}`);
      return relay.output().includes('outbox relay running');
    },
    'the relay to report it is running',
    60_000,
    20,
  );

const messages = (n: number, tag: string, keys = n) =>
  Array.from({ length: n }, (_, i) => ({
    destination: 'standalone',
    type: 'relay.test',
    key: `${tag}-${i % keys}`,
    payload: { tag, i },
  }));

it('publishes what services write, then exits 0 on SIGTERM with nothing claimed', async () => {
  const before = await ctx.commit(messages(300, 'before', 50));
  const relay = startRelay({
    DATABASE_URL: databaseUrl(),
    SAGE_BROKER_URL: 'memory://',
    SAGE_SCHEMA: 'sage',
    SAGE_RELAY_SHUTDOWN_TIMEOUT_MS: '5000',
  });
  await ready(relay);
  await waitUntil(
    async () => (await ctx.store.stats()).sent === before.length,
    'the backlog to be sent',
    30_000,
    20,
  );
  // Written while the relay runs: its LISTEN (or poll) picks them up.
  const after = await ctx.commit(messages(40, 'after'));
  await waitUntil(
    async () => (await ctx.store.stats()).sent === before.length + after.length,
    'new messages to be sent',
    30_000,
    20,
  );

  const signalledAt = Date.now();
  relay.child.kill('SIGTERM');
  const exit = await relay.exited;
  expect(exit).toMatchObject({ code: 0, signal: null });
  expect(exit.at - signalledAt).toBeLessThan(5_000);
  expect(relay.output()).toContain('outbox relay stopped');
  expect(await ctx.store.stats()).toMatchObject({
    pending: 0,
    claimed: 0,
    sent: before.length + after.length,
    deadLetter: 0,
  });
});

it('SIGTERM mid-drain: in-flight publishes are recorded, the rest handed back, exit 0 within the bound; SIGINT too', async () => {
  const total = 20_000;
  for (let i = 0; i < total; i += 2_000) await ctx.commit(messages(2_000, `bulk${i}`));
  const SHUTDOWN_MS = 3_000;
  // 200 ms per broker call: at any moment a round of publishes is in flight.
  const slow = startRelay({
    DATABASE_URL: databaseUrl(),
    SAGE_BROKER_URL: 'memory://?latencyMs=200',
    SAGE_RELAY_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_MS),
  });
  await ready(slow);
  await waitUntil(
    async () => (await ctx.store.stats()).sent >= 1_000,
    'the relay to be well into the backlog',
    60_000,
    5,
  );
  const signalledAt = Date.now();
  slow.child.kill('SIGTERM');
  const exit = await slow.exited;
  expect(exit).toMatchObject({ code: 0, signal: null });
  // Within the relay's bound (plus closing the pool), far below the 5 s watchdog margin.
  expect(exit.at - signalledAt).toBeLessThan(SHUTDOWN_MS + 2_000);
  const stopped = await ctx.store.stats();
  expect(stopped.claimed).toBe(0);
  expect(stopped.deadLetter).toBe(0);
  expect(stopped.sent).toBeLessThan(total); // it really stopped mid-drain
  expect(stopped.sent + stopped.pending).toBe(total); // and lost nothing

  // Another replica finishes the job; SIGINT stops it the same way.
  const next = startRelay({ DATABASE_URL: databaseUrl(), SAGE_BROKER_URL: 'memory://' });
  await ready(next);
  await waitUntil(
    async () => (await ctx.store.stats()).sent === total,
    'everything to be sent',
    60_000,
    20,
  );
  next.child.kill('SIGINT');
  expect(await next.exited).toMatchObject({ code: 0, signal: null });
  expect(await ctx.store.stats()).toMatchObject({ pending: 0, claimed: 0, sent: total });
});

it('fails fast with a clear message on bad configuration, writing nothing', async () => {
  await ctx.commit(messages(1, 'config'));
  const cases: { env: Record<string, string | undefined>; says: string }[] = [
    { env: { SAGE_BROKER_URL: 'memory://' }, says: '"DATABASE_URL": is required' },
    { env: { DATABASE_URL: databaseUrl() }, says: '"SAGE_BROKER_URL": is required' },
    {
      env: { DATABASE_URL: databaseUrl(), SAGE_BROKER_URL: 'kafka://broker:9092?acks=1' },
      says: 'unknown parameter "acks" for kafka://',
    },
    {
      env: { DATABASE_URL: databaseUrl(), SAGE_BROKER_URL: 'redis://cache:6379' },
      says: 'unsupported broker scheme "redis://"',
    },
  ];
  const runs = cases.map((c) => ({ ...c, relay: startRelay(c.env) }));
  for (const { relay, says } of runs) {
    expect(await relay.exited).toMatchObject({ code: 1 });
    expect(relay.output()).toContain(says);
    expect(relay.output()).toContain('Invalid Sage option');
  }
  // Nothing was claimed or published: the message waits for a correctly configured relay.
  await expect(ctx.store.stats()).resolves.toMatchObject({ pending: 1, claimed: 0, sent: 0 });
});
