import {
  Injectable,
  Module,
  type INestApplicationContext,
  type LoggerService,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { Kafka } from 'kafkajs';
import type { DataSource, EntityManager } from 'typeorm';
import {
  defineSaga,
  SAGA_HEADERS,
  SAGA_REPLY_TYPE,
  SagaCommandHandler,
  SagaEngine,
  SagaOutboxModule,
  SagaService,
  uuidv7,
  type Broker,
  type BrokerMessage,
  type DeliveredMessage,
  type InboxContext,
  type ReceivedSagaCommand,
  type SagaCommand,
  type SubscribeOptions,
} from '@sage/saga-outbox';
import {
  brokerRuns,
  createKafkaTopics,
  forEachBroker,
  KAFKA_PARTITIONS,
  type BrokerTarget,
} from '../harness/brokers';
import type { Operation } from '../harness/closed-loop';
import {
  BUSINESS_TABLE,
  clientConfig,
  inTransaction,
  INSERT_BUSINESS_ROW,
  sagaDataSource,
} from '../harness/database';
import { measureInterleaved } from '../harness/interleave';
import { countsDelta, snapshotCounts, totalOf } from '../harness/query-counter';
import { rawRoundTrip, type RawRoundTrip } from '../harness/raw-round-trip';
import { SagaCompletions } from '../harness/saga-completions';
import { ResourceMonitor } from '../harness/resources';
import type {
  BrokerProfile,
  Measurement,
  PointResult,
  SagaRemoteRun,
  SagaRemoteScenarioResult,
} from '../harness/results';
import { round, summarise } from '../harness/stats';
import type { Scenario, ScenarioContext } from './scenario';

const NAME = 'saga-remote-2step';
const SAGA = 'bench-remote-2step';
const COMMAND_TYPE = 'bench.charge';
const SAGE_APP = 'sage-bench-remote';
const RAW_APP = 'sage-bench-remote-raw';
const ORCHESTRATOR_SCHEMA = 'sage_orch';
const PARTICIPANT_SCHEMA = 'sage_part';
/** The participant's inbox consumer (and broker consumer group) for commands. */
const PARTICIPANT_CONSUMER = 'bench-participant';
/** SagaReplyConsumer's default consumer (the orchestrator's group on the reply destination). */
const REPLY_CONSUMER = 'sage.saga-replies';
const PARTICIPANT_TABLE = 'bench.remote_participant_row';
const RAW_SAGA_TABLE = 'bench.raw_remote_saga';
const RAW_ORCH_OUTBOX = 'bench.raw_remote_orchestrator_outbox';
const RAW_PART_OUTBOX = 'bench.raw_remote_participant_outbox';

/** The participant's effect: idempotent on the step's idempotency key (a resend inserts nothing). */
const INSERT_PARTICIPANT_ROW = `INSERT INTO ${PARTICIPANT_TABLE} (key) VALUES ($1) ON CONFLICT (key) DO NOTHING`;

interface Input {
  n: number;
}

/**
 * reserve (LOCAL: one business row through ctx.manager, in the step's transaction) → charge
 * (REMOTE: returns the command; Sage writes it to the orchestrator's outbox in the step's
 * transaction and parks the saga until the participant's reply).
 */
function definition(commands: string) {
  return defineSaga<Input, EntityManager>(SAGA)
    .step('reserve', {
      run: async (ctx) => {
        await ctx.manager.query(INSERT_BUSINESS_ROW, [ctx.sagaId, 'reserve']);
      },
      compensate: async (ctx) => {
        await ctx.manager.query(`DELETE FROM ${BUSINESS_TABLE} WHERE saga_id = $1`, [ctx.sagaId]);
      },
    })
    .step('charge', {
      kind: 'remote',
      dependsOn: ['reserve'],
      compensatable: false,
      run: (ctx): SagaCommand => ({
        destination: commands,
        type: COMMAND_TYPE,
        payload: { n: (ctx.input as Input).n },
      }),
    })
    .build();
}

/** The participant service: one @SagaCommandHandler on the command destination of this run. */
function participantProvider(commands: string): new () => unknown {
  @Injectable()
  class BenchParticipant {
    @SagaCommandHandler(COMMAND_TYPE, { destination: commands, consumer: PARTICIPANT_CONSUMER })
    async charge(command: ReceivedSagaCommand, { manager }: InboxContext): Promise<null> {
      await manager.query(INSERT_PARTICIPANT_ROW, [command.idempotencyKey]);
      return null;
    }
  }
  return BenchParticipant;
}

/** Nest's logger for the bench apps: silent, but counts warnings and errors (a clean run logs none). */
class CountingNestLogger implements LoggerService {
  warnings = 0;
  errors = 0;
  first: string | null = null;
  log(): void {}
  debug(): void {}
  verbose(): void {}
  warn(message: unknown): void {
    this.warnings++;
    this.first ??= String(message);
  }
  error(message: unknown): void {
    this.errors++;
    this.first ??= String(message);
  }
  fatal(message: unknown): void {
    this.error(message);
  }
}

/** The legs of one round trip, in order; each saga's instants are taken at these points. */
const LEGS = [
  'start → command acked',
  'command acked → delivered to participant',
  'delivered → reply acked',
  'reply acked → delivered to orchestrator',
  'reply delivered → completed',
] as const;

/**
 * Where the time of a round trip goes: per saga, the instant it started, its command was acked by
 * the broker, delivered to the participant's handler, its reply acked, delivered to the
 * orchestrator, and the saga completed. Summarised as the median of each leg over the sagas that
 * have every instant (warm-up included), per side and point.
 */
class Legs {
  private readonly at = new Map<string, number[]>();

  mark(sagaId: string, leg: number, at = performance.now()): void {
    let stamps = this.at.get(sagaId);
    if (!stamps) this.at.set(sagaId, (stamps = [NaN, NaN, NaN, NaN, NaN, NaN]));
    if (Number.isNaN(stamps[leg])) stamps[leg] = at;
  }

  /** Median ms per leg, then forgets every saga. */
  take(): Record<string, number> {
    const complete = [...this.at.values()].filter((s) => s.every((t) => !Number.isNaN(t)));
    this.at.clear();
    const out: Record<string, number> = { sagas: complete.length };
    LEGS.forEach((name, i) => {
      const d = complete.map((s) => s[i + 1]! - s[i]!);
      out[name] = d.length ? summarise(Float64Array.from(d)).p50 : NaN;
    });
    return out;
  }
}

/** The Sage adapter, unchanged, with the command / reply instants of `legs` taken around it. */
function traced(inner: Broker, legs: Legs): Broker {
  const sagaOf = (m: BrokerMessage): string | undefined => m.headers[SAGA_HEADERS.sagaId];
  return {
    name: inner.name,
    async publish(batch, signal) {
      const results = await inner.publish(batch, signal);
      const at = performance.now();
      batch.forEach((m, i) => {
        const id = sagaOf(m);
        if (id && results[i]?.ok) legs.mark(id, m.type === SAGA_REPLY_TYPE ? 3 : 1, at);
      });
      return results;
    },
    subscribe(
      destination: string,
      handler: (message: DeliveredMessage) => Promise<void>,
      options?: SubscribeOptions,
    ) {
      return inner.subscribe(
        destination,
        (m) => {
          const id = sagaOf(m);
          if (id) legs.mark(id, m.type === SAGA_REPLY_TYPE ? 4 : 2);
          return handler(m);
        },
        options,
      );
    },
    health: () => inner.health(),
    close: () => inner.close(),
  };
}

/**
 * The raw ceiling: the same round trip by hand, node-postgres + the broker's client library.
 *   orchestrator tx 1: business row + saga state row + command row (its outbox); COMMIT; publish
 *   participant  tx 2 (on the command): its row (idempotent) + reply row (its outbox); COMMIT; publish; ack
 *   orchestrator tx 3 (on the reply): conditional state update waiting → completed; COMMIT; ack
 * Three commits and two broker round trips: the minimum for a command/reply step with both sides'
 * writes atomic with their messages. No relay (messages are published right after the commit, and
 * their outbox rows are never marked sent), no inbox rows, no saga-step rows, no leases.
 */
async function rawSide(
  transport: RawRoundTrip,
  orchestrator: pg.Pool,
  participant: pg.Pool,
  commands: string,
  replies: string,
  legs: Legs,
): Promise<Operation> {
  const done = new SagaCompletions();
  await transport.consume(commands, async (m) => {
    legs.mark(m.body.sagaId!, 2);
    const replyId = uuidv7();
    const body = { sagaId: m.body.sagaId!, step: 'charge', outcome: 'success' };
    await inTransaction(participant, async (c) => {
      await c.query(INSERT_PARTICIPANT_ROW, [`${m.body.sagaId}:charge`]);
      await c.query(
        `INSERT INTO ${RAW_PART_OUTBOX} (id, destination, key, type, payload) VALUES ($1, $2, $3, $4, $5)`,
        [replyId, replies, m.key, 'bench.reply', body],
      );
    });
    await transport.publish(replies, { id: replyId, type: 'bench.reply', key: m.key, body });
    legs.mark(m.body.sagaId!, 3);
  });
  await transport.consume(replies, async (m) => {
    const sagaId = m.body.sagaId!;
    legs.mark(sagaId, 4);
    let applied = 0;
    await inTransaction(orchestrator, async (c) => {
      const r = await c.query(
        `UPDATE ${RAW_SAGA_TABLE} SET status = 'completed', updated_at = now() WHERE id = $1 AND status = 'waiting'`,
        [sagaId],
      );
      applied = r.rowCount ?? 0;
    });
    if (applied === 1) {
      const at = performance.now();
      legs.mark(sagaId, 5, at);
      done.settle(sagaId, at);
    }
  });
  let n = 0;
  return async () => {
    const sagaId = uuidv7();
    legs.mark(sagaId, 0);
    const commandId = uuidv7();
    const body = { sagaId, n: String(n++) };
    const finished = done.wait(sagaId);
    await inTransaction(orchestrator, async (c) => {
      await c.query(INSERT_BUSINESS_ROW, [sagaId, 'reserve']);
      await c.query(`INSERT INTO ${RAW_SAGA_TABLE} (id, status) VALUES ($1, 'waiting')`, [sagaId]);
      await c.query(
        `INSERT INTO ${RAW_ORCH_OUTBOX} (id, destination, key, type, payload) VALUES ($1, $2, $3, $4, $5)`,
        [commandId, commands, sagaId, COMMAND_TYPE, body],
      );
    });
    await transport.publish(commands, { id: commandId, type: COMMAND_TYPE, key: sagaId, body });
    legs.mark(sagaId, 1);
    return finished;
  };
}

async function createTables(admin: pg.Client): Promise<void> {
  await admin.query(`CREATE TABLE IF NOT EXISTS ${PARTICIPANT_TABLE} (key text PRIMARY KEY)`);
  await admin.query(
    `CREATE TABLE IF NOT EXISTS ${RAW_SAGA_TABLE} (id uuid PRIMARY KEY, status text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())`,
  );
  for (const t of [RAW_ORCH_OUTBOX, RAW_PART_OUTBOX]) {
    await admin.query(
      `CREATE TABLE IF NOT EXISTS ${t} (id uuid PRIMARY KEY, destination text NOT NULL, key text, type text NOT NULL, ` +
        `payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`,
    );
  }
}

/**
 * Tables the audit-log migration makes append-only: a trigger refuses TRUNCATE on them (that is the
 * point of them), so a reset leaves them as they are. Nothing the scenario measures reads them.
 */
const APPEND_ONLY_TABLES = ['audit_log', 'audit_checkpoint'];

/**
 * Empties every table of both services' Sage schemas (but the append-only audit tables) and the
 * bench tables, then checkpoints.
 */
async function resetAll(admin: pg.Client): Promise<void> {
  const { rows } = await admin.query<{ t: string }>(
    `SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables
     WHERE schemaname = ANY($1) AND NOT tablename = ANY($2)`,
    [[ORCHESTRATOR_SCHEMA, PARTICIPANT_SCHEMA], APPEND_ONLY_TABLES],
  );
  const tables = [
    ...rows.map((r) => r.t),
    BUSINESS_TABLE,
    PARTICIPANT_TABLE,
    RAW_SAGA_TABLE,
    RAW_ORCH_OUTBOX,
    RAW_PART_OUTBOX,
  ];
  await admin.query(`TRUNCATE ${tables.join(', ')}`);
  await admin.query('CHECKPOINT');
}

export const sagaRemote2Step: Scenario = {
  name: NAME,
  description:
    'A 2-step saga over a real broker: reserve (LOCAL, one business row) → charge (REMOTE: the command ' +
    'goes through the orchestrator’s outbox and relay; the participant, a second Nest service with its ' +
    'own schema, DataSource, relay and broker connection, handles it once through its inbox, inserts ' +
    'its row idempotently and replies through its outbox; the orchestrator applies the reply in an ' +
    'inbox transaction and the saga completes). Both services run in the bench process. Closed loop, ' +
    'timed from SagaService.start() to the saga.completed event.',

  async run(ctx: ScenarioContext): Promise<SagaRemoteScenarioResult> {
    const { target, poolSize } = ctx;
    const b: BrokerProfile = ctx.profile.brokers!;
    // The profile's points (1, 16, 64 by default; --concurrency overrides them).
    const concurrencies = ctx.profile.concurrency;
    const runId = `${Date.now().toString(36)}-r`;
    const admin = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    await admin.connect();
    await createTables(admin);

    const measureBroker = async (bt: BrokerTarget): Promise<SagaRemoteRun> => {
      const commands = `${bt.destination}-cmd`;
      const replies = `${bt.destination}-reply`;
      if (bt.kind === 'kafka') await createSageKafkaTopics([commands, replies]);
      const dataSources: DataSource[] = [];
      const brokers: Broker[] = [];
      const apps: INestApplicationContext[] = [];
      const logger = new CountingNestLogger();
      let poolErrors = 0;
      const pools = [0, 1].map((i) => {
        const pool = new pg.Pool({ ...clientConfig(target, RAW_APP), max: poolSize });
        // An idle client losing its server (the shared PostgreSQL restarted) must not kill the run.
        pool.on('error', (error) => {
          if (poolErrors++ === 0) ctx.log(`  raw pool ${i}: ${error.message}`);
        });
        return pool;
      });
      let transport: RawRoundTrip | undefined;
      const sageLegs = new Legs();
      const rawLegs = new Legs();
      const legs: NonNullable<SagaRemoteRun['legs']> = [];
      const maxConcurrentSagas =
        ctx.maxConcurrentSagas ?? Math.max(64, 2 * Math.max(...concurrencies));
      const boot = async (
        schema: string,
        providers: (new () => unknown)[],
        extra: object,
      ): Promise<INestApplicationContext> => {
        const dataSource = sagaDataSource(target, poolSize, SAGE_APP, schema);
        dataSources.push(dataSource);
        const broker = traced(bt.sage(), sageLegs);
        brokers.push(broker);
        @Module({
          imports: [
            SagaOutboxModule.forRoot({
              dataSource,
              runMigrations: true,
              schema,
              broker,
              outbox: { retention: { enabled: false } },
              ...extra,
            }),
          ],
          providers,
        })
        class BenchServiceModule {}
        const app = await NestFactory.createApplicationContext(BenchServiceModule, {
          logger,
          abortOnError: false,
        });
        apps.push(app);
        return app;
      };
      try {
        const orchestrator = await boot(ORCHESTRATOR_SCHEMA, [], {
          sagas: [definition(commands)],
          saga: { replyTo: replies, maxConcurrentSagas },
        });
        await boot(PARTICIPANT_SCHEMA, [participantProvider(commands)], {});
        const sagas = orchestrator.get(SagaService);
        const engine = orchestrator.get<SagaEngine<EntityManager>>(SagaEngine);
        const completions = new SagaCompletions();
        const unsubscribe = engine.onEvent(completions.listener);
        let n = 0;
        const sageOp: Operation = async () => {
          const t0 = performance.now();
          const { sagaId } = await sagas.start(SAGA, { n: n++ } satisfies Input);
          sageLegs.mark(sagaId, 0, t0);
          const at = await completions.wait(sagaId);
          sageLegs.mark(sagaId, 5, at);
          return at;
        };
        transport = await rawRoundTrip(bt.kind, runId, [commands, replies]);
        const rawOp = await rawSide(transport, pools[0]!, pools[1]!, commands, replies, rawLegs);

        // Statements per saga by keyword, sagas run one at a time (background loops included).
        const k = Math.min(ctx.profile.calibrationSagas, 30);
        const calibrate = async (op: Operation, app: string): Promise<Record<string, number>> => {
          for (let i = 0; i < 3; i++) await op(0);
          const before = snapshotCounts(app);
          for (let i = 0; i < k; i++) await op(0);
          return countsDelta(before, snapshotCounts(app), k);
        };
        await resetAll(admin);
        const calibration = {
          operations: k,
          subject: await calibrate(sageOp, SAGE_APP),
          ceiling: await calibrate(rawOp, RAW_APP),
        };
        ctx.log(
          `  ${bt.kind} calibration: sage ${totalOf(calibration.subject)} statements/saga ${JSON.stringify(calibration.subject)}; ` +
            `raw ${totalOf(calibration.ceiling)} ${JSON.stringify(calibration.ceiling)}`,
        );

        const points: PointResult[] = [];
        for (const concurrency of concurrencies) {
          await resetAll(admin);
          sageLegs.take();
          rawLegs.take();
          const measured = await measureInterleaved(
            { op: sageOp, monitor: new ResourceMonitor(admin, SAGE_APP) },
            { op: rawOp, monitor: new ResourceMonitor(admin, RAW_APP) },
            {
              concurrency,
              durationMs: b.latencyDurationMs,
              slices: b.latencySlices,
              warmupMs: b.latencyWarmupMs,
              sliceWarmupMs: Math.min(500, b.latencyWarmupMs),
            },
          );
          const subject: Measurement = {
            ...measured.subject,
            notes: {
              maxConcurrentSagas,
              loggedWarnings: logger.warnings,
              loggedErrors: logger.errors,
              ...(logger.first ? { firstLogged: logger.first.slice(0, 200) } : {}),
            },
          };
          const ceiling: Measurement = { ...measured.ceiling, notes: {} };
          const ratio = {
            throughput: round(subject.throughputPerSec / ceiling.throughputPerSec, 3),
            p50: round(subject.latencyMs.p50 / ceiling.latencyMs.p50, 3),
            p95: round(subject.latencyMs.p95 / ceiling.latencyMs.p95, 3),
            p99: round(subject.latencyMs.p99 / ceiling.latencyMs.p99, 3),
          };
          points.push({ concurrency, subject, ceiling, ratio });
          legs.push({ concurrency, sage: sageLegs.take(), raw: rawLegs.take() });
          ctx.log(
            `  ${bt.kind} c=${concurrency}: sage ${subject.throughputPerSec}/s p50 ${subject.latencyMs.p50} p99 ${subject.latencyMs.p99} ms | ` +
              `raw ${ceiling.throughputPerSec}/s p50 ${ceiling.latencyMs.p50} p99 ${ceiling.latencyMs.p99} ms | ratio ${ratio.throughput}` +
              (subject.errors || ceiling.errors
                ? ` | errors sage ${subject.errors} (${subject.firstError}) raw ${ceiling.errors} (${ceiling.firstError})`
                : '') +
              (logger.warnings || logger.errors
                ? ` | logged ${logger.warnings} warnings, ${logger.errors} errors: ${logger.first}`
                : ''),
          );
        }
        unsubscribe();
        return {
          broker: bt.kind,
          address: bt.address,
          client: bt.client,
          points,
          legs,
          calibration,
        };
      } finally {
        for (const app of apps.reverse()) await app.close().catch(() => undefined);
        await Promise.allSettled(brokers.map((br) => br.close()));
        await Promise.allSettled(
          dataSources.filter((d) => d.isInitialized).map((d) => d.destroy()),
        );
        await transport?.close().catch(() => undefined);
        await Promise.allSettled(pools.map((p) => p.end()));
        await dropSageDestinations(bt, commands, replies).catch((error: unknown) =>
          ctx.log(`  ${bt.kind}: cleanup failed: ${String(error)}`),
        );
      }
    };

    try {
      const { results, skipped } = await forEachBroker(runId, ctx.log, measureBroker);
      return {
        kind: 'saga-remote',
        name: NAME,
        description: this.description,
        labels: {
          unit: 'saga',
          subject:
            'two Nest application contexts (orchestrator + participant), each SagaOutboxModule.forRoot with its own ' +
            'schema, DataSource, relay (LISTEN/NOTIFY on, adapter defaults) and Sage broker adapter; replies through ' +
            'SagaReplyConsumer, commands through @SagaCommandHandler',
          ceiling:
            'node-postgres (a pool per service) + the adapter’s client library: tx(business + state + command row) → ' +
            'publish → tx(participant row + reply row) → publish → tx(state update); 3 commits, no relay, no inbox rows',
        },
        config: {
          poolSize,
          concurrency: concurrencies.join(','),
          durationMs: b.latencyDurationMs,
          slices: b.latencySlices,
          warmupMs: b.latencyWarmupMs,
          kafkaPartitions: KAFKA_PARTITIONS,
          relay: 'defaults (NOTIFY on, poll 1000 ms fallback)',
          rabbitQueue: 'quorum, durable, persistent messages',
          natsStorage: 'file',
        },
        brokers: brokerRuns(results),
        skipped,
      };
    } finally {
      await admin.end();
    }
  },
};

/**
 * Kafka: both Sage destinations as topics of KAFKA_PARTITIONS partitions before anyone subscribes
 * (the adapter would create them with the broker's default partition count), so the Sage side and
 * the raw side consume the same number of partitions.
 */
async function createSageKafkaTopics(topics: string[]): Promise<void> {
  await createKafkaTopics(await adminKafka(), topics);
}

/** A kafkajs client for topic administration on the configured Kafka (SAGE_KAFKA_BROKERS). */
async function adminKafka(): Promise<Kafka> {
  const { Kafka, logLevel } = await import('kafkajs');
  return new Kafka({
    clientId: 'sage-bench-admin',
    brokers: (process.env.SAGE_KAFKA_BROKERS ?? '').split(','),
    logLevel: logLevel.NOTHING,
  });
}

/** Deletes what the Sage side created beyond the target's own topic / queue / stream. */
async function dropSageDestinations(
  bt: BrokerTarget,
  commands: string,
  replies: string,
): Promise<void> {
  if (bt.kind === 'kafka') {
    const a = (await adminKafka()).admin();
    await a.connect();
    try {
      await a.deleteTopics({ topics: [commands, replies], timeout: 10_000 });
    } finally {
      await a.disconnect();
    }
  } else if (bt.kind === 'rabbitmq') {
    // RabbitMqBroker's queue names with a group: `${group}.${destination}` (+ `.dlq`).
    const { default: amqplib } = await import('amqplib');
    const conn = await amqplib.connect(process.env.SAGE_RABBITMQ_URL!);
    try {
      const ch = await conn.createChannel();
      for (const q of [`${PARTICIPANT_CONSUMER}.${commands}`, `${REPLY_CONSUMER}.${replies}`]) {
        await ch.deleteQueue(q);
        await ch.deleteQueue(`${q}.dlq`);
      }
    } finally {
      await conn.close().catch(() => undefined);
    }
  }
  // NATS: the consumers live in the target's stream, which its teardown deletes.
}
