/**
 * A saga worker process for the chaos tests, and the parent-side handle the tests drive it with.
 *
 * Run as a child (how the tests spawn it, see `spawnSagaWorker`):
 *   node -r ts-node/register/transpile-only -r tsconfig-paths/register saga-worker.ts '<WorkerConfig JSON>'
 *
 * The child opens its own TypeORM DataSource (its own pool) on the test database, its own
 * PostgresSagaStore and SagaEngine, registers the `chaos-dag` saga and then either starts `count`
 * sagas and runs them (mode `start`) or only runs the recovery loop (mode `recover`). It reports
 * on stdout, one JSON object per line: `{"ready":…}` once connected and registered,
 * `{"progress":…}` every 100 ms.
 * SIGTERM shuts it down gracefully; the tests mostly SIGKILL it, which is the point.
 *
 * The saga is a DAG of local steps, a → (b ∥ c) → d. Every step body and every compensation writes
 * exactly one row to the business table `effects` through `ctx.manager` (the step's transaction)
 * and sleeps a few random ms on each side of the write, so a kill -9 often lands between a step's
 * write and its commit. A saga whose input says `failAt: 'c'` fails there deterministically (after
 * its write) and compensates.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  defineSaga,
  PostgresSagaStore,
  SagaEngine,
  type SagaDefinition,
  type StepContext,
} from '@sage/saga-outbox';
import type { DataSource, EntityManager } from 'typeorm';
import { createSagaDataSource } from '../../../libs/saga-outbox/src/persistence/postgres/data-source';
import { dataSourceOptions } from '../../support/pg';

export const CHAOS_SAGA = 'chaos-dag';
/** Declaration (and topological) order of the chaos saga's steps. */
export const CHAOS_STEPS = ['a', 'b', 'c', 'd'] as const;
/** Forward attempts of every chaos step (a step failing by design fails this many times). */
export const CHAOS_STEP_ATTEMPTS = 2;

export interface ChaosInput {
  i: number;
  /** The step that fails by design (after its write), or null. */
  failAt: 'c' | null;
}

/**
 * The business table. Deliberately without a unique constraint on (saga_id, step, kind): a step
 * effect applied twice must show up as two rows, not be masked by a constraint error and a retry.
 * `id` comes from a sequence, so rolled-back inserts leave gaps (nextval is not transactional).
 */
export const EFFECTS_DDL = `
  CREATE TABLE public.effects (
    id         bigserial   PRIMARY KEY,
    saga_id    uuid        NOT NULL,
    step       text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('do', 'undo')),
    owner      text        NOT NULL,
    attempt    integer     NOT NULL,
    written_at timestamptz NOT NULL DEFAULT clock_timestamp()
  )`;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The chaos saga, whose effect rows name `ownerId` (the engine that ran the step). Every process
 * builds the same graph, so every process registers the same definition version.
 */
export function chaosSaga(ownerId: string): SagaDefinition<ChaosInput, EntityManager> {
  const write = async (
    ctx: StepContext<ChaosInput, EntityManager>,
    kind: 'do' | 'undo',
  ): Promise<void> => {
    await sleep(Math.random() * 3);
    await ctx.manager.query(
      'INSERT INTO public.effects (saga_id, step, kind, owner, attempt) VALUES ($1, $2, $3, $4, $5)',
      [ctx.sagaId, ctx.stepName, kind, ownerId, ctx.attempt],
    );
    // The write is done but not committed: the window a kill -9 should hit.
    await sleep(1 + Math.random() * 8);
  };
  const run = async (ctx: StepContext<ChaosInput, EntityManager>): Promise<{ by: string }> => {
    await write(ctx, 'do');
    if (ctx.input.failAt === ctx.stepName) {
      throw new Error(`step "${ctx.stepName}" of chaos saga #${ctx.input.i} fails by design`);
    }
    return { by: ownerId };
  };
  const compensate = (ctx: StepContext<ChaosInput, EntityManager>): Promise<void> =>
    write(ctx, 'undo');
  const retry = { maxAttempts: CHAOS_STEP_ATTEMPTS, initialDelayMs: 5, maxDelayMs: 20 };
  const compensationRetry = { maxAttempts: 5, initialDelayMs: 5, maxDelayMs: 20 };
  const spec = { run, compensate, retry, compensationRetry };
  return defineSaga<ChaosInput, EntityManager>(CHAOS_SAGA, { failureStrategy: 'FAIL_FAST' })
    .step('a', spec)
    .step('b', { ...spec, dependsOn: ['a'] })
    .step('c', { ...spec, dependsOn: ['a'] })
    .step('d', { ...spec, dependsOn: ['b', 'c'] })
    .build();
}

export interface WorkerConfig {
  database: string;
  /** `start`: start `count` sagas (and recover); `recover`: only run the recovery loop. */
  mode: 'start' | 'recover';
  ownerId: string;
  count?: number;
  /** In `start` mode, sagas with `i % failEvery === 0` fail at step c. */
  failEvery?: number;
  leaseMs: number;
  recoveryIntervalMs: number;
  maxConcurrentSagas: number;
  poolSize?: number;
  /** Print `ready`, then wait for a `go` line on stdin before starting any background work. */
  waitForGo?: boolean;
}

// ------------------------------------------------------------------------------ child side

async function workerMain(config: WorkerConfig): Promise<void> {
  const out = (msg: Record<string, unknown>): void => {
    process.stdout.write(`${JSON.stringify({ pid: process.pid, ...msg })}\n`);
  };
  const log =
    (level: string) =>
    (message: string, fields?: Record<string, unknown>): void => {
      process.stderr.write(
        `${JSON.stringify({ level, owner: config.ownerId, message, ...fields })}\n`,
      );
    };
  const dataSource: DataSource = createSagaDataSource(
    dataSourceOptions(config.database, {
      poolSize: config.poolSize ?? 10,
      applicationName: `saga-worker:${config.ownerId}`,
    }),
  );
  await dataSource.initialize();
  const engine = new SagaEngine<EntityManager>({
    store: new PostgresSagaStore(dataSource),
    ownerId: config.ownerId,
    leaseMs: config.leaseMs,
    recoveryIntervalMs: config.recoveryIntervalMs,
    maxConcurrentSagas: config.maxConcurrentSagas,
    shutdownTimeoutMs: 1_000,
    logger: {
      debug: () => undefined,
      info: () => undefined,
      warn: log('warn'),
      error: log('error'),
    },
  });
  engine.register(chaosSaga(config.ownerId));

  const counts = { started: 0, resumed: 0, stepsCompleted: 0, terminal: 0, interrupted: 0 };
  engine.onEvent((e) => {
    if (e.type === 'saga.started') counts.started++;
    else if (e.type === 'saga.resumed') counts.resumed++;
    else if (e.type === 'step.completed') counts.stepsCompleted++;
    else if (e.type === 'saga.interrupted') {
      counts.interrupted++;
      log('warn')('saga interrupted', { sagaId: e.sagaId, reason: e.reason });
    } else if (
      e.type === 'saga.completed' ||
      e.type === 'saga.compensated' ||
      e.type === 'saga.failed'
    )
      counts.terminal++;
  });
  const progress = setInterval(() => out({ progress: counts }), 100);

  let stopping = false;
  process.once('SIGTERM', () => {
    stopping = true;
    clearInterval(progress);
    process.stdin.destroy();
    void engine
      .shutdown()
      .then(() => dataSource.destroy())
      .then(() => out({ stopped: counts }));
  });

  out({ ready: config.ownerId });
  if (config.waitForGo) {
    await new Promise<void>((resolve) => {
      const lines = createInterface({ input: process.stdin });
      lines.on('line', (line) => {
        if (line.trim() === 'go') {
          lines.close();
          resolve();
        }
      });
    });
  }
  if (stopping) return;
  if (config.mode === 'start') {
    const count = config.count ?? 0;
    const failEvery = config.failEvery ?? 0;
    const input = (i: number): ChaosInput => ({
      i,
      failAt: failEvery > 0 && i % failEvery === 0 ? 'c' : null,
    });
    const direct = Math.min(count, config.maxConcurrentSagas);
    // Sagas beyond what this worker runs at once are started inside one business transaction:
    // they exist once it commits and wait in the database, unowned, for the recovery loop.
    await dataSource.transaction(async (manager) => {
      for (let i = direct; i < count; i++) {
        await engine.start(CHAOS_SAGA, input(i), { manager, idempotencyKey: `chaos-${i}` });
      }
    });
    // The first ones start together, like simultaneous requests, and run here at once.
    await Promise.all(
      Array.from({ length: direct }, (_, i) =>
        engine.start(CHAOS_SAGA, input(i), { idempotencyKey: `chaos-${i}` }),
      ),
    );
    out({ allStarted: counts });
  }
  await engine.startBackground();
}

if (require.main === module) {
  const config = JSON.parse(process.argv[2] ?? '') as WorkerConfig;
  workerMain(config).catch((error: unknown) => {
    process.stderr.write(`saga-worker ${config.ownerId} crashed: ${String(error)}\n`);
    // A half-initialised worker may hold timers or sockets; it must not linger.
    process.exit(1);
  });
}

// ----------------------------------------------------------------------------- parent side

const REPO_ROOT = join(__dirname, '..', '..', '..');

export interface WorkerHandle {
  readonly ownerId: string;
  readonly pid: number;
  /** Every JSON line the child printed on stdout, in order. */
  readonly messages: Record<string, unknown>[];
  /** The child's stderr so far (for failure messages). */
  stderr(): string;
  /** Resolves with the first message (past or future) matching `predicate`. */
  waitForMessage(
    predicate: (msg: Record<string, unknown>) => boolean,
    timeoutMs: number,
  ): Promise<Record<string, unknown>>;
  /** Writes one line to the child's stdin. */
  send(line: string): void;
  /** Sends `signal` (when still running) and resolves once the child has exited. */
  kill(signal: NodeJS.Signals): Promise<void>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly hasExited: boolean;
}

/** Spawns `saga-worker.ts` as a real OS process (its own pool, its own engine). */
export function spawnSagaWorker(config: WorkerConfig): WorkerHandle {
  return spawnWorkerScript('saga-worker.ts', config);
}

/**
 * Spawns a worker script of this directory (TypeScript, through ts-node) as a real OS process,
 * with `config` as its JSON argument; it talks back in JSON lines on stdout.
 */
export function spawnWorkerScript(script: string, config: { ownerId: string }): WorkerHandle {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '-r',
      'ts-node/register/transpile-only',
      '-r',
      'tsconfig-paths/register',
      join(__dirname, script),
      JSON.stringify(config),
    ],
    {
      cwd: REPO_ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, TS_NODE_PROJECT: join(REPO_ROOT, 'tsconfig.json') },
    },
  );
  if (child.pid === undefined) throw new Error(`could not spawn ${script} ${config.ownerId}`);
  const messages: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  let exitedFlag = false;
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    // Keep the tail only: a worker fighting a lost lease can log a lot.
    stderr = (stderr + chunk).slice(-20_000);
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      messages.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      messages.push({ text: line });
    }
    for (const w of waiters) w();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      exitedFlag = true;
      for (const w of waiters) w();
      resolve({ code, signal });
    });
  });
  child.stdin!.on('error', () => undefined); // writing to a killed child must not crash the test

  const handle: WorkerHandle = {
    ownerId: config.ownerId,
    pid: child.pid,
    messages,
    exited,
    get hasExited() {
      return exitedFlag;
    },
    stderr: () => stderr,
    waitForMessage(predicate, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const found = messages.find(predicate);
          if (found) return done(() => resolve(found));
          if (exitedFlag) {
            return done(() =>
              reject(
                new Error(
                  `worker ${config.ownerId} exited before the expected message; stderr:\n${stderr}`,
                ),
              ),
            );
          }
        };
        const timer = setTimeout(
          () =>
            done(() =>
              reject(
                new Error(
                  `worker ${config.ownerId}: no expected message within ${timeoutMs} ms; last: ${JSON.stringify(messages.at(-1))}; stderr:\n${stderr}`,
                ),
              ),
            ),
          timeoutMs,
        );
        const done = (settle: () => void): void => {
          clearTimeout(timer);
          waiters.delete(check);
          settle();
        };
        waiters.add(check);
        check();
      });
    },
    send(line) {
      child.stdin!.write(`${line}\n`);
    },
    async kill(signal) {
      if (!exitedFlag) child.kill(signal);
      await exited;
    },
  };
  return handle;
}

/**
 * Polls `probe` until `done(state)` holds and returns that state; fails after `timeoutMs` with the
 * last state seen (so a stuck run says where it stuck).
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T>,
  done: (state: T) => boolean,
  timeoutMs: number,
  intervalMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await probe();
    if (done(state)) return state;
    if (Date.now() >= deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}; last state: ${JSON.stringify(state)}`,
      );
    }
    await sleep(intervalMs);
  }
}

export interface StepAudit {
  sagaId: string;
  i: number;
  failAt: string | null;
  sagaStatus: string;
  step: string;
  stepStatus: string;
  attempts: number;
  done: number;
  undone: number;
}

/** Every step of every saga beside how many `do` / `undo` effect rows it left. */
export async function auditSteps(dataSource: DataSource): Promise<StepAudit[]> {
  const rows: StepAudit[] = await dataSource.query(`
    SELECT i.id AS "sagaId", (i.input->>'i')::int AS i, i.input->>'failAt' AS "failAt",
           i.status AS "sagaStatus", s.name AS step, s.status AS "stepStatus", s.attempts,
           (SELECT count(*) FROM public.effects e
             WHERE e.saga_id = i.id AND e.step = s.name AND e.kind = 'do')::int AS done,
           (SELECT count(*) FROM public.effects e
             WHERE e.saga_id = i.id AND e.step = s.name AND e.kind = 'undo')::int AS undone
    FROM sage.saga_instance i JOIN sage.saga_step s ON s.saga_id = i.id
    ORDER BY i.created_at, i.id, s.position`);
  return rows;
}

/**
 * The exactly-once invariant, as a list of violations (empty = holds): a step's forward effect
 * exists once iff the step completed (now `completed` or `compensated`), its undo exists once iff
 * it was compensated; a completed saga has every step completed; a compensated saga has no step
 * left completed-but-not-undone; and no effect row belongs to a step that does not exist.
 */
export async function exactlyOnceViolations(dataSource: DataSource): Promise<string[]> {
  const violations: string[] = [];
  for (const r of await auditSteps(dataSource)) {
    const where = `saga #${r.i} (${r.sagaId}, ${r.sagaStatus}) step ${r.step} (${r.stepStatus})`;
    const completedOnce = r.stepStatus === 'completed' || r.stepStatus === 'compensated';
    if (r.done !== (completedOnce ? 1 : 0))
      violations.push(`${where}: ${r.done} forward effect rows`);
    if (r.undone !== (r.stepStatus === 'compensated' ? 1 : 0)) {
      violations.push(`${where}: ${r.undone} compensation effect rows`);
    }
    if (r.sagaStatus === 'completed' && r.stepStatus !== 'completed') {
      violations.push(`${where}: step not completed in a completed saga`);
    }
    if (r.sagaStatus === 'compensated' && r.stepStatus === 'completed') {
      violations.push(`${where}: completed step left uncompensated in a compensated saga`);
    }
  }
  const [stray] = await dataSource.query<{ n: number }[]>(`
    SELECT count(*)::int AS n FROM public.effects e
    WHERE NOT EXISTS (SELECT 1 FROM sage.saga_step s WHERE s.saga_id = e.saga_id AND s.name = e.step)`);
  if (stray && stray.n > 0) violations.push(`${stray.n} effect rows of unknown sagas/steps`);
  return violations;
}
