import pg from 'pg';
import type { EntityManager } from 'typeorm';
import {
  defineSaga,
  PostgresSagaStore,
  SagaEngine,
  uuidv7,
  type SagaDefinition,
  type SageLogger,
} from '@sage/saga-outbox';
import type { Operation } from '../harness/closed-loop';
import {
  clientConfig,
  inTransaction,
  INSERT_BUSINESS_ROW,
  resetTables,
  sagaDataSource,
} from '../harness/database';
import { measureInterleaved } from '../harness/interleave';
import * as q from '../harness/raw-sql';
import { SagaCompletions } from '../harness/saga-completions';
import { countsDelta, snapshotCounts, totalOf } from '../harness/query-counter';
import { ResourceMonitor } from '../harness/resources';
import type { Measurement, PointResult, ScenarioResult } from '../harness/results';
import { round } from '../harness/stats';
import type { Scenario, ScenarioContext } from './scenario';

const NAME = 'saga-local-3step';
const SAGA = 'bench-local-3step';
const STEPS = ['a', 'b', 'c'] as const;
const LEASE_MS = 30_000; // the engine's default, spelled out because the raw side needs it too
const ENGINE_APP = 'sage-bench-engine';
const RAW_APP = 'sage-bench-raw';

interface Input {
  n: number;
}

/**
 * Linear a → b → c, every step LOCAL: it inserts one business row through `ctx.manager`, i.e. in
 * the step's own transaction, which also records the step done. The compensation is never run here
 * (nothing fails); it exists because a compensatable step must declare one.
 */
function definition(firstStepInStart: boolean): SagaDefinition<Input, EntityManager> {
  const run = async (ctx: {
    sagaId: string;
    stepName: string;
    manager: EntityManager;
  }): Promise<void> => {
    await ctx.manager.query(INSERT_BUSINESS_ROW, [ctx.sagaId, ctx.stepName]);
  };
  const compensate = async (ctx: {
    sagaId: string;
    stepName: string;
    manager: EntityManager;
  }): Promise<void> => {
    await ctx.manager.query('DELETE FROM bench.business_row WHERE saga_id = $1 AND step = $2', [
      ctx.sagaId,
      ctx.stepName,
    ]);
  };
  return defineSaga<Input, EntityManager>(SAGA, { firstStepInStart })
    .step('a', { run, compensate })
    .step('b', { dependsOn: ['a'], run, compensate })
    .step('c', { dependsOn: ['b'], run, compensate })
    .build();
}

/** Counts what the engine logs at warn/error: a clean run logs nothing. */
function countingLogger(): SageLogger & { warnings: number; errors: number; first: string | null } {
  const logger = {
    warnings: 0,
    errors: 0,
    first: null as string | null,
    debug: (): void => undefined,
    info: (): void => undefined,
    warn: (message: string): void => {
      logger.warnings++;
      logger.first ??= message;
    },
    error: (message: string): void => {
      logger.errors++;
      logger.first ??= message;
    },
  };
  return logger;
}

/**
 * The raw ceiling: what PostgresSagaStore sends for one saga, statement for statement (the same
 * SQL, copied into harness/raw-sql.ts), through a plain node-postgres Pool — no TypeORM, no engine.
 * By default (start() commits on its own):
 *   autocommit insert instance + 3 step rows, one statement                (store.create)
 *   (no read back: engine.start() runs the saga from the state it just wrote)
 *   tx 1..3   BEGIN; lock step; business insert; fenced complete step; COMMIT   (runStepTransaction × 3)
 *   tx 3 also: conditional status update → completed, before its COMMIT   (the last step completes the saga)
 * With firstStepInStart (the first step runs in start()'s transaction):
 *   tx 1      BEGIN; insert instance + steps; business insert; fenced complete step; COMMIT
 *             (store.createWithFirstStep: no step lock, the rows are its own)
 *   tx 2..3   as above, tx 3 completing the saga
 * The calibration in the results checks the counts match the engine's.
 */
function rawSaga(
  pool: pg.Pool,
  def: SagaDefinition<Input, EntityManager>,
  owner: string,
): Operation {
  const t = q.benchTables('sage');
  const exec = <Row extends pg.QueryResultRow>(
    c: pg.Pool | pg.PoolClient,
    s: q.Statement<Row>,
  ): Promise<pg.QueryResult<Row>> => c.query<Row>(s.text, [...s.values]);
  const complete = async (c: pg.PoolClient, id: string, step: string): Promise<void> => {
    await c.query(INSERT_BUSINESS_ROW, [id, step]);
    const done = await exec(
      c,
      q.completeStep(t, { sagaId: id, owner, step, result: null, attempt: 1 }),
    );
    if (done.rows[0]?.fenced !== 1) throw new Error('raw: fence lost');
    if (done.rows[0]?.recorded !== 1) throw new Error(`raw: step ${step} not recorded`);
  };
  const last = def.order[def.order.length - 1];
  let n = 0;
  return async () => {
    const id = uuidv7();
    const input: Input = { n: n++ };
    const create = q.createSaga(t, {
      id,
      name: def.name,
      version: def.version,
      input,
      idempotencyKey: null,
      inputFingerprint: null,
      owner,
      leaseMs: LEASE_MS,
      timeoutMs: def.timeoutMs,
      stepNames: def.order,
    });
    const steps = [...def.order];
    if (def.firstStepInStart) {
      const first = steps.shift()!;
      await inTransaction(pool, async (c) => {
        const inserted = await exec(c, create);
        if (inserted.rowCount !== 1) throw new Error('raw: instance not inserted');
        await complete(c, id, first);
      });
    } else {
      const inserted = await exec(pool, create);
      if (inserted.rowCount !== 1) throw new Error('raw: instance not inserted');
    }
    for (const step of steps) {
      await inTransaction(pool, async (c) => {
        const locked = await exec(c, q.lockStep(t, { sagaId: id, step }));
        if (locked.rows[0]?.status !== 'pending') throw new Error(`raw: step ${step} not pending`);
        await complete(c, id, step);
        if (step !== last) return;
        const finished = await exec(
          c,
          q.transitionSaga(t, {
            sagaId: id,
            owner,
            from: ['running'],
            to: 'completed',
            error: null,
            failedStep: null,
          }),
        );
        if (finished.rowCount !== 1) throw new Error('raw: final transition did not apply');
      });
    }
  };
}

async function runSequential(op: Operation, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await op(0);
}

/** The scenario, by default or with SagaOptions.firstStepInStart (its own name and raw loop). */
function localScenario(firstStepInStart: boolean): Scenario {
  const name = firstStepInStart ? `${NAME}-first-step-in-start` : NAME;
  return {
    name,
    description:
      'A 3-step LOCAL saga (a → b → c, each step inserts one business row through ctx.manager), ' +
      'driven by engine.start() and timed to its saga.completed event' +
      (firstStepInStart
        ? '; with firstStepInStart, so start() stores the saga and runs step a in one transaction.'
        : '.'),

    async run(ctx: ScenarioContext): Promise<ScenarioResult> {
      const { target, profile, poolSize } = ctx;
      const def = definition(firstStepInStart);
      const dataSource = sagaDataSource(target, poolSize, ENGINE_APP);
      await dataSource.initialize();
      const store = new PostgresSagaStore(dataSource);
      const pool = new pg.Pool({ ...clientConfig(target, RAW_APP), max: poolSize });
      const admin = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
      await admin.connect();

      const engineOp = (engine: SagaEngine<EntityManager>, waiter: SagaCompletions): Operation => {
        let n = 0;
        return async () => {
          const { sagaId } = await engine.start(SAGA, { n: n++ } satisfies Input);
          return waiter.wait(sagaId);
        };
      };
      const newEngine = (
        maxConcurrentSagas: number | undefined,
      ): {
        engine: SagaEngine<EntityManager>;
        waiter: SagaCompletions;
        logger: ReturnType<typeof countingLogger>;
      } => {
        const logger = countingLogger();
        const engine = new SagaEngine<EntityManager>({
          store,
          logger,
          leaseMs: LEASE_MS,
          maxConcurrentSagas,
        });
        engine.register(def);
        const waiter = new SagaCompletions();
        engine.onEvent(waiter.listener);
        return { engine, waiter, logger };
      };

      try {
        // Calibration: sagas one at a time, no background loops, counting every statement sent.
        await resetTables(admin);
        const cal = newEngine(undefined);
        const k = profile.calibrationSagas;
        await runSequential(engineOp(cal.engine, cal.waiter), 5);
        let before = snapshotCounts();
        await runSequential(engineOp(cal.engine, cal.waiter), k);
        const subjectCounts = countsDelta(before, snapshotCounts(), k);
        await cal.engine.shutdown();
        const rawCal = rawSaga(pool, def, uuidv7());
        await runSequential(rawCal, 5);
        before = snapshotCounts();
        await runSequential(rawCal, k);
        const ceilingCounts = countsDelta(before, snapshotCounts(), k);
        ctx.log(
          `  calibration: engine ${totalOf(subjectCounts)} statements/saga ${JSON.stringify(subjectCounts)}; ` +
            `raw ${totalOf(ceilingCounts)} ${JSON.stringify(ceilingCounts)}`,
        );

        const points: PointResult[] = [];
        for (const concurrency of profile.concurrency) {
          // maxConcurrentSagas must exceed the closed loop's width: saga.completed fires before the
          // engine frees the saga's slot, so a worker starting its next saga at once would otherwise
          // find the engine "full" and its saga would take the recovery path (claim + resume).
          const maxConcurrentSagas = ctx.maxConcurrentSagas ?? Math.max(64, concurrency * 2);
          await resetTables(admin);
          const e = newEngine(maxConcurrentSagas);
          await e.engine.startBackground();
          const measured = await measureInterleaved(
            { op: engineOp(e.engine, e.waiter), monitor: new ResourceMonitor(admin, ENGINE_APP) },
            { op: rawSaga(pool, def, uuidv7()), monitor: new ResourceMonitor(admin, RAW_APP) },
            {
              concurrency,
              durationMs: profile.durationMs,
              slices: profile.slices,
              warmupMs: profile.warmupMs,
              sliceWarmupMs: profile.sliceWarmupMs,
            },
          );
          await e.engine.shutdown();
          const subjectM: Measurement = {
            ...measured.subject,
            notes: {
              maxConcurrentSagas,
              resumedByRecovery: e.waiter.resumed,
              interrupted: e.waiter.interrupted,
              loggedWarnings: e.logger.warnings,
              loggedErrors: e.logger.errors,
              ...(e.logger.first ? { firstLogged: e.logger.first } : {}),
            },
          };
          const ceilingM: Measurement = { ...measured.ceiling, notes: {} };

          const ratio = {
            throughput: round(subjectM.throughputPerSec / ceilingM.throughputPerSec, 3),
            p50: round(subjectM.latencyMs.p50 / ceilingM.latencyMs.p50, 3),
            p95: round(subjectM.latencyMs.p95 / ceilingM.latencyMs.p95, 3),
            p99: round(subjectM.latencyMs.p99 / ceilingM.latencyMs.p99, 3),
          };
          points.push({ concurrency, subject: subjectM, ceiling: ceilingM, ratio });
          ctx.log(
            `  c=${concurrency}: engine ${subjectM.throughputPerSec}/s p50 ${subjectM.latencyMs.p50} p99 ${subjectM.latencyMs.p99} ms | ` +
              `raw ${ceilingM.throughputPerSec}/s p50 ${ceilingM.latencyMs.p50} p99 ${ceilingM.latencyMs.p99} ms | ` +
              `ratio ${ratio.throughput}` +
              (subjectM.errors || ceilingM.errors
                ? ` | errors engine ${subjectM.errors} raw ${ceilingM.errors}`
                : ''),
          );
        }

        return {
          name,
          description: this.description,
          labels: {
            unit: 'saga',
            subject: 'SagaEngine + PostgresSagaStore (TypeORM DataSource)',
            ceiling: 'node-postgres Pool sending the same statements',
          },
          config: {
            poolSize,
            steps: STEPS.length,
            leaseMs: LEASE_MS,
            warmupMs: profile.warmupMs,
            durationMs: profile.durationMs,
            slices: profile.slices,
            sliceWarmupMs: profile.sliceWarmupMs,
            backgroundLoops: true,
            firstStepInStart,
          },
          calibration: { operations: k, subject: subjectCounts, ceiling: ceilingCounts },
          points,
        };
      } finally {
        await admin.end();
        await pool.end();
        await dataSource.destroy();
      }
    },
  };
}

export const sagaLocal3Step: Scenario = localScenario(false);
export const sagaLocal3StepFirstStepInStart: Scenario = localScenario(true);
