/**
 * Backup and point-in-time restore of the DR drill's private PostgreSQL cluster, done the way an
 * operator does it (docs/disaster-recovery.md): continuous WAL archiving (`archive_mode = on`, an
 * `archive_command` gzipping each segment into an archive directory, `archive_timeout` bounding
 * how stale the archive can be), a base backup with `pg_basebackup` taken while traffic runs, and a
 * restore of that backup into a fresh data directory with `restore_command` + `recovery_target_time`
 * + `recovery_target_action = 'promote'`.
 *
 * The cluster is the one benchmarks/chaos/services.ts starts with scripts/services.sh in a private
 * directory; its data directory is `<dir>/postgres/data`, owned by the OS user the server runs as
 * (`postgres` when we are root). Only this run's directory is ever touched.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { appendFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import type { PrivateServices } from '../chaos/services';

const run = promisify(execFile);

/** The OS user owning the cluster (services.sh: `postgres` when root, else us). */
function osUser(): { name: string; uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const name = process.env.SAGE_PG_OS_USER ?? 'postgres';
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) throw new Error(`no OS user ${name} in /etc/passwd`);
  return { name, uid: Number(uid), gid: Number(gid) };
}

/** The newest installed PostgreSQL bin directory (services.sh's choice for a new cluster). */
function pgBin(): string {
  if (process.env.SAGE_PG_BIN) return process.env.SAGE_PG_BIN;
  const versions = readdirSync('/usr/lib/postgresql')
    .filter((v) => existsSync(`/usr/lib/postgresql/${v}/bin/pg_basebackup`))
    .sort((a, b) => Number(a) - Number(b));
  const newest = versions.at(-1);
  if (!newest) throw new Error('no /usr/lib/postgresql/*/bin/pg_basebackup: install postgresql');
  return `/usr/lib/postgresql/${newest}/bin`;
}

/** Paths go into postgresql.auto.conf and shell commands: keep them to plain characters. */
function plainPath(p: string): string {
  if (!/^[A-Za-z0-9/._-]+$/.test(p)) throw new Error(`path ${p} must be [A-Za-z0-9/._-] only`);
  return p;
}

export interface BaseBackup {
  dir: string;
  startedAt: number;
  endedAt: number;
}

export class PitrCluster {
  readonly archiveDir: string;
  readonly backupsDir: string;
  readonly dataDir: string;
  private readonly bin = pgBin();
  private readonly owner = osUser();

  constructor(private readonly services: PrivateServices) {
    this.archiveDir = plainPath(path.join(services.dir, 'wal-archive'));
    this.backupsDir = plainPath(path.join(services.dir, 'backups'));
    this.dataDir = plainPath(path.join(services.dir, 'postgres', 'data'));
  }

  private url(database = 'sage'): string {
    return this.services.postgresUrl(database);
  }

  private ownDir(dir: string): void {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (this.owner) chownSync(dir, this.owner.uid, this.owner.gid);
  }

  private async sql(text: string, database = 'sage'): Promise<pg.QueryResultRow[]> {
    const client = new pg.Client({ connectionString: this.url(database) });
    await client.connect();
    try {
      return (await client.query<pg.QueryResultRow>(text)).rows;
    } finally {
      await client.end();
    }
  }

  /**
   * Turns on WAL archiving (a restart: archive_mode needs one) and lets `pg_basebackup` in over
   * TCP (services.sh's pg_hba.conf has no `replication` line; it is rewritten on each start, so
   * this is redone after every start).
   */
  async enableArchiving(archiveTimeoutSeconds: number): Promise<void> {
    this.ownDir(this.archiveDir);
    this.ownDir(this.backupsDir);
    const a = this.archiveDir;
    await this.sql(`ALTER SYSTEM SET wal_level = 'replica'`);
    await this.sql(`ALTER SYSTEM SET archive_mode = 'on'`);
    await this.sql(
      `ALTER SYSTEM SET archive_command = 'test ! -f ${a}/%f && gzip -1 < %p > ${a}/%f.tmp && mv ${a}/%f.tmp ${a}/%f'`,
    );
    await this.sql(`ALTER SYSTEM SET archive_timeout = '${Math.round(archiveTimeoutSeconds)}s'`);
    await this.services.restart('postgres');
    await this.allowReplication();
  }

  private async allowReplication(): Promise<void> {
    await appendFile(
      path.join(this.dataDir, 'pg_hba.conf'),
      'host    replication  all  127.0.0.1/32  scram-sha-256\n',
    );
    await this.sql(`SELECT pg_reload_conf()`);
  }

  /** `pg_basebackup` (plain format, WAL streamed alongside, fast checkpoint) while traffic runs. */
  async baseBackup(): Promise<BaseBackup> {
    const dir = path.join(this.backupsDir, `base-${Date.now()}`);
    const startedAt = Date.now();
    const args = [
      `${this.bin}/pg_basebackup`,
      ...['-h', '127.0.0.1', '-p', String(this.services.ports.postgres), '-U', 'sage'],
      ...['-D', dir, '-X', 'stream', '-c', 'fast', '--no-password'],
    ];
    const command = this.owner ? ['runuser', '-u', this.owner.name, '--', ...args] : args;
    await run(command[0]!, command.slice(1), {
      cwd: '/',
      env: { PATH: process.env.PATH, PGPASSWORD: this.services.password, LC_ALL: 'C' },
    });
    return { dir, startedAt, endedAt: Date.now() };
  }

  /** Segments in the archive so far. */
  archivedSegments(): number {
    return readdirSync(this.archiveDir).filter((f) => /^[0-9A-F]{24}$/.test(f)).length;
  }

  /**
   * kill -9 of the postmaster, and the wait for its orphaned backends to notice and exit (they
   * keep running, and writing, until they do). Returns the moment of the kill.
   */
  async crash(): Promise<number> {
    const pid = Number(
      readFileSync(path.join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0],
    );
    if (!Number.isInteger(pid) || pid <= 1) throw new Error(`no postmaster pid in ${this.dataDir}`);
    process.kill(pid, 'SIGKILL');
    const at = Date.now();
    const until = at + 30_000;
    while (this.processesIn(this.dataDir).length > 0) {
      if (Date.now() > until) throw new Error(`backends of ${this.dataDir} still alive after 30 s`);
      await sleep(100);
    }
    return at;
  }

  private processesIn(dir: string): number[] {
    const pids: number[] = [];
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p)) continue;
      try {
        if (readlinkSync(`/proc/${p}/cwd`) === dir) pids.push(Number(p));
      } catch {
        // gone, or not ours to look at
      }
    }
    return pids;
  }

  /**
   * The restore: the crashed data directory is set aside (`data.crashed`), the base backup copied
   * into a fresh `data`, recovery configured (`recovery.signal`; restore_command reading the
   * archive; the target time; promote at the target; `hot_standby = off` so that nobody connects
   * before the promotion), and the server started; resolves once it accepts writes.
   */
  async restore(backup: BaseBackup, targetTime: Date): Promise<void> {
    await rename(this.dataDir, `${this.dataDir}.crashed`);
    await run('cp', ['-a', backup.dir, this.dataDir]);
    const a = this.archiveDir;
    await appendFile(
      path.join(this.dataDir, 'postgresql.auto.conf'),
      [
        `restore_command = 'gunzip < ${a}/%f > %p'`,
        // recovery_target_time takes no ISO 'T'/'Z' form: '2026-01-02 03:04:05.678+00'.
        `recovery_target_time = '${targetTime.toISOString().replace('T', ' ').replace('Z', '+00')}'`,
        `recovery_target_action = 'promote'`,
        `hot_standby = 'off'`,
        '',
      ].join('\n'),
    );
    const signal = path.join(this.dataDir, 'recovery.signal');
    await writeFile(signal, '');
    if (this.owner) chownSync(signal, this.owner.uid, this.owner.gid);
    await this.services.start('postgres');
    await this.allowReplication();
    const [row] = await this.sql(`SELECT pg_is_in_recovery() AS recovering`);
    if (row?.recovering !== false) throw new Error('the restored server is still in recovery');
    // The recovery settings did their job; a later restart must not see them.
    for (const setting of ['restore_command', 'recovery_target_time', 'recovery_target_action'])
      await this.sql(`ALTER SYSTEM RESET ${setting}`);
    await this.sql(`ALTER SYSTEM RESET hot_standby`);
  }

  /** The server log (recovery's "recovery stopping before commit of transaction ..." lines). */
  recoveryLog(): string[] {
    const log = path.join(this.services.dir, 'postgres', 'postgres.log');
    return readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) =>
        /recovery stopping|restored log file|selected new timeline|archive recovery complete|last completed transaction/.test(
          l,
        ),
      );
  }
}
