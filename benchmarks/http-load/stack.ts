/**
 * The sample stack under load, started and stopped: order-service, payment-service and
 * shipping-service as separate Node processes running their own main.ts (ts-node, as `npm run
 * sage-relay` runs the relay), each on a database of its own created empty for the run on the
 * PostgreSQL of PGHOST/PGPORT and migrated by the service at startup (its MIGRATIONS provider,
 * runMigrationsLocked, as in production), on a topology prefix of the run's own on the broker.
 * Everything on 127.0.0.1. Whatever happens, `stop()` leaves no process behind.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { ROOT, childEnv, killAllChildren, spawnTs, type ChildHandle } from '../chaos/processes';
import type { LoadBroker } from './options';

export const SERVICE_NAMES = ['order-service', 'payment-service', 'shipping-service'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

export interface RunningService {
  name: ServiceName;
  pid: number;
  /** http://127.0.0.1:port */
  url: string;
  database: string;
  handle: ChildHandle;
}

/** Enough stock and carrier slots that no order of a bounded run fails for want of them. */
const PLENTY = 1_000_000_000;
const READY_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 15_000;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/** The PostgreSQL server of the environment (scripts/services.sh's by default). */
export function pgServer(env: NodeJS.ProcessEnv = process.env): pg.ClientConfig {
  return {
    host: env.PGHOST ?? '127.0.0.1',
    port: Number(env.PGPORT ?? 54329),
    user: env.PGUSER ?? 'sage',
    password: env.PGPASSWORD ?? 'sage',
    database: env.PGDATABASE ?? 'sage',
  };
}

/** The broker URL the services get as SAGE_BROKER_URL, from scripts/services.sh's variables. */
export function brokerUrl(broker: LoadBroker, env: NodeJS.ProcessEnv = process.env): string {
  switch (broker) {
    case 'rabbitmq':
      return env.SAGE_RABBITMQ_URL ?? 'amqp://sage:sage@127.0.0.1:56729';
    case 'kafka':
      return `kafka://${env.SAGE_KAFKA_BROKERS ?? '127.0.0.1:19092'}`;
    case 'nats':
      return env.SAGE_NATS_URL ?? 'nats://127.0.0.1:42229';
  }
}

/** Throws unless every host the run talks to is this machine's loopback. */
export function assertLoopback(what: string, hosts: readonly string[]): void {
  for (const host of hosts)
    if (!LOOPBACK.has(host))
      throw new Error(
        `${what} is on ${JSON.stringify(host)}: the HTTP load run only talks to 127.0.0.1; point it at the servers of scripts/services.sh`,
      );
}

function brokerHosts(url: string): string[] {
  if (url.startsWith('kafka://'))
    return url
      .slice('kafka://'.length)
      .split('?')[0]!
      .split(',')
      .map((b) => b.replace(/:\d+$/, ''));
  return [new URL(url).hostname];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Where the stack's databases and broker are: the environment's servers or a private pair. */
export interface StackServers {
  pg: pg.ClientConfig;
  brokerUrl: string;
}

export class SampleStack {
  readonly services = new Map<ServiceName, RunningService>();
  readonly databases: Record<ServiceName, string>;
  readonly logDir: string;
  /** Topics, queues, subjects and consumer groups of this run only (SAGE_DESTINATION_PREFIX). */
  readonly destinationPrefix: string;
  readonly pg: pg.ClientConfig;
  readonly brokerUrl: string;
  private readonly created: string[] = [];

  constructor(
    readonly runId: string,
    readonly broker: LoadBroker,
    servers: StackServers,
    private readonly logLevel: string,
    private readonly say: (line: string) => void,
  ) {
    this.pg = servers.pg;
    this.brokerUrl = servers.brokerUrl;
    assertLoopback('PostgreSQL (PGHOST)', [String(this.pg.host)]);
    assertLoopback(`the ${broker} broker`, brokerHosts(this.brokerUrl));
    this.destinationPrefix = `http-load-${this.runId}`;
    this.databases = {
      'order-service': `sage_http_load_${this.runId}_order`,
      'payment-service': `sage_http_load_${this.runId}_payment`,
      'shipping-service': `sage_http_load_${this.runId}_shipping`,
    };
    this.logDir = path.join(process.env.TMPDIR ?? '/tmp', `sage-http-load-${this.runId}`);
  }

  databaseUrl(database: string): string {
    const c = this.pg;
    return `postgres://${encodeURIComponent(String(c.user))}:${encodeURIComponent(String(c.password))}@${c.host}:${c.port}/${database}`;
  }

  /** Fresh databases, then order-service (its database holds the data-subject keys), then the others. */
  async start(): Promise<void> {
    mkdirSync(this.logDir, { recursive: true });
    await this.admin(async (client) => {
      for (const db of Object.values(this.databases)) {
        await client.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
        await client.query(`CREATE DATABASE ${db}`);
        this.created.push(db);
      }
    });
    // The master keys every service encrypts and decrypts personal data with: random, this run's.
    const encryptionKeys = `load=${randomBytes(32).toString('base64')}`;
    await this.startService('order-service', encryptionKeys);
    await this.onDatabase('order-service', (c) =>
      c.query(
        `INSERT INTO orders.stock (sku, available) VALUES ('widget', $1)
         ON CONFLICT (sku) DO UPDATE SET available = EXCLUDED.available`,
        [PLENTY],
      ),
    );
    await Promise.all([
      this.startService('payment-service', encryptionKeys),
      this.startService('shipping-service', encryptionKeys),
    ]);
    await this.onDatabase('shipping-service', (c) =>
      c.query(`UPDATE shipping.carrier_capacity SET available = $1`, [PLENTY]),
    );
  }

  url(name: ServiceName): string {
    const s = this.services.get(name);
    if (!s) throw new Error(`${name} is not running`);
    return s.url;
  }

  /** Runs `work` on a connection to `service`'s database. */
  async onDatabase<T>(service: ServiceName, work: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client({
      ...this.pg,
      database: this.databases[service],
      application_name: 'sage-http-load',
    });
    await client.connect();
    try {
      return await work(client);
    } finally {
      await client.end();
    }
  }

  /** Every service asked to stop (SIGTERM: drains), killed -9 after a while; databases dropped. */
  async stop(keepDatabases: boolean): Promise<void> {
    await Promise.all(
      [...this.services.values()].map(async ({ handle }) => {
        if (!handle.alive) return;
        const timer = setTimeout(() => void handle.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await handle.kill('SIGTERM');
        clearTimeout(timer);
      }),
    );
    await killAllChildren();
    if (keepDatabases) {
      if (this.created.length) this.say(`databases kept: ${this.created.join(', ')}`);
      return;
    }
    await this.admin(async (client) => {
      for (const db of this.created.splice(0))
        await client.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    });
  }

  private async startService(name: ServiceName, encryptionKeys: string): Promise<void> {
    const port = await freePort();
    const env = childEnv({
      HOST: '127.0.0.1',
      PORT: String(port),
      DATABASE_URL: this.databaseUrl(this.databases[name]),
      SAGE_BROKER_URL: this.brokerUrl,
      SAGE_DESTINATION_PREFIX: this.destinationPrefix,
      SAGE_ENCRYPTION_KEYS: encryptionKeys,
      LOG_LEVEL: this.logLevel,
      ...(name === 'order-service'
        ? {}
        : { SAGE_SUBJECT_KEYS_DATABASE_URL: this.databaseUrl(this.databases['order-service']) }),
    });
    const handle = spawnTs(
      name,
      path.join(ROOT, 'apps', name, 'src', 'main.ts'),
      [],
      env,
      path.join(this.logDir, `${name}.log`),
    );
    const service: RunningService = {
      name,
      pid: handle.pid,
      url: `http://127.0.0.1:${port}`,
      database: this.databases[name],
      handle,
    };
    this.services.set(name, service);
    const started = Date.now();
    await this.ready(service);
    this.say(`${name} ready (pid ${handle.pid}, ${service.url}) in ${Date.now() - started} ms`);
  }

  /** Polls `/health/ready` until it answers 200; fails when the process exits or time runs out. */
  private async ready({ name, url, handle }: RunningService): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (!handle.alive)
        throw new Error(
          `${name} exited while starting (log: ${this.logDir}):\n${handle.recentOutput()}`,
        );
      try {
        const res = await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(2_000) });
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline)
        throw new Error(
          `${name} not ready within ${READY_TIMEOUT_MS} ms (log: ${this.logDir}):\n${handle.recentOutput()}`,
        );
      await sleep(250);
    }
  }

  private async admin(work: (client: pg.Client) => Promise<void>): Promise<void> {
    const client = new pg.Client({ ...this.pg, application_name: 'sage-http-load-admin' });
    await client.connect();
    try {
      await work(client);
    } finally {
      await client.end();
    }
  }
}
