/**
 * `scripts/services.sh start prometheus` runs Debian's Prometheus natively, as docker-compose.yml's
 * observability profile does in a container: it loads ops/prometheus/alerts.yml and scrapes the
 * targets it is given. Started here in a directory and on a port of its own, scraping a stand-in
 * for a sample service, then stopped.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SCRIPT = join(__dirname, '..', '..', 'scripts', 'services.sh');

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function poll<T>(what: string, read: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe('scripts/services.sh prometheus', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sage-prom-'));
  let sample: Server;
  let env: NodeJS.ProcessEnv;
  let url: string;

  beforeAll(async () => {
    sample = createServer((req, res) => {
      res.writeHead(req.url === '/metrics' ? 200 : 404, { 'content-type': 'text/plain' });
      res.end(req.url === '/metrics' ? 'outbox_relay_running 1\n' : '');
    });
    await new Promise<void>((resolve) => sample.listen(0, '127.0.0.1', resolve));
    const samplePort = (sample.address() as AddressInfo).port;
    const port = await freePort();
    env = {
      ...process.env,
      SAGE_SERVICES_DIR: dir,
      SAGE_PROMETHEUS_PORT: String(port),
      SAGE_PROMETHEUS_TARGETS: `order-service=127.0.0.1:${samplePort}`,
    };
    url = `http://127.0.0.1:${port}`;
    await run('bash', [SCRIPT, 'start', 'prometheus'], { env });
  }, 90_000);

  afterAll(async () => {
    await run('bash', [SCRIPT, 'stop', 'prometheus'], { env }).catch(() => undefined);
    await new Promise((resolve) => sample.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  }, 90_000);

  it('prints its URL for the other tools', async () => {
    const { stdout } = await run('bash', [SCRIPT, 'env', 'prometheus'], { env });
    expect(stdout.trim()).toBe(`export SAGE_PROMETHEUS_URL=${url}`);
  });

  it('loads every alert rule of ops/prometheus/alerts.yml', async () => {
    const body = (await (await fetch(`${url}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string }[] }[] };
    };
    const names = body.data.groups.flatMap((g) => g.rules.map((r) => r.name));
    expect(names).toEqual(expect.arrayContaining(['SageOutboxRelayDown', 'SageBrokerDeadLetters']));
  });

  it('scrapes the sample service it was given, labelled with its app', async () => {
    const value = await poll('the first scrape', async () => {
      const res = await fetch(
        `${url}/api/v1/query?query=${encodeURIComponent('outbox_relay_running')}`,
      );
      const body = (await res.json()) as {
        data: { result: { metric: Record<string, string>; value: [number, string] }[] };
      };
      return body.data.result[0];
    });
    expect(value.metric).toMatchObject({ app: 'order-service', job: 'sage-samples' });
    expect(value.value[1]).toBe('1');
  }, 30_000);

  it('refuses a malformed target, naming the variable', async () => {
    await run('bash', [SCRIPT, 'stop', 'prometheus'], { env });
    await expect(
      run('bash', [SCRIPT, 'start', 'prometheus'], {
        env: { ...env, SAGE_PROMETHEUS_TARGETS: 'order-service' },
      }),
    ).rejects.toMatchObject({ stderr: expect.stringContaining('SAGE_PROMETHEUS_TARGETS') });
  }, 60_000);
});
