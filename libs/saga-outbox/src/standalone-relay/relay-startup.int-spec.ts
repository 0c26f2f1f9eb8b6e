/**
 * `sage-relay` at start when PostgreSQL is not there: it retries (SAGE_DB_RETRY_ATTEMPTS ×
 * SAGE_DB_RETRY_DELAY_MS) instead of exiting at once, then exits 1 with one line naming the
 * address and DATABASE_URL, never the password; a database that comes up meanwhile is used.
 */
import { createServer, type AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { closedPort } from '@test/support/startup-support';
import { TcpProxy } from '@test/support/tcp-proxy';
import { waitUntil } from '../testing/async';

jest.setTimeout(60_000);

const ROOT = join(__dirname, '..', '..', '..', '..');
const ENTRY = 'libs/saga-outbox/src/bin/sage-relay.ts';
const PASSWORD = 's3cret-pw';

function startRelay(env: Record<string, string>) {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, TS_NODE_TRANSPILE_ONLY: 'true', ...env };
  const child = spawn(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', '-r', 'tsconfig-paths/register', ENTRY],
    { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

describe('sage-relay: PostgreSQL at start', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db?.drop());

  it('retries, then exits 1 with one line naming the address and DATABASE_URL, never the password', async () => {
    const port = await closedPort();
    const relay = startRelay({
      DATABASE_URL: `postgres://sage:${PASSWORD}@127.0.0.1:${port}/orders`,
      SAGE_BROKER_URL: 'memory://',
      SAGE_DB_RETRY_ATTEMPTS: '2',
      SAGE_DB_RETRY_DELAY_MS: '100',
    });
    expect(await relay.exited).toBe(1);
    const output = relay.output();
    expect(
      output.match(/cannot connect to PostgreSQL at .*; attempt \d\/3, retrying in 100 ms/g),
    ).toHaveLength(2);
    expect(output).toContain(
      `Sage cannot connect to PostgreSQL at 127.0.0.1:${port}/orders (DATABASE_URL) after 3 attempts: connect ECONNREFUSED 127.0.0.1:${port}. ` +
        'Check that PostgreSQL is running and reachable there, and DATABASE_URL; startup tried 3 time(s), 100 ms apart (options SAGE_DB_RETRY_ATTEMPTS, SAGE_DB_RETRY_DELAY_MS).',
    );
    expect(output).not.toContain(PASSWORD);
  });

  it('uses a database that comes up during the retries', async () => {
    const c = db.connection;
    // Until PostgreSQL "comes up", a listener that drops every connection and counts them: the
    // test opens the way only once the relay has really failed twice (its startup time varies).
    let attempts = 0;
    const refusing = createServer((socket) => {
      attempts++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
    const port = (refusing.address() as AddressInfo).port;
    const proxy = new TcpProxy({ host: c.host, port: c.port }, { port });
    const relay = startRelay({
      DATABASE_URL: `postgres://${c.user}:${c.password}@127.0.0.1:${port}/${c.database}`,
      SAGE_BROKER_URL: 'memory://',
      SAGE_DB_RETRY_ATTEMPTS: '100',
      SAGE_DB_RETRY_DELAY_MS: '200',
    });
    try {
      await waitUntil(() => attempts >= 2, 'two failed connection attempts', 40_000, 50);
      expect(relay.child.exitCode).toBeNull();
      await new Promise<void>((resolve) => refusing.close(() => resolve()));
      await proxy.start();
      await waitUntil(
        () => relay.output().includes('outbox relay running'),
        'the relay to run',
        40_000,
        50,
      );
      expect(relay.output()).toMatch(
        /cannot connect to PostgreSQL at 127\.0\.0\.1:\d+\/\w+ \(option postgres\.url\): .+; attempt 1\/101, retrying in 200 ms/,
      );
      relay.child.kill('SIGTERM');
      expect(await relay.exited).toBe(0);
    } finally {
      if (relay.child.exitCode === null) relay.child.kill('SIGKILL');
      if (refusing.listening) refusing.close();
      await proxy.stop();
    }
  });
});
