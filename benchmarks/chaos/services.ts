/**
 * The chaos run's own PostgreSQL and broker servers: `scripts/services.sh` (the same script CI and
 * the tests use) pointed at a private state directory and private ports, so restarting and killing
 * them never touches the shared servers other people's tests run against. Everything listens on
 * 127.0.0.1 only (services.sh's configuration).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import type { PgTarget } from '../harness/database';
import { ROOT } from './processes';
import type { ChaosBroker } from './topology';

const run = promisify(execFile);
const SCRIPT = path.join(ROOT, 'scripts', 'services.sh');
/** The shared servers' directory (services.sh's default): never ours to restart or delete. */
export const SHARED_SERVICES_DIR = '/var/tmp/sage-services';

export type ServiceName = 'postgres' | ChaosBroker;

export interface ServicePorts {
  postgres: number;
  nats: number;
  natsMonitor: number;
  rabbitmq: number;
  rabbitmqDist: number;
  rabbitmqEpmd: number;
  kafka: number;
  kafkaController: number;
}

/** Eight consecutive ports from `base` (default 27100: below Linux's ephemeral range). */
export function portsFrom(base: number): ServicePorts {
  return {
    postgres: base,
    nats: base + 1,
    natsMonitor: base + 2,
    rabbitmq: base + 3,
    rabbitmqDist: base + 4,
    rabbitmqEpmd: base + 5,
    kafka: base + 6,
    kafkaController: base + 7,
  };
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * The first base from `start` (in steps of 10) whose eight ports are all free on 127.0.0.1, so
 * two chaos runs on one machine (two CI jobs, say) do not collide.
 */
export async function freePortBase(start: number, tries = 30): Promise<number> {
  for (let i = 0; i < tries; i++) {
    const base = start + 10 * i;
    const ports = Object.values(portsFrom(base));
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return base;
  }
  throw new Error(`no 8 free ports on 127.0.0.1 between ${start} and ${start + 10 * tries}`);
}

export class PrivateServices {
  readonly ports: ServicePorts;
  /**
   * The `sage` role's PostgreSQL and RabbitMQ password, made for this run (services.sh sets it on
   * every start): no fixed credential in the code, even for throwaway servers.
   */
  readonly password = randomBytes(16).toString('hex');

  constructor(
    readonly dir: string,
    portBase: number,
  ) {
    if (path.resolve(dir) === SHARED_SERVICES_DIR || !path.isAbsolute(dir))
      throw new Error(
        `--services-dir must be an absolute path other than ${SHARED_SERVICES_DIR}, got ${dir}`,
      );
    this.ports = portsFrom(portBase);
  }

  /** services.sh's environment for our directory and ports (none of the caller's PG* / SAGE_*). */
  private env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!/^(PG|SAGE_)/.test(k)) env[k] = v;
    const p = this.ports;
    return {
      ...env,
      SAGE_SERVICES_DIR: this.dir,
      PGPORT: String(p.postgres),
      PGUSER: 'sage',
      PGPASSWORD: this.password,
      PGDATABASE: 'sage',
      SAGE_NATS_PORT: String(p.nats),
      SAGE_NATS_MONITOR_PORT: String(p.natsMonitor),
      SAGE_RABBITMQ_PASSWORD: this.password,
      SAGE_RABBITMQ_PORT: String(p.rabbitmq),
      SAGE_RABBITMQ_DIST_PORT: String(p.rabbitmqDist),
      SAGE_RABBITMQ_EPMD_PORT: String(p.rabbitmqEpmd),
      SAGE_KAFKA_PORT: String(p.kafka),
      SAGE_KAFKA_CONTROLLER_PORT: String(p.kafkaController),
    };
  }

  private async script(command: string, ...services: ServiceName[]): Promise<string> {
    try {
      const { stdout, stderr } = await run('bash', [SCRIPT, command, ...services], {
        cwd: ROOT,
        env: this.env(),
        maxBuffer: 10 * 1024 * 1024,
      });
      return `${stderr}${stdout}`.trim();
    } catch (error) {
      const e = error as { stderr?: string; stdout?: string; message: string };
      throw new Error(
        `scripts/services.sh ${command} ${services.join(' ')} failed: ${e.message}\n${e.stderr ?? ''}${e.stdout ?? ''}`,
      );
    }
  }

  start(...services: ServiceName[]): Promise<string> {
    return this.script('start', ...services);
  }

  stop(...services: ServiceName[]): Promise<string> {
    return this.script('stop', ...services);
  }

  /** A graceful restart (PostgreSQL: `pg_ctl stop -m fast`, then start). */
  restart(service: ServiceName): Promise<string> {
    return this.script('restart', service);
  }

  /**
   * kill -9 of the postmaster, then services.sh start: it waits for the orphaned backends, removes
   * the stale lock files and starts the server, which runs crash recovery.
   */
  async killPostgres(): Promise<string> {
    const pidFile = path.join(this.dir, 'postgres', 'data', 'postmaster.pid');
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 1) throw new Error(`no postmaster pid in ${pidFile}`);
    process.kill(pid, 'SIGKILL');
    return this.start('postgres');
  }

  /** Stops every server and deletes their data (this run's only); the logs directory stays. */
  async destroy(): Promise<void> {
    await this.stop('kafka', 'rabbitmq', 'nats', 'postgres').catch(() => undefined);
    for (const sub of ['postgres', 'kafka', 'rabbitmq', 'nats', '.lock'])
      rmSync(path.join(this.dir, sub), { recursive: true, force: true });
  }

  postgresUrl(database: string): string {
    return `postgres://sage:${this.password}@127.0.0.1:${this.ports.postgres}/${database}`;
  }

  /** Our PostgreSQL as the harness's target for `database` (admin database `sage`). */
  pgTarget(database: string): PgTarget {
    const { postgres: port } = this.ports;
    return {
      host: '127.0.0.1',
      port,
      user: 'sage',
      password: this.password,
      adminDatabase: 'sage',
      database,
    };
  }

  /** Kafka `host:port`, RabbitMQ `amqp://…`, NATS `nats://…` of our server. */
  brokerAddress(kind: ChaosBroker): string {
    switch (kind) {
      case 'kafka':
        return `127.0.0.1:${this.ports.kafka}`;
      case 'rabbitmq':
        return `amqp://sage:${this.password}@127.0.0.1:${this.ports.rabbitmq}`;
      case 'nats':
        return `nats://127.0.0.1:${this.ports.nats}`;
    }
  }
}
