/**
 * Sage's disaster-recovery drill (issue 18; docs/disaster-recovery.md): not part of `npm test`; CI
 * runs it at the small size.
 *
 *   npm run dr:drill                 # full size (about 2 minutes)
 *   npm run dr:drill -- --small      # CI size (about 1.5 minutes)
 *   npm run dr:drill -- --json out.json
 *
 * On a private PostgreSQL cluster and a private RabbitMQ (scripts/services.sh in a directory of
 * this run's, free ports; the shared servers are never touched; RabbitMQ rather than NATS because
 * JetStream's own `Nats-Msg-Id` duplicate window would drop the re-published messages before the
 * inbox sees them, and the drill is about the inbox), the chaos run's two
 * services (benchmarks/chaos/workers): service A commits business transactions with outbox
 * messages and starts sagas whose steps emit messages; a standalone `sage-relay` publishes A's
 * outbox; service B applies each message through its inbox, logging one `chaos.b_effect` row per
 * application (no unique constraint: a duplicate shows up). Both databases live in the one
 * cluster, so one restore brings both back to the same instant.
 *
 * The drill: WAL archiving on; traffic; `pg_basebackup` during traffic; more traffic; kill -9 of
 * the postmaster (and of every service: the "region" is gone); restore of the base backup with
 * recovery_target_time = crash - `--lose` seconds; the DR procedure (scripts/dr-republish.sh:
 * re-publish what A sent shortly before the target, which B may not have applied in the restored
 * state); services restarted; traffic again; drain; then the checks and RPO/RTO.
 */
import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import { prepareDatabase, type PgTarget } from '../harness/database';
import { ROOT, Supervised, childEnv, killAllChildren, spawnTs } from '../chaos/processes';
import { SERVICE_A_DDL, SERVICE_B_DDL, CONSUMERS } from '../chaos/schema';
import { PrivateServices, freePortBase } from '../chaos/services';
import { relayBrokerUrl } from '../chaos/topology';
import type { ServiceAConfig } from '../chaos/workers/service-a';
import type { ServiceBConfig } from '../chaos/workers/service-b';
import { PitrCluster } from './pitr';

const runFile = promisify(execFile);

interface DrillSize {
  /** Traffic before the base backup, seconds. */
  beforeBackup: number;
  /** Traffic between the base backup and the crash. */
  afterBackup: number;
  /** The restore target is this many seconds before the crash (the traffic given up). */
  lose: number;
  /** Traffic after the services are back, before the drain. */
  afterRestore: number;
  txPerSec: number;
  archiveTimeout: number;
  /** How far before the target the DR procedure re-publishes sent messages. */
  republishWindow: number;
}

const SIZES: Record<'full' | 'small', DrillSize> = {
  full: {
    beforeBackup: 8,
    afterBackup: 30,
    lose: 15,
    afterRestore: 10,
    txPerSec: 60,
    archiveTimeout: 2,
    republishWindow: 10,
  },
  small: {
    beforeBackup: 5,
    afterBackup: 15,
    lose: 6,
    afterRestore: 5,
    txPerSec: 40,
    archiveTimeout: 2,
    republishWindow: 10,
  },
};
const READY_TIMEOUT_MS = 60_000;
const DRAIN_TIMEOUT_MS = 60_000;
const HARD_DEADLINE_MS = 175_000;

const log = (line: string): void => console.log(line);
const t0 = Date.now();
const say = (line: string): void => log(`[dr ${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`);

function parseArgs(argv: string[]): { size: 'full' | 'small'; json?: string; keep: boolean } {
  const out: { size: 'full' | 'small'; json?: string; keep: boolean } = {
    size: 'full',
    keep: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--small') out.size = 'small';
    else if (a === '--keep') out.keep = true;
    else if (a === '--json' && argv[i + 1]) out.json = argv[++i];
    else throw new Error(`unknown argument ${a}; usage: dr:drill [--small] [--json file] [--keep]`);
  }
  return out;
}

async function query<T extends pg.QueryResultRow>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

export interface DrillResult {
  format: 'sage-dr-drill/1';
  size: 'full' | 'small';
  ok: boolean;
  failures: string[];
  timeline: Record<string, string>;
  measured: {
    /** Crash minus the commit time of the last transaction the restored database has (s). */
    rpoSeconds: number;
    /** Crash to the first new message committed after the restore being applied by B (s). */
    rtoSeconds: number;
    /** Crash to the restored server accepting writes (s): the part of the RTO the restore takes. */
    restoreSeconds: number;
    baseBackupSeconds: number;
    archivedSegments: number;
  };
  counts: Record<string, number>;
  recoveryLog: string[];
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const size = SIZES[args.size];
  const runId = `${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}-${process.pid}`;
  const services = new PrivateServices(
    path.join(process.env.SAGE_DR_DIR ?? '/tmp', `sage-dr-${runId}`),
    await freePortBase(27_300),
  );
  mkdirSync(services.dir, { recursive: true, mode: 0o755 });
  const logs = path.join(services.dir, 'logs');
  mkdirSync(logs, { recursive: true });
  const failures: string[] = [];
  const timeline: Record<string, string> = {};
  const mark = (name: string, at = Date.now()): number => {
    timeline[name] = new Date(at).toISOString();
    return at;
  };

  const watchdog = setTimeout(() => {
    console.error('dr drill: hard deadline passed; killing everything');
    void killAllChildren()
      .then(() => (args.keep ? undefined : services.destroy()))
      .finally(() => process.exit(1));
  }, HARD_DEADLINE_MS);
  watchdog.unref();

  say(`size ${args.size}; private servers in ${services.dir}`);
  await services.start('postgres', 'rabbitmq');
  const cluster = new PitrCluster(services);
  await cluster.enableArchiving(size.archiveTimeout);
  const target = (database: string): PgTarget => services.pgTarget(database);
  const urlA = services.postgresUrl('dr_a');
  const urlB = services.postgresUrl('dr_b');
  for (const [db, ddl] of [
    ['dr_a', SERVICE_A_DDL],
    ['dr_b', SERVICE_B_DDL],
  ] as const) {
    await prepareDatabase(target(db));
    for (const statement of ddl) await query(services.postgresUrl(db), statement);
  }

  // ------------------------------------------------------------------ the two services + relay
  const brokerAddress = services.brokerAddress('rabbitmq');
  let producing = false;
  const consumer = new Supervised(
    'service-b',
    () => {
      const config: ServiceBConfig = {
        name: 'service-b',
        databaseUrl: urlB,
        broker: 'rabbitmq',
        brokerAddress,
        inboxMaxAttempts: 20,
        poolSize: 8,
      };
      return spawnTs(
        'service-b',
        path.join(ROOT, 'benchmarks', 'chaos', 'workers', 'service-b.ts'),
        [JSON.stringify(config)],
        childEnv({}),
        path.join(logs, 'service-b.log'),
      );
    },
    (h) => h.waitForEvent('ready', READY_TIMEOUT_MS),
    say,
  );
  const relay = new Supervised(
    'relay',
    () =>
      spawnTs(
        'relay',
        path.join(ROOT, 'libs', 'saga-outbox', 'src', 'bin', 'sage-relay.ts'),
        [],
        childEnv({
          DATABASE_URL: urlA,
          SAGE_BROKER_URL: relayBrokerUrl('rabbitmq', brokerAddress, 'dr-relay'),
          SAGE_RUN_MIGRATIONS: 'false',
        }),
        path.join(logs, 'relay.log'),
      ),
    (h) => h.waitForText('outbox relay running', READY_TIMEOUT_MS),
    say,
  );
  const producer = new Supervised(
    'service-a',
    (incarnation) => {
      const config: ServiceAConfig = {
        name: `service-a-${incarnation}`,
        databaseUrl: urlA,
        seed: 1000 + incarnation,
        keys: 200,
        perTx: 2,
        txPerSec: size.txPerSec,
        concurrency: 4,
        sagaEvery: 4,
        sagaFailEvery: 5,
        leaseMs: 5_000,
        poolSize: 8,
      };
      return spawnTs(
        'service-a',
        path.join(ROOT, 'benchmarks', 'chaos', 'workers', 'service-a.ts'),
        [JSON.stringify(config)],
        childEnv({}),
        path.join(logs, 'service-a.log'),
      );
    },
    async (h) => {
      await h.waitForEvent('ready', READY_TIMEOUT_MS);
      if (producing) h.send('go');
    },
    say,
  );
  const everyone = [consumer, relay, producer];
  const stopAll = async (): Promise<void> => {
    await Promise.all(everyone.map((s) => s.stop((h) => void h.kill('SIGKILL'), 5_000)));
  };

  const counts: Record<string, number> = {};
  let rpoSeconds = NaN;
  let rtoSeconds = NaN;
  let restoreSeconds = NaN;
  let baseBackupSeconds = NaN;
  let recoveryLog: string[] = [];
  try {
    say('starting service B, the relay and service A');
    await Promise.all(everyone.map((s) => s.start()));
    producing = true;
    producer.handle?.send('go');
    mark('trafficStarted');
    await sleep(size.beforeBackup * 1000);

    // ---------------------------------------------------------------- base backup under traffic
    say('pg_basebackup during traffic');
    const backup = await cluster.baseBackup();
    mark('baseBackupStarted', backup.startedAt);
    mark('baseBackupEnded', backup.endedAt);
    baseBackupSeconds = (backup.endedAt - backup.startedAt) / 1000;
    say(`base backup done in ${baseBackupSeconds.toFixed(1)} s; traffic goes on`);
    await sleep(size.afterBackup * 1000);

    // ---------------------------------------------------------------- the disaster
    const [before] = (await query<{ n: number }>(
      urlA,
      `SELECT count(*)::int AS n FROM chaos.a_message`,
    )) as [{ n: number }];
    counts.committedBeforeCrashAtLeast = before.n;
    const crashAt = await cluster.crash();
    mark('crash', crashAt);
    await Promise.all(everyone.map((s) => s.kill()));
    producing = false;
    counts.archivedSegmentsAtCrash = cluster.archivedSegments();
    say(
      `postmaster and services killed (-9); ${counts.archivedSegmentsAtCrash} WAL segments archived`,
    );

    // ---------------------------------------------------------------- restore to a point in time
    const targetTime = new Date(crashAt - size.lose * 1000);
    if (targetTime.getTime() <= backup.endedAt + 1000)
      throw new Error('the recovery target falls inside the base backup: lengthen --afterBackup');
    mark('recoveryTarget', targetTime.getTime());
    say(`restoring the base backup to ${targetTime.toISOString()} (crash - ${size.lose} s)`);
    await cluster.restore(backup, targetTime);
    const restoredAt = mark('restoredAcceptingWrites');
    restoreSeconds = (restoredAt - crashAt) / 1000;
    recoveryLog = cluster.recoveryLog();

    // What the restored state holds, before anything runs on it.
    const [restoredA] = (await query<{ n: number; last: Date | null; sagas_open: number }>(
      urlA,
      `SELECT count(*)::int AS n, max(committed_at) AS last,
              (SELECT count(*)::int FROM sage.saga_instance
                WHERE status NOT IN ('completed', 'compensated', 'failed')) AS sagas_open
       FROM chaos.a_message`,
    )) as [{ n: number; last: Date | null; sagas_open: number }];
    counts.restoredMessages = restoredA.n;
    counts.lostCommittedMessagesAtLeast = before.n - restoredA.n;
    counts.sagasInFlightAfterRestore = restoredA.sagas_open;
    if (!restoredA.last) throw new Error('the restored database has no messages');
    rpoSeconds = (crashAt - restoredA.last.getTime()) / 1000;
    mark('lastCommitRestored', restoredA.last.getTime());
    if (restoredA.last.getTime() > targetTime.getTime())
      failures.push(`restored a commit after the target (${restoredA.last.toISOString()})`);

    // The restored server's transaction ids continue above every outbox row's (the claim scans
    // oldest txid first: new rows sort after restored ones).
    const [xid] = (await query<{ ok: boolean; current: string; max: string }>(
      urlA,
      `SELECT pg_current_xact_id() > max(txid) AS ok, pg_current_xact_id()::text AS current,
              max(txid)::text AS max FROM sage.outbox_message`,
    )) as [{ ok: boolean; current: string; max: string }];
    counts.restoredMaxOutboxTxid = Number(xid.max);
    counts.restoredCurrentTxid = Number(xid.current);
    if (!xid.ok)
      failures.push(`restored xid ${xid.current} not above the outbox's max txid ${xid.max}`);

    // Sent by A in the restored state, but not applied by B in the restored state: the gap the
    // re-publish closes (B applied them after the target, or they were still on the wire).
    const sentIds = await query<{ id: string }>(
      urlA,
      `SELECT id::text FROM sage.outbox_message WHERE status = 'sent'`,
    );
    const applied = new Set(
      (
        await query<{ message_id: string }>(urlB, `SELECT DISTINCT message_id FROM chaos.b_effect`)
      ).map((r) => r.message_id),
    );
    counts.sentButNotAppliedAfterRestore = sentIds.filter((r) => !applied.has(r.id)).length;

    // ---------------------------------------------------------------- the DR procedure
    const since = new Date(targetTime.getTime() - size.republishWindow * 1000);
    const { stdout } = await runFile(
      'bash',
      [path.join(ROOT, 'scripts', 'dr-republish.sh'), '--since', since.toISOString()],
      { env: { ...process.env, DATABASE_URL: urlA, SAGE_SCHEMA: 'sage' } },
    );
    counts.republished = Number(/republished (\d+)/.exec(stdout)?.[1] ?? NaN);
    say(
      `restored: ${restoredA.n} messages, ${restoredA.sagas_open} sagas in flight, ` +
        `${counts.sentButNotAppliedAfterRestore} sent but not applied by B; re-published ${counts.republished} sent since ${since.toISOString()}`,
    );

    // ---------------------------------------------------------------- services back, traffic
    await Promise.all(everyone.map((s) => s.start()));
    const servicesBackAt = mark('servicesBack');
    producing = true;
    producer.handle?.send('go');
    // RTO: until a message committed after the restore is applied by B.
    for (;;) {
      const fresh = await query<{ id: string }>(
        urlA,
        `SELECT message_id::text AS id FROM chaos.a_message WHERE committed_at > $1 ORDER BY committed_at LIMIT 20`,
        [new Date(servicesBackAt)],
      );
      if (fresh.length > 0) {
        const hit = await query<{ at: Date | null }>(
          urlB,
          `SELECT min(applied_at) AS at FROM chaos.b_effect WHERE message_id = ANY($1::text[])`,
          [fresh.map((f) => f.id)],
        );
        if (hit[0]?.at) {
          mark('trafficFlowingAgain', hit[0].at.getTime());
          rtoSeconds = (hit[0].at.getTime() - crashAt) / 1000;
          break;
        }
      }
      if (Date.now() - servicesBackAt > 30_000) {
        failures.push('no new message applied by B within 30 s of the restart');
        break;
      }
      await sleep(100);
    }
    say(`traffic flowing again: RTO ${rtoSeconds.toFixed(1)} s, RPO ${rpoSeconds.toFixed(1)} s`);
    await sleep(size.afterRestore * 1000);
    producing = false;
    producer.handle?.send('stop');
    mark('trafficStopped');

    // ---------------------------------------------------------------- drain
    const drainUntil = Date.now() + DRAIN_TIMEOUT_MS;
    for (;;) {
      const [p] = (await query<{
        produced: number;
        effected: number;
        unsent: number;
        open: number;
      }>(
        urlA,
        `SELECT (SELECT count(*)::int FROM chaos.a_message) AS produced,
                (SELECT count(*)::int FROM sage.outbox_message WHERE status IN ('pending', 'claimed')) AS unsent,
                (SELECT count(*)::int FROM sage.saga_instance
                  WHERE status NOT IN ('completed', 'compensated', 'failed')) AS open,
                0 AS effected`,
      )) as [{ produced: number; effected: number; unsent: number; open: number }];
      const [e] = (await query<{ n: number }>(
        urlB,
        `SELECT count(DISTINCT message_id)::int AS n FROM chaos.b_effect`,
      )) as [{ n: number }];
      if (p.unsent === 0 && p.open === 0 && e.n >= p.produced) break;
      if (Date.now() > drainUntil) {
        failures.push(
          `not drained in ${DRAIN_TIMEOUT_MS / 1000} s: ${p.unsent} unsent, ${p.open} sagas open, ${e.n}/${p.produced} applied`,
        );
        break;
      }
      await sleep(500);
    }
    mark('drained');
    await stopAll();

    // ---------------------------------------------------------------- checks
    const sagas = await query<{ status: string; n: number }>(
      urlA,
      `SELECT status, count(*)::int AS n FROM sage.saga_instance GROUP BY status`,
    );
    for (const s of sagas) counts[`sagas_${s.status}`] = s.n;
    const notTerminal = sagas.filter((s) => !['completed', 'compensated'].includes(s.status));
    if (notTerminal.length > 0)
      failures.push(`sagas not completed/compensated: ${JSON.stringify(notTerminal)}`);

    const [dup] = (await query<{ n: number; extra: number }>(
      urlB,
      `SELECT count(*)::int AS n, coalesce(sum(c - 1), 0)::int AS extra
       FROM (SELECT count(*) AS c FROM chaos.b_effect GROUP BY consumer, message_id HAVING count(*) > 1) d`,
    )) as [{ n: number; extra: number }];
    counts.messagesAppliedTwice = dup.n;
    if (dup.n > 0) failures.push(`${dup.n} messages applied more than once (${dup.extra} extra)`);

    const produced = await query<{ id: string; destination: string }>(
      urlA,
      `SELECT message_id::text AS id, destination FROM chaos.a_message`,
    );
    const effects = await query<{ message_id: string; consumer: string }>(
      urlB,
      `SELECT DISTINCT message_id, consumer FROM chaos.b_effect`,
    );
    const effected = new Set(effects.map((e) => `${e.consumer}/${e.message_id}`));
    const missing = produced.filter(
      (m) => !effected.has(`${CONSUMERS[m.destination as keyof typeof CONSUMERS]}/${m.id}`),
    );
    counts.producedAfterAll = produced.length;
    counts.committedButNeverApplied = missing.length;
    if (missing.length > 0)
      failures.push(
        `${missing.length} messages the restored A committed were never applied by B (e.g. ${missing[0]?.id})`,
      );
    const [unsent] = (await query<{ n: number }>(
      urlA,
      `SELECT count(*)::int AS n FROM sage.outbox_message WHERE status <> 'sent'`,
    )) as [{ n: number }];
    counts.outboxNotSent = unsent.n;
    if (unsent.n > 0) failures.push(`${unsent.n} outbox rows not sent`);
    const stats = consumer.incarnations
      .map((h) => h.last('exited') ?? h.last('stats'))
      .filter(Boolean) as { inbox?: { duplicates?: number } }[];
    counts.inboxDuplicatesDropped = stats.reduce((s, x) => s + (x.inbox?.duplicates ?? 0), 0);
  } catch (error) {
    failures.push(`drill aborted: ${error instanceof Error ? error.message : String(error)}`);
    say(`aborted: ${String(error instanceof Error ? error.stack : error)}`);
    await stopAll().catch(() => undefined);
  } finally {
    await killAllChildren();
    if (!args.keep) {
      await services.destroy();
      // Ours too (services.destroy removes the servers' directories only); the logs stay.
      for (const dir of [cluster.archiveDir, cluster.backupsDir, `${cluster.dataDir}.crashed`])
        rmSync(dir, { recursive: true, force: true });
    }
  }

  const result: DrillResult = {
    format: 'sage-dr-drill/1',
    size: args.size,
    ok: failures.length === 0,
    failures,
    timeline,
    measured: {
      rpoSeconds,
      rtoSeconds,
      restoreSeconds,
      baseBackupSeconds,
      archivedSegments: counts.archivedSegmentsAtCrash ?? 0,
    },
    counts,
    recoveryLog,
  };
  if (args.json) writeFileSync(args.json, `${JSON.stringify(result, null, 2)}\n`);
  log(JSON.stringify({ measured: result.measured, counts }, null, 2));
  for (const f of failures) log(`FAIL: ${f}`);
  log(result.ok ? 'dr drill: PASS' : 'dr drill: FAIL');
  return result.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    void killAllChildren().finally(() => process.exit(1));
  },
);
