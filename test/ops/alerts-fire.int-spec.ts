/**
 * The alerts of ops/prometheus/alerts.yml fire on a real Prometheus (Debian's /usr/bin/prometheus),
 * scraping every second a running order-service (its /metrics; no broker, so no relay in it) and a
 * standalone relay (the sage-relay process, /metrics on HEALTH_PORT) publishing to a NATS server of
 * this test's own:
 *
 * - the relay killed -9 → SageOutboxRelayDown fires; a new relay → it resolves;
 * - NATS stopped while the app writes 5,001 messages → SageOutboxBacklogHigh and
 *   SageOutboxPublishErrorRateHigh fire; NATS back → the backlog drains and SageOutboxBacklogHigh
 *   resolves. (SageOutboxPublishErrorRateHigh resolves once its 5-minute rate window no longer holds
 *   the failures: too long for this test; ops/prometheus/alerts.test.yml proves it resolves.)
 *
 * Prometheus loads a copy of alerts.yml whose `for:` durations are read as seconds instead of
 * minutes (`for: 10m` → `for: 10s`); everything else, expressions included, is identical (checked
 * below). Time windows inside the expressions ([5m], 300 s) are unchanged.
 */
import 'reflect-metadata';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { OutboxRepository } from '@sage/saga-outbox';
import { DataSource } from 'typeorm';
import { parse } from 'yaml';
import { OrderServiceModule } from '../../apps/order-service/src/order-service.module';
import { createSampleApp } from '../../apps/shared/sample-http';
import { sampleTopology } from '../../apps/shared/sample-topology';
import { createTestDatabase, type TestDatabase } from '../support/pg';
import { startRelayProcess, type RelayProcess } from '../support/relay-process';
import { closedPort } from '../support/startup-support';

jest.setTimeout(150_000);

const ROOT = join(__dirname, '..', '..');
const PROMETHEUS = '/usr/bin/prometheus';
const NATS_SERVER = '/usr/sbin/nats-server';

interface PromAlert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
}

/** alerts.yml with every `for: <n>m` read as `for: <n>s`; nothing else changes. */
function scaledRules(yaml: string): string {
  return yaml.replace(/^(\s+for:\s*)(\d+)m\s*$/gm, '$1$2s');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${String(lastError)})`);
    await sleep(200);
  }
}

/** A process of this test's own, its output kept for failure messages. */
function spawnLogged(
  command: string,
  args: string[],
): { child: ChildProcess; output: () => string } {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  return { child, output: () => output };
}

async function stopProcess(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

describe('alerts on a real Prometheus', () => {
  let dir: string;
  let db: TestDatabase;
  let app: INestApplication;
  let relay: RelayProcess | undefined;
  let nats: ChildProcess | undefined;
  let prometheus: ReturnType<typeof spawnLogged> | undefined;
  let natsConfig: string;
  let natsPort: number;
  let natsMonitorPort: number;
  let relayPort: number;
  let promUrl: string;
  const seen: string[] = [];

  const databaseUrl = () => {
    const c = db.connection;
    return `postgres://${encodeURIComponent(c.user)}:${encodeURIComponent(c.password)}@${c.host}:${c.port}/${c.database}`;
  };

  async function startNats(): Promise<void> {
    const server = spawnLogged(NATS_SERVER, ['-c', natsConfig]);
    nats = server.child;
    await until('nats-server to listen', 10_000, async () => {
      if (server.child.exitCode !== null) throw new Error(`nats-server exited: ${server.output()}`);
      const res = await fetch(`http://127.0.0.1:${natsMonitorPort}/healthz?js-enabled-only=true`);
      return res.ok ? true : undefined;
    });
  }

  async function startRelay(): Promise<void> {
    const started = startRelayProcess({
      DATABASE_URL: databaseUrl(),
      SAGE_BROKER_URL: `nats://127.0.0.1:${natsPort}`,
      SAGE_RUN_MIGRATIONS: 'false',
      HEALTH_PORT: String(relayPort),
    });
    relay = started;
    await until('the relay to serve /metrics', 60_000, async () => {
      if (started.child.exitCode !== null)
        throw new Error(`relay exited early:\n${started.output()}`);
      const res = await fetch(`http://127.0.0.1:${relayPort}/metrics`);
      return res.ok && (await res.text()).includes('outbox_relay_running 1') ? true : undefined;
    });
  }

  async function alerts(): Promise<PromAlert[]> {
    const res = await fetch(`${promUrl}/api/v1/alerts`);
    const body = (await res.json()) as { data: { alerts: PromAlert[] } };
    for (const a of body.data.alerts) {
      const entry = `${a.labels.alertname}:${a.state}`;
      if (!seen.includes(entry)) seen.push(entry);
    }
    return body.data.alerts;
  }
  const alert = async (name: string) => (await alerts()).find((a) => a.labels.alertname === name);
  const firing = (name: string, timeoutMs: number) =>
    until(`${name} to fire (seen so far: ${seen.join(', ')})`, timeoutMs, async () => {
      const a = await alert(name);
      return a?.state === 'firing' ? { ...a, observedAt: Date.now() } : undefined;
    });
  const resolved = (name: string, timeoutMs: number) =>
    until(`${name} to resolve`, timeoutMs, async () => ((await alert(name)) ? undefined : true));

  const pending = async (): Promise<number> => {
    const [row] = (await app
      .get(DataSource)
      .query(
        `SELECT count(*)::int AS n FROM sage.outbox_message WHERE status IN ('pending', 'claimed')`,
      )) as { n: number }[];
    return row!.n;
  };

  async function write(count: number, tag: string): Promise<void> {
    const outbox = app.get(OutboxRepository);
    await app.get(DataSource).transaction((manager) =>
      outbox.publish(
        Array.from({ length: count }, (_, i) => ({
          destination: 'alerts.test',
          type: 'alerts.probe',
          key: `${tag}-${i % 16}`,
          payload: { tag, i },
        })),
        { manager },
      ),
    );
  }

  beforeAll(async () => {
    for (const bin of [PROMETHEUS, NATS_SERVER])
      if (!existsSync(bin))
        throw new Error(
          `${bin} is missing: install the Debian packages (bash scripts/promtool.sh --version installs prometheus; bash scripts/services.sh start nats installs nats-server)`,
        );
    dir = mkdtempSync(join(tmpdir(), 'sage-alerts-'));
    [db, natsPort, natsMonitorPort, relayPort] = await Promise.all([
      createTestDatabase({ migrated: false }),
      closedPort(),
      closedPort(),
      closedPort(),
    ]);
    natsConfig = join(dir, 'nats.conf');
    // The monitoring port answers /healthz once JetStream is ready.
    writeFileSync(
      natsConfig,
      `listen: 127.0.0.1:${natsPort}\nhttp: 127.0.0.1:${natsMonitorPort}\njetstream { store_dir: ${JSON.stringify(join(dir, 'nats'))} }\n`,
    );
    await startNats();

    // order-service as main.ts builds it, without a broker: its outbox is the relay's to publish.
    process.env.LOG_LEVEL ??= 'warn';
    app = await createSampleApp(
      OrderServiceModule.register({
        databaseUrl: databaseUrl(),
        topology: sampleTopology(`alerts${process.pid}`),
      }),
      { logger: false },
    );
    await app.listen(0, '127.0.0.1');
    const appTarget = new URL(await app.getUrl()).host.replace('[::1]', '127.0.0.1');
    await startRelay();

    const promPort = await closedPort();
    promUrl = `http://127.0.0.1:${promPort}`;
    writeFileSync(
      join(dir, 'alerts.yml'),
      scaledRules(readFileSync(join(ROOT, 'ops/prometheus/alerts.yml'), 'utf8')),
    );
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }',
        'rule_files: [alerts.yml]',
        'scrape_configs:',
        `  - { job_name: order-service, static_configs: [{ targets: ['${appTarget}'] }] }`,
        `  - { job_name: sage-relay, static_configs: [{ targets: ['127.0.0.1:${relayPort}'] }] }`,
        '',
      ].join('\n'),
    );
    prometheus = spawnLogged(PROMETHEUS, [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
    ]);
    await until('Prometheus to scrape both targets', 30_000, async () => {
      if (prometheus!.child.exitCode !== null)
        throw new Error(`prometheus exited:\n${prometheus!.output()}`);
      const res = await fetch(`${promUrl}/api/v1/targets`);
      const body = (await res.json()) as { data: { activeTargets: { health: string }[] } };
      const targets = body.data.activeTargets;
      return targets.length === 2 && targets.every((t) => t.health === 'up') ? true : undefined;
    });
  });

  afterAll(async () => {
    await relay?.kill();
    await stopProcess(prometheus?.child, 'SIGTERM');
    await app?.close();
    await stopProcess(nats, 'SIGTERM');
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('Prometheus loads alerts.yml with only the `for:` durations scaled', async () => {
    const original = parse(readFileSync(join(ROOT, 'ops/prometheus/alerts.yml'), 'utf8')) as {
      groups: { rules: Record<string, unknown>[] }[];
    };
    const loaded = parse(readFileSync(join(dir, 'alerts.yml'), 'utf8')) as typeof original;
    const rules = (f: typeof original) => f.groups.flatMap((g) => g.rules);
    expect(rules(loaded)).toHaveLength(rules(original).length);
    rules(original).forEach((rule, i) => {
      const copy = rules(loaded)[i]!;
      expect({ ...copy, for: undefined }).toEqual({ ...rule, for: undefined });
      if (rule.for !== undefined) expect(copy.for).toBe((rule.for as string).replace(/m$/, 's'));
    });
    const res = await fetch(`${promUrl}/api/v1/rules`);
    const body = (await res.json()) as { data: { groups: { rules: { name: string }[] }[] } };
    expect(body.data.groups.flatMap((g) => g.rules.map((r) => r.name)).sort()).toEqual(
      rules(original)
        .map((r) => r.alert as string)
        .sort(),
    );
  });

  it('relay killed: SageOutboxRelayDown fires after its `for:`, and resolves with a new relay', async () => {
    // Traffic first, so the relay has published (and the app's gauges are live).
    await write(20, 'warmup');
    await until('the warm-up messages to be published', 30_000, async () =>
      (await pending()) === 0 ? true : undefined,
    );
    await resolved('SageOutboxRelayDown', 20_000); // pending until the first scrapes, at most
    expect(await alerts()).toEqual([]);

    const killedAt = Date.now();
    relay!.child.kill('SIGKILL');
    await relay!.exited;
    const fired = await firing('SageOutboxRelayDown', 30_000);
    // `for: 2s` here: pending first, firing no earlier than 2 s after it became active.
    expect(seen).toContain('SageOutboxRelayDown:pending');
    expect(fired.observedAt - Date.parse(fired.activeAt)).toBeGreaterThanOrEqual(2_000);
    expect(Date.parse(fired.activeAt)).toBeGreaterThanOrEqual(killedAt - 1_000);
    expect(fired.labels).toEqual({ alertname: 'SageOutboxRelayDown', severity: 'critical' });
    // Nothing else: the backlog is empty and nothing failed.
    expect((await alerts()).map((a) => a.labels.alertname)).toEqual(['SageOutboxRelayDown']);

    await startRelay();
    await resolved('SageOutboxRelayDown', 30_000);
  });

  it('broker stopped: SageOutboxBacklogHigh and SageOutboxPublishErrorRateHigh fire; back: the backlog drains and resolves', async () => {
    await stopProcess(nats, 'SIGTERM');
    await write(5_001, 'outage');
    const backlog = await firing('SageOutboxBacklogHigh', 60_000);
    expect(seen).toContain('SageOutboxBacklogHigh:pending');
    expect(backlog.observedAt - Date.parse(backlog.activeAt)).toBeGreaterThanOrEqual(10_000);
    expect(backlog.labels).toEqual({ alertname: 'SageOutboxBacklogHigh', severity: 'warning' });
    // Its failures come from the relay's publish attempts, which back off while the broker is
    // down (up to 10 s a round): under a loaded CI machine the first ones take a while.
    const errors = await firing('SageOutboxPublishErrorRateHigh', 60_000);
    expect(errors.labels).toEqual({
      alertname: 'SageOutboxPublishErrorRateHigh',
      severity: 'warning',
    });
    // The relay itself is fine: it ticks, waiting for the broker.
    expect(await alert('SageOutboxRelayDown')).toBeUndefined();

    await startNats();
    await until('the backlog to drain', 60_000, async () =>
      (await pending()) === 0 ? true : undefined,
    );
    await resolved('SageOutboxBacklogHigh', 30_000);
    expect(await alert('SageOutboxRelayDown')).toBeUndefined();
  });
});
