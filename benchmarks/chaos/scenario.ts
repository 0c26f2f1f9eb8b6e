/**
 * One broker's chaos run, end to end:
 *
 * 1. fresh databases for service A and service B on the private PostgreSQL (Sage's migrations, as
 *    the benchmark harness prepares its database, plus the `chaos` tables), the broker's topics;
 * 2. service B replicas (consumers, inbox), the standalone `sage-relay` processes on service A's
 *    database, service A replicas (producers, saga engine), each supervised: restarted if it dies;
 * 3. production at the target rate until `--messages` are committed and every enabled fault has
 *    happened at least once, faults injected throughout;
 * 4. drain: no new faults, wait until every committed message is effected, nothing is left to
 *    publish and every saga is terminal (or nothing has moved for the drain timeout, or the
 *    deadline passes);
 * 5. graceful stop of every process (service B reports its delivery counts), then the checker.
 */
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { createKafkaTopics } from '../harness/brokers';
import { prepareDatabase, type PgTarget } from '../harness/database';
import {
  gitInfo,
  machineInfo,
  sampleLoad,
  type GitInfo,
  type MachineInfo,
} from '../harness/machine';
import {
  checkRun,
  faultRecoveries,
  summariseRecoveries,
  type DeliveryStats,
  type FaultRecovery,
  type RecoverySummary,
  type Throughput,
  type Verdict,
} from './checker';
import { FaultInjector, type FaultType } from './faults';
import type { ChaosOptions } from './options';
import { ROOT, Supervised, childEnv, spawnTs } from './processes';
import {
  crashRewindOf,
  dropWalSlot,
  prepareWalDatabase,
  relayModeEnv,
  streamingSessions,
  walDuplicateBound,
  walSlotName,
  type DuplicateBound,
  type RelayMode,
} from './relay-mode';
import { subSeed } from './rng';
import { DESTINATIONS, SERVICE_A_DDL, SERVICE_B_DDL } from './schema';
import type { PrivateServices } from './services';
import { relayBrokerUrl, type ChaosBroker } from './topology';
import type { ServiceAConfig } from './workers/service-a';
import type { ServiceBConfig } from './workers/service-b';

export const RESULT_FORMAT = 'sage-chaos/1';

export interface ChaosResult {
  format: typeof RESULT_FORMAT;
  broker: ChaosBroker;
  /** Absent in results written before `--relay-mode` existed: polling. */
  relayMode?: RelayMode;
  startedAt: string;
  finishedAt: string;
  wallMs: number;
  /** Reproduces the run (same seed: same keys, fault order, victims and jitter). */
  command: string;
  seed: number;
  settings: {
    messages: number;
    rate: number;
    keys: number;
    perTx: number;
    sagaEvery: number;
    sagaFailEvery: number;
    producers: number;
    consumers: number;
    relays: number;
    relayMode?: RelayMode;
    faults: FaultType[];
    faultIntervalMs: number;
    heavyIntervalMs: number;
    relayDowntimeMs: number;
    deadlineMs: number;
    drainTimeoutMs: number;
    inboxMaxAttempts: number;
    brokerMaxDeliveries: number;
    relay: string;
  };
  git: GitInfo;
  machine: MachineInfo;
  phases: { setupMs: number; productionMs: number; drainMs: number; stopMs: number };
  deadlineExceeded: boolean;
  drained: boolean;
  processes: {
    relayStarts: number;
    unexpectedExits: { relays: number; producers: number; consumers: number };
  };
  deliveries: DeliveryStats;
  /** WAL mode only. */
  wal?: {
    slot: string;
    /** Streaming sessions the relays started: the first one, then one per takeover. */
    sessions: number;
    /** The duplicate deliveries against the relay's documented bound (in the verdict too). */
    duplicates: DuplicateBound;
  };
  verdict: Verdict;
  throughput: Throughput;
  faults: FaultRecovery[];
  recovery: Partial<Record<FaultType, RecoverySummary>>;
  logs: string;
}

const READY_TIMEOUT_MS = 120_000;
const STALL_MS = 120_000;
/** About how many messages a saga emits: 3 when it completes, 2 when it compensates. */
const MESSAGES_PER_SAGA = (failEvery: number): number => 3 - 1 / failEvery;

export async function runBrokerScenario(
  kind: ChaosBroker,
  options: ChaosOptions,
  services: PrivateServices,
  log: (line: string) => void,
): Promise<ChaosResult> {
  const startedAt = Date.now();
  const deadline = startedAt + options.deadlineMs;
  const pastDeadline = (): boolean => Date.now() >= deadline;
  const say = (line: string): void => log(`[${kind} ${clock(Date.now() - startedAt)}] ${line}`);
  const logs = path.join(services.dir, 'logs', kind);
  mkdirSync(logs, { recursive: true });
  const extraFailures: string[] = [];

  // ---------------------------------------------------------------- servers, databases, topics
  const wal = options.relayMode === 'wal';
  say(`starting the private PostgreSQL and ${kind} (${services.dir}); ${options.relayMode} relays`);
  await services.start('postgres', kind);
  const target = (database: string): PgTarget => services.pgTarget(database);
  const dbA = `chaos_${kind}_a`;
  const dbB = `chaos_${kind}_b`;
  for (const [db, ddl] of [
    [dbA, SERVICE_A_DDL],
    [dbB, SERVICE_B_DDL],
  ] as const) {
    await prepareDatabase(target(db));
    await withClient(services.postgresUrl(db), async (c) => {
      for (const statement of ddl) await c.query(statement);
      if (wal && db === dbA) await prepareWalDatabase(target(db), c);
    });
  }
  const brokerAddress = services.brokerAddress(kind);
  if (kind === 'kafka') {
    const kafka = new Kafka({
      clientId: 'chaos-setup',
      brokers: [brokerAddress],
      logLevel: logLevel.NOTHING,
    });
    await createKafkaTopics(kafka, [...DESTINATIONS]);
  }
  const machine = await withClient(services.postgresUrl(dbA), (c) => machineInfo(c));
  const stopLoad = sampleLoad();

  // ---------------------------------------------------------------- processes
  const sagaEvery = Math.max(
    1,
    Math.round(
      (MESSAGES_PER_SAGA(options.sagaFailEvery) * (1 - options.sagaShare)) /
        (options.sagaShare * options.perTx),
    ),
  );
  const messagesPerTx = options.perTx + MESSAGES_PER_SAGA(options.sagaFailEvery) / sagaEvery;
  const txPerSec = options.rate / messagesPerTx / options.producers;
  let producing = false;

  const consumers = Array.from({ length: options.consumers }, (_, i) => {
    const name = `service-b-${i + 1}`;
    const config: ServiceBConfig = {
      name,
      databaseUrl: services.postgresUrl(dbB),
      broker: kind,
      brokerAddress,
      inboxMaxAttempts: options.inboxMaxAttempts,
      poolSize: 12,
    };
    return new Supervised(
      name,
      () =>
        spawnTs(
          name,
          path.join(__dirname, 'workers', 'service-b.ts'),
          [JSON.stringify(config)],
          childEnv({}),
          path.join(logs, `${name}.log`),
        ),
      (h) => h.waitForEvent('ready', READY_TIMEOUT_MS),
      say,
    );
  });
  const relayUrl = relayBrokerUrl(kind, brokerAddress, 'chaos-relay');
  const relays = Array.from({ length: options.relays }, (_, i) => {
    const name = `relay-${i + 1}`;
    return new Supervised(
      name,
      () =>
        spawnTs(
          name,
          path.join(ROOT, 'libs', 'saga-outbox', 'src', 'bin', 'sage-relay.ts'),
          [],
          childEnv({
            DATABASE_URL: services.postgresUrl(dbA),
            SAGE_BROKER_URL: relayBrokerUrl(kind, brokerAddress, `chaos-${name}`),
            // The schema is the services' business (migrated above), as in a deployment.
            SAGE_RUN_MIGRATIONS: 'false',
            ...relayModeEnv(options.relayMode, kind),
          }),
          path.join(logs, `${name}.log`),
        ),
      (h) => h.waitForText('outbox relay running', READY_TIMEOUT_MS),
      say,
    );
  });
  const producers = Array.from({ length: options.producers }, (_, i) => {
    const name = `service-a-${i + 1}`;
    return new Supervised(
      name,
      (incarnation) => {
        const config: ServiceAConfig = {
          name,
          databaseUrl: services.postgresUrl(dbA),
          // A new incarnation draws new keys (its predecessor's stream may be half used).
          seed: subSeed(options.seed, 100 * (i + 1) + incarnation),
          keys: options.keys,
          perTx: options.perTx,
          txPerSec,
          concurrency: 4,
          sagaEvery,
          sagaFailEvery: options.sagaFailEvery,
          leaseMs: 10_000,
          poolSize: 12,
        };
        return spawnTs(
          name,
          path.join(__dirname, 'workers', 'service-a.ts'),
          [JSON.stringify(config)],
          childEnv({}),
          path.join(logs, `${name}.log`),
        );
      },
      async (h) => {
        await h.waitForEvent('ready', READY_TIMEOUT_MS);
        if (producing) h.send('go');
      },
      say,
    );
  });

  const monitorA = new pg.Pool(poolConfig(services.postgresUrl(dbA)));
  const monitorB = new pg.Pool(poolConfig(services.postgresUrl(dbB)));
  monitorA.on('error', () => undefined);
  monitorB.on('error', () => undefined);
  const count = async (pool: pg.Pool, sql: string): Promise<number | undefined> => {
    try {
      const { rows } = await pool.query<{ n: number }>(sql);
      return rows[0]?.n;
    } catch {
      return undefined; // the database is restarting
    }
  };
  // The full picture scans service B's effects: only every few seconds while producing.
  const progress = async (full = true) => ({
    produced: await count(monitorA, `SELECT count(*)::int AS n FROM chaos.a_message`),
    effected: !full
      ? undefined
      : await count(monitorB, `SELECT count(DISTINCT message_id)::int AS n FROM chaos.b_effect`),
    unsent: !full
      ? undefined
      : await count(
          monitorA,
          `SELECT count(*)::int AS n FROM sage.outbox_message WHERE status IN ('pending', 'claimed')`,
        ),
    liveSagas: !full
      ? undefined
      : await count(
          monitorA,
          `SELECT count(*)::int AS n FROM sage.saga_instance WHERE status NOT IN ('completed', 'compensated', 'failed')`,
        ),
  });

  const injector = new FaultInjector(
    {
      faults: options.faults,
      faultIntervalMs: options.faultIntervalMs,
      heavyIntervalMs: options.heavyIntervalMs,
      relayDowntimeMs: options.relayDowntimeMs,
      seed: subSeed(options.seed, 1),
    },
    {
      relays: relays.length,
      producers: producers.length,
      consumers: consumers.length,
      killRelay: (i) => relays[i]!.kill(),
      startRelay: (i) => relays[i]!.start(),
      killProducer: (i) => producers[i]!.kill(),
      startProducer: (i) => producers[i]!.start(),
      killConsumer: (i) => consumers[i]!.kill(),
      startConsumer: (i) => consumers[i]!.start(),
      restartBroker: () => services.restart(kind).then(() => undefined),
      restartPostgres: () => services.restart('postgres').then(() => undefined),
      killPostgres: () => services.killPostgres().then(() => undefined),
      claimedIds: async () => {
        try {
          const { rows } = await monitorA.query<{ id: string }>(
            `SELECT id::text FROM sage.outbox_message WHERE status = 'claimed'`,
          );
          return rows.map((r) => r.id);
        } catch {
          return undefined;
        }
      },
    },
    say,
  );

  let deadlineExceeded = false;
  let drained = false;
  let productionStartedAt = Date.now();
  let drainStartedAt = Date.now();
  let stopStartedAt = Date.now();
  const everyone = [...consumers, ...relays, ...producers];
  try {
    say(
      `starting ${consumers.length} service B, ${relays.length} sage-relay, ${producers.length} service A`,
    );
    await Promise.all(consumers.map((c) => c.start()));
    await Promise.all(relays.map((r) => r.start()));
    await Promise.all(producers.map((p) => p.start()));

    // -------------------------------------------------------------- production under faults
    productionStartedAt = Date.now();
    producing = true;
    for (const p of producers) p.handle?.send('go');
    injector.start();
    say(
      `producing ${options.messages.toLocaleString('en-US')} messages at ${Math.round(options.rate)}/s ` +
        `(${options.perTx} per transaction, a saga every ${sagaEvery}); faults: ${options.faults.join(', ') || 'none'}`,
    );
    let last = { produced: 0, at: Date.now() };
    let lastLog = 0;
    for (;;) {
      await sleep(1_000);
      const logNow = Date.now() - lastLog >= 5_000;
      const p = await progress(logNow);
      if (p.produced !== undefined && p.produced > last.produced)
        last = { produced: p.produced, at: Date.now() };
      if (logNow) {
        lastLog = Date.now();
        say(describeProgress(p, options.messages, relays, injector.records.length));
      }
      // Also every enabled fault at least once, however small the run (CI's is).
      const covered = options.faults.every((f) =>
        injector.records.some((r) => r.type === f && r.endedAt !== null),
      );
      if ((p.produced ?? 0) >= options.messages && covered) break;
      if (pastDeadline()) {
        deadlineExceeded = true;
        break;
      }
      if (Date.now() - last.at > STALL_MS) {
        extraFailures.push(
          `production stalled: no message committed for ${STALL_MS / 1000} s (at ${last.produced})`,
        );
        break;
      }
    }
    producing = false;
    for (const p of producers) p.handle?.send('stop');
    say('production over; waiting for the faults under way to end');
    await injector.stop();

    // -------------------------------------------------------------- drain
    // Until everything is effected, or nothing has moved (no effect, no publish, no saga step)
    // for the drain timeout: a backlog still being worked off is waited for, a stuck one is not.
    drainStartedAt = Date.now();
    await Promise.all(
      [...relays, ...consumers, ...producers].map((s) =>
        s.running ? Promise.resolve() : s.start().catch((e: unknown) => say(String(e))),
      ),
    );
    lastLog = 0;
    let moved = { state: '', at: Date.now() };
    for (;;) {
      const p = await progress();
      if (
        p.produced !== undefined &&
        p.effected !== undefined &&
        p.effected >= p.produced &&
        p.unsent === 0 &&
        p.liveSagas === 0
      ) {
        drained = true;
        say(`drained: ${describeProgress(p, options.messages, relays, injector.records.length)}`);
        break;
      }
      const state = JSON.stringify(p);
      if (p.effected !== undefined && state !== moved.state) moved = { state, at: Date.now() };
      if (Date.now() - lastLog >= 5_000) {
        lastLog = Date.now();
        say(`draining: ${describeProgress(p, options.messages, relays, injector.records.length)}`);
      }
      if (pastDeadline()) {
        deadlineExceeded = true;
        say(`deadline reached while draining (${clock(Date.now() - drainStartedAt)})`);
        break;
      }
      if (Date.now() - moved.at >= options.drainTimeoutMs) {
        extraFailures.push(
          `not drained: nothing moved for ${options.drainTimeoutMs / 1000} s (${describeProgress(p, options.messages, relays, injector.records.length)})`,
        );
        say(`stuck: nothing moved for ${options.drainTimeoutMs / 1000} s`);
        break;
      }
      await sleep(2_000);
    }
  } catch (error) {
    extraFailures.push(`run aborted: ${error instanceof Error ? error.message : String(error)}`);
    say(`run aborted: ${String(error)}`);
    await injector.stop();
  } finally {
    stopStartedAt = Date.now();
    await Promise.all(consumers.map((c) => c.stop((h) => h.send('stop'), 30_000)));
    await Promise.all([
      ...relays.map((r) => r.stop((h) => void h.kill('SIGTERM'), 20_000)),
      ...producers.map((p) => p.stop((h) => h.send('exit'), 20_000)),
    ]);
    await Promise.all([monitorA.end(), monitorB.end()]);
    if (wal)
      await withClient(services.postgresUrl(dbA), (c) => dropWalSlot(c, kind)).then(
        (dropped) => say(dropped ? 'replication slot dropped' : 'no idle replication slot to drop'),
        (error: unknown) => say(`could not drop the replication slot: ${String(error)}`),
      );
  }
  if (deadlineExceeded)
    extraFailures.push(`deadline exceeded (${Math.round(options.deadlineMs / 1000)} s)`);
  for (const r of injector.records)
    if (r.error) extraFailures.push(`fault #${r.n} ${r.type} did not recover: ${r.error}`);
  const unexpected = (slots: Supervised[]): number =>
    slots.reduce((n, s) => n + s.unexpectedExits, 0);
  if (everyone.some((s) => s.unexpectedExits > 0))
    say(
      `unexpected exits: relays ${unexpected(relays)}, service A ${unexpected(producers)}, service B ${unexpected(consumers)}`,
    );

  // ---------------------------------------------------------------- verdict
  say('checking');
  const stopMs = Date.now() - stopStartedAt;
  const { verdict, throughput, faults } = await withClient(services.postgresUrl(dbA), (a) =>
    withClient(services.postgresUrl(dbB), async (b) => {
      const checked = await checkRun(a, b, extraFailures, deadlineExceeded && !drained);
      return {
        ...checked,
        faults: await faultRecoveries(a, b, injector.records, injector.claimedAtKill),
      };
    }),
  );
  const deliveries = deliveryStats(consumers);
  let walResult: ChaosResult['wal'];
  if (wal) {
    const rewind = await withClient(services.postgresUrl(dbA), (a) =>
      crashRewindOf(a, injector.records),
    );
    const walDuplicates = walDuplicateBound(
      injector.records,
      options.perTx,
      deliveries.inboxDuplicates,
      rewind,
    );
    walResult = {
      slot: walSlotName(kind),
      sessions: streamingSessions(logs),
      duplicates: walDuplicates,
    };
    say(`WAL relay: ${walResult.sessions} streaming sessions (the first, then one per takeover)`);
    const bound =
      `${walDuplicates.bound} = ${walDuplicates.faults} faults × (maxWindow + one transaction = ${walDuplicates.perFault})` +
      ` + ${walDuplicates.crashRewind} committed within checkpoint_timeout before a PostgreSQL restart or kill`;
    say(
      `WAL relay duplicates: ${walDuplicates.observed} delivered again after being applied; bound ${bound}`,
    );
    if (!walDuplicates.ok) {
      verdict.failures.push(
        `${walDuplicates.observed} duplicate deliveries exceed the WAL relay's bound of ${bound}`,
      );
      verdict.ok = false;
    }
  }
  machine.loadAvg1m = stopLoad();
  await services.stop(kind);

  const finishedAt = Date.now();
  return {
    format: RESULT_FORMAT,
    broker: kind,
    relayMode: options.relayMode,
    startedAt: new Date(startedAt).toISOString(),
    finishedAt: new Date(finishedAt).toISOString(),
    wallMs: finishedAt - startedAt,
    command: reproduction(kind, options),
    seed: options.seed,
    settings: {
      messages: options.messages,
      rate: Math.round(options.rate),
      keys: options.keys,
      perTx: options.perTx,
      sagaEvery,
      sagaFailEvery: options.sagaFailEvery,
      producers: options.producers,
      consumers: options.consumers,
      relays: options.relays,
      relayMode: options.relayMode,
      faults: options.faults,
      faultIntervalMs: options.faultIntervalMs,
      heavyIntervalMs: options.heavyIntervalMs,
      relayDowntimeMs: options.relayDowntimeMs,
      deadlineMs: options.deadlineMs,
      drainTimeoutMs: options.drainTimeoutMs,
      inboxMaxAttempts: options.inboxMaxAttempts,
      brokerMaxDeliveries: options.inboxMaxAttempts * 10,
      relay: relayUrl.replace(/\/\/[^@/]*@/, '//'),
    },
    git: gitInfo(ROOT),
    machine,
    phases: {
      setupMs: productionStartedAt - startedAt,
      productionMs: drainStartedAt - productionStartedAt,
      drainMs: stopStartedAt - drainStartedAt,
      stopMs,
    },
    deadlineExceeded,
    drained,
    processes: {
      relayStarts: relays.reduce((n, r) => n + r.starts, 0),
      unexpectedExits: {
        relays: unexpected(relays),
        producers: unexpected(producers),
        consumers: unexpected(consumers),
      },
    },
    deliveries,
    ...(walResult ? { wal: walResult } : {}),
    verdict,
    throughput,
    faults,
    recovery: summariseRecoveries(faults),
    logs,
  };
}

/** Service B's delivery counts, summed over every incarnation of every replica. */
function deliveryStats(consumers: readonly Supervised[]): DeliveryStats {
  const total: DeliveryStats = {
    deliveries: 0,
    redeliveries: 0,
    inboxDuplicates: 0,
    handlerFailures: 0,
    inboxDeadLettered: 0,
  };
  for (const c of consumers)
    for (const h of c.incarnations) {
      const e = (h.last('exited') ?? h.last('stats')) as
        | {
            deliveries: number;
            redeliveries: number;
            inbox: { duplicates: number; failed: number; deadLettered: number };
          }
        | undefined;
      if (!e) continue;
      total.deliveries += e.deliveries;
      total.redeliveries += e.redeliveries;
      total.inboxDuplicates += e.inbox.duplicates;
      total.handlerFailures += e.inbox.failed;
      total.inboxDeadLettered += e.inbox.deadLettered;
    }
  return total;
}

function describeProgress(
  p: { produced?: number; effected?: number; unsent?: number; liveSagas?: number },
  target: number,
  relays: readonly Supervised[],
  faults: number,
): string {
  const n = (v: number | undefined): string => (v === undefined ? '?' : v.toLocaleString('en-US'));
  return (
    `produced ${n(p.produced)}/${target.toLocaleString('en-US')}, effected ${n(p.effected)}, ` +
    `unsent ${n(p.unsent)}, live sagas ${n(p.liveSagas)}, relays up ${relays.filter((r) => r.running).length}/${relays.length}, ` +
    `faults ${faults}, load ${os.loadavg()[0]!.toFixed(1)}`
  );
}

function reproduction(kind: ChaosBroker, o: ChaosOptions): string {
  return [
    'npm run chaos --',
    `--broker ${kind}`,
    `--messages ${o.messages}`,
    `--rate ${Math.round(o.rate)}`,
    `--keys ${o.keys}`,
    `--per-tx ${o.perTx}`,
    `--saga-share ${o.sagaShare}`,
    `--saga-fail-every ${o.sagaFailEvery}`,
    `--producers ${o.producers}`,
    `--consumers ${o.consumers}`,
    `--relays ${o.relays}`,
    ...(o.relayMode === 'wal' ? ['--relay-mode wal'] : []),
    `--faults ${o.faults.join(',') || 'none'}`,
    `--fault-interval ${o.faultIntervalMs / 1000}`,
    `--heavy-interval ${o.heavyIntervalMs / 1000}`,
    `--relay-downtime ${o.relayDowntimeMs / 1000}`,
    `--inbox-max-attempts ${o.inboxMaxAttempts}`,
    `--seed ${o.seed}`,
  ].join(' ');
}

function poolConfig(connectionString: string): pg.PoolConfig {
  return {
    connectionString,
    max: 2,
    connectionTimeoutMillis: 3_000,
    query_timeout: 20_000,
    application_name: 'chaos-monitor',
  };
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, application_name: 'chaos-controller' });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

function clock(ms: number): string {
  const s = Math.floor(ms / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}
