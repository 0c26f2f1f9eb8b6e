/**
 * A PostgreSQL server of one test's own, which the test may stop, kill -9 and start again: the
 * shared server (scripts/services.sh, used by every other test at the same time) is never touched.
 *
 * It is the cluster scripts/services.sh runs, pointed at a fresh directory and a free port
 * (SAGE_SERVICES_DIR, PGPORT), so it is set up exactly like the shared one (same binaries, config,
 * role sage/sage and database sage) and `start` after a kill -9 removes the stale lock files and
 * waits for the orphaned backends, as the script does for the shared server.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { PgConnection } from './pg';

const run = promisify(execFile);
const SCRIPT = join(__dirname, '..', '..', 'scripts', 'services.sh');

export class PrivatePostgres {
  private constructor(
    /** SAGE_SERVICES_DIR of this server; removed by `destroy()`. */
    readonly dir: string,
    readonly port: number,
  ) {}

  /** Creates (initdb) and starts a server on a free port. */
  static async start(): Promise<PrivatePostgres> {
    // Not mkdtemp: services.sh creates the directory itself, readable by the `postgres` OS user
    // it runs the server as when we are root (a 0700 directory of root's would lock it out).
    const dir = join(tmpdir(), `sage-pg-${process.pid}-${randomBytes(4).toString('hex')}`);
    const server = new PrivatePostgres(dir, await freePort());
    await server.resume();
    return server;
  }

  /** Connection settings for the server's `sage` database, as the shared server's. */
  get connection(): PgConnection {
    return { host: '127.0.0.1', port: this.port, user: 'sage', password: 'sage', database: 'sage' };
  }

  /** Starts the server again (after `stop` or `kill`); resolves once it accepts connections. */
  async resume(): Promise<void> {
    await this.services('start');
  }

  /** A clean, fast shutdown (pg_ctl stop -m fast): sessions are terminated, nothing is lost. */
  async stop(): Promise<void> {
    await this.services('stop');
  }

  /** kill -9 of the postmaster: a crash; the next `resume` runs crash recovery. */
  async kill(): Promise<void> {
    const pidFile = join(this.dir, 'postgres', 'data', 'postmaster.pid');
    const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no postmaster pid in ${pidFile}`);
    process.kill(pid, 'SIGKILL');
  }

  /** Stops the server and removes its directory. Idempotent. */
  async destroy(): Promise<void> {
    try {
      await this.services('stop');
    } finally {
      await rm(this.dir, { recursive: true, force: true });
    }
  }

  private async services(command: 'start' | 'stop'): Promise<void> {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      SAGE_SERVICES_DIR: this.dir,
      PGPORT: String(this.port),
      PGUSER: 'sage',
      PGPASSWORD: 'sage',
      PGDATABASE: 'sage',
    };
    delete env.SAGE_PG_DATA;
    try {
      await run('bash', [SCRIPT, command, 'postgres'], { env });
    } catch (error) {
      const { stderr } = error as { stderr?: string };
      throw new Error(`services.sh ${command} postgres (${this.dir}) failed: ${stderr ?? ''}`, {
        cause: error,
      });
    }
  }
}

/** A TCP port nothing listens on right now (the kernel's pick). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address !== 'object') throw new Error('no port from the kernel');
  return address.port;
}
