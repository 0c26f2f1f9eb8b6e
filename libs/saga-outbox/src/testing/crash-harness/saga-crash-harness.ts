import type { ModuleMetadata, Provider } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { InvalidOptionsError } from '../../core/errors';
import { errorText } from '../../core/error-text';
import { positiveNumber } from '../../core/options';
import {
  TERMINAL_SAGA_STATUSES,
  type SagaRecord,
  type SagaStatus,
} from '../../core/ports/saga-store';
import type { ReceivedSagaCommand } from '../../core/saga/saga-command';
import type { SagaEvent } from '../../core/saga/saga-events';
import { PostgresSagaStore } from '../../persistence/postgres/postgres-saga-store';
import { queryOnce } from '../../persistence/postgres/run-statement';
import { sagaSchema, type SagaSchema } from '../../persistence/postgres/schema-name';
import type {
  StepCommitPoint,
  StepTransactionProbe,
} from '../../persistence/postgres/step-transaction-probe';
import { crashBoundaries, type CrashBoundary, type CrashPoint } from './crash-boundaries';
import { CrashHarnessFailure } from './crash-harness-failure';
import type { CrashHarnessReport, CrashRunReport } from './crash-run-report';
import { HarnessDatabase, type MigrationClass } from './harness-database';
import { HarnessLog } from './harness-log';
import { expireLease, userTable } from './harness-queries.sql';
import { HarnessWorker, type WorkerBlueprint } from './harness-worker';
import {
  RemoteParticipant,
  type RemoteStepReplies,
  type SagaOutboxMessage,
} from './remote-participant';
import { RunActivity, type StepActivity, type StepCommit } from './run-activity';
import { checkRun } from './run-checks';
import { resolveSaga, type ResolvedSaga, type SagaUnderTest } from './saga-under-test';
import { faultAt, faultError, StepFault } from './step-faults';

/** Which run this is: what `input` and `seed` may vary on. */
export interface CrashRunInfo {
  /** The boundary this run crashes at; undefined for a run without a crash. */
  readonly boundary: CrashBoundary | undefined;
  /** The faults injected in this run (the harness's own and the scenario's). */
  readonly faults: readonly StepFault[];
  /** 1-based count of runs of this harness. */
  readonly index: number;
}

/** What the invariants get once the run's saga has ended. */
export interface CrashHarnessCheck<TInput = unknown> extends CrashRunInfo {
  /** A connection of the harness's own to the saga's database (not a worker's). */
  readonly manager: EntityManager;
  /** The saga as stored at the end: status, error, each step's status, attempts and result. */
  readonly saga: SagaRecord;
  readonly input: TInput;
  /** Per step: how often it (and its compensation) ran and committed, over both workers. */
  readonly steps: Readonly<Record<string, StepActivity>>;
  /** Step transactions that committed, in order. */
  readonly commits: readonly StepCommit[];
  /** Remote steps' commands the saga sent, as the harness answered them. */
  readonly commands: readonly ReceivedSagaCommand[];
  /** Everything the saga committed to the outbox (commands and `ctx.emit` messages), in order. */
  readonly messages: readonly SagaOutboxMessage[];
}

/** `sagaCrashHarness` options. */
export interface SagaCrashHarnessOptions<TInput = unknown> {
  /**
   * The saga under test: its `@Saga()` provider class (added to each worker's providers), or a
   * `defineSaga(...).build()` definition (given to SagaOutboxModule as `sagas`).
   */
  saga: SagaUnderTest<TInput>;
  /**
   * Modules the saga's providers need, imported by every worker. Not SagaOutboxModule: each worker
   * has its own, on its own connections.
   */
  imports?: ModuleMetadata['imports'];
  /**
   * Providers the saga needs. Every worker builds its own instances: state that must outlive a
   * crash (a fake payment gateway standing for an outside system) belongs in a `useValue` made
   * outside. The worker's TypeORM `DataSource` is provided too (it dies with the worker). The saga
   * class itself is added by the harness: do not list it here.
   */
  providers?: Provider[];
  /** The saga's input, or a function of the run giving it. */
  input: TInput | ((run: CrashRunInfo) => TInput);
  /** Migrations creating the tables the steps write (run once, after Sage's). */
  migrations?: MigrationClass[];
  /** Runs once on the database after the migrations (create what migrations do not). */
  setup?: (dataSource: DataSource) => Promise<void>;
  /**
   * Tables the steps write (`"table"` or `"schema.table"`), emptied before every run, as Sage's
   * own tables are: each run starts from the same state.
   */
  tables?: string[];
  /** Runs before every run, after the tables were emptied: insert what the saga needs (stock, accounts). */
  seed?: (manager: EntityManager, run: CrashRunInfo) => Promise<void>;
  /**
   * Your saga's invariants, checked after every run once the saga ended: throw (or fail an
   * `expect`) when one does not hold. For example "one payment row", "stock back to its initial
   * level after compensation", "each effect exactly once".
   */
  invariants?: (check: CrashHarnessCheck<TInput>) => void | Promise<void>;
  /** The replies of the participants of remote steps, by step name (required for each remote step). */
  remote?: Record<string, RemoteStepReplies>;
  /** Faults injected in every run (e.g. a first attempt that times out), on top of each scenario's. */
  faults?: StepFault[];
  /**
   * Default: embedded PGlite, started once for the harness. `url`: a PostgreSQL database the
   * harness may migrate and empty between runs (a throwaway one).
   */
  database?: { url?: string };
  /** Schema of Sage's tables. Default `sage`. */
  schema?: string;
  /** How long one run may take before it fails as not ending. Default 15000. */
  runTimeoutMs?: number;
  /** Print the workers' logs (they are kept for failure reports either way). Default false. */
  printLogs?: boolean;
}

/** A harness for one saga: see `sagaCrashHarness`. */
export interface SagaCrashHarness {
  /** The saga's name. */
  readonly saga: string;
  /**
   * Every step boundary of the saga (see CrashBoundary), computed from its graph without running
   * anything: one Jest test each with `it.each(harness.boundaries())('$name', (b) => harness.run(b))`.
   */
  boundaries(): CrashBoundary[];
  /**
   * Starts the database and migrates it (the first run does it otherwise): call it in `beforeAll`
   * to keep PGlite's startup out of the first test's time.
   */
  start(): Promise<void>;
  /**
   * Runs the saga, kills the worker at `boundary` (or the boundary of that name), recovers it in a
   * fresh worker and checks the run (see `sagaCrashHarness`). Throws CrashHarnessFailure naming the
   * boundary and what broke; resolves with the run's report when it passed.
   */
  run(boundary: CrashBoundary | string): Promise<CrashRunReport>;
  /**
   * Runs the saga with `faults` and no crash and checks it as `run` does (but the ending is
   * whatever it is: assert it on the report, or in the invariants).
   */
  runScenario(faults?: readonly StepFault[]): Promise<CrashRunReport>;
  /** Runs every boundary in turn; throws one CrashHarnessFailure listing each that broke. */
  runAllBoundaries(): Promise<CrashHarnessReport>;
  /** Stops the database (PGlite) and closes the harness's connections. */
  close(): Promise<void>;
}

const DEFAULT_RUN_TIMEOUT_MS = 15_000;
/** Where remote steps "reply" (the harness applies replies itself; the name only has to be valid). */
const HARNESS_REPLY_TO = 'sage.crash-harness.replies';
const POLL_MS = 10;
const FAILED_RUN_LOG_LINES = 12;
const INVARIANT_FAILED = 'invariant failed:';

/**
 * A harness that crash-tests a saga: for every step boundary it runs the saga in a Nest testing
 * module (SagaOutboxModule on embedded PGlite, or PostgreSQL), kills that worker there as `kill -9`
 * would (its connections drop, so the open transaction rolls back; nothing after the boundary
 * happens in it), starts a fresh worker on the same database that recovers the saga, and checks:
 * - the saga ended, with the status it has when nothing crashes;
 * - compensations ran dependants first, each only for a step that committed;
 * - no local step (or compensation) committed twice;
 * - your `invariants` (each effect once, nothing left behind after compensation, ...).
 * Compensation boundaries come from making a step fail for good (`StepFault.failForGood`); add
 * your own faults (`StepFault`) to test retry policies and timeouts.
 *
 * ```ts
 * const harness = sagaCrashHarness({
 *   saga: OrderPlacementSaga,
 *   migrations: [OrderTables1764230500000],
 *   tables: ['orders.customer_order', 'orders.stock'],
 *   seed: (m) => m.query(`INSERT INTO orders.stock VALUES ('widget', 5)`),
 *   input: { orderId: 'o-1', sku: 'widget', quantity: 2 },
 *   invariants: async ({ manager, saga }) => { ... },
 * });
 * afterAll(() => harness.close());
 * it.each(harness.boundaries())('$name', (boundary) => harness.run(boundary));
 * ```
 */
export function sagaCrashHarness<TInput>(
  options: SagaCrashHarnessOptions<TInput>,
): SagaCrashHarness {
  return new CrashHarness(options);
}

class CrashHarness<TInput> implements SagaCrashHarness {
  private readonly resolved: ResolvedSaga;
  private readonly schema: SagaSchema;
  private readonly runTimeoutMs: number;
  private readonly log: HarnessLog;
  private readonly blueprint: WorkerBlueprint;
  private readonly baseFaults: readonly StepFault[];
  private readonly list: CrashBoundary[];
  private database: Promise<HarnessDatabase> | undefined;
  private readonly references = new Map<string, Promise<CrashRunReport>>();
  private runs = 0;
  private closed = false;
  /** Runs share one database: they take turns, even when called at once. */
  private turn: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: SagaCrashHarnessOptions<TInput>) {
    if (typeof options !== 'object' || options === null)
      throw new InvalidOptionsError('sagaCrashHarness', 'needs options: { saga, input, ... }');
    this.resolved = resolveSaga(options.saga);
    this.schema = sagaSchema(options.schema);
    this.runTimeoutMs = positiveNumber(
      'sagaCrashHarness runTimeoutMs',
      options.runTimeoutMs ?? DEFAULT_RUN_TIMEOUT_MS,
    );
    this.baseFaults = [...(options.faults ?? [])];
    validateRemote(this.resolved, options.remote ?? {});
    for (const f of this.baseFaults) validateFault(this.resolved, f);
    // Checked now rather than at the first run: a typo fails where the harness is made.
    (options.tables ?? []).forEach(userTable);
    this.log = new HarnessLog(options.printLogs === true);
    const remote = [...this.resolved.graph.steps.values()].some((s) => s.kind === 'remote');
    this.blueprint = {
      saga: this.resolved,
      imports: options.imports ?? [],
      providers: options.providers ?? [],
      schema: this.schema.name,
      replyTo: remote ? HARNESS_REPLY_TO : undefined,
      logger: this.log,
    };
    this.list = crashBoundaries(this.resolved.graph);
  }

  get saga(): string {
    return this.resolved.name;
  }

  boundaries(): CrashBoundary[] {
    return [...this.list];
  }

  async start(): Promise<void> {
    await this.db();
  }

  async run(boundary: CrashBoundary | string): Promise<CrashRunReport> {
    const b = this.boundary(boundary);
    const report = await this.runBoundary(b);
    if (report.problems.length) throw new CrashHarnessFailure(this.saga, [report]);
    return report;
  }

  async runScenario(faults: readonly StepFault[] = []): Promise<CrashRunReport> {
    for (const f of faults) validateFault(this.resolved, f);
    const report = await this.execute(undefined, [...this.baseFaults, ...faults], undefined);
    if (report.problems.length) throw new CrashHarnessFailure(this.saga, [report]);
    return report;
  }

  async runAllBoundaries(): Promise<CrashHarnessReport> {
    const began = Date.now();
    const runs: CrashRunReport[] = [];
    for (const b of this.list) runs.push(await this.runBoundary(b));
    const references = await Promise.all(this.references.values());
    const failed = runs.filter((r) => r.problems.length);
    if (failed.length) throw new CrashHarnessFailure(this.saga, failed, runs.length);
    return { saga: this.saga, runs, references, durationMs: Date.now() - began };
  }

  async close(): Promise<void> {
    this.closed = true;
    const db = this.database;
    this.database = undefined;
    if (db) await (await db.catch(() => undefined))?.close();
  }

  // ------------------------------------------------------------------ runs

  private boundary(b: CrashBoundary | string): CrashBoundary {
    const name = typeof b === 'string' ? b : b?.name;
    const found = this.list.find((x) => x.name === name);
    if (!found)
      throw new InvalidOptionsError(
        'boundary',
        `saga "${this.saga}" has no boundary named ${JSON.stringify(name)}; harness.boundaries() lists them`,
      );
    return found;
  }

  private async runBoundary(b: CrashBoundary): Promise<CrashRunReport> {
    const faults = this.scenarioFaults(b);
    const reference = await this.reference(faults);
    const expected = reference.status === 'not started' ? undefined : reference.status;
    const report = await this.execute(b, faults, expected);
    if (!reference.problems.length) return report;
    return {
      ...report,
      problems: [
        ...report.problems,
        `the same scenario fails without a crash too:\n${reference.problems.join('\n')}`,
      ],
    };
  }

  private scenarioFaults(b: CrashBoundary): StepFault[] {
    return b.failingStep
      ? [...this.baseFaults, StepFault.failForGood(b.failingStep)]
      : [...this.baseFaults];
  }

  /** The scenario's run without a crash (once per harness): how it ends when nothing crashes. */
  private reference(faults: readonly StepFault[]): Promise<CrashRunReport> {
    const key = faults.map((f) => f.description).join('|');
    let reference = this.references.get(key);
    if (!reference) {
      reference = this.execute(undefined, faults, undefined);
      this.references.set(key, reference);
    }
    return reference;
  }

  private db(): Promise<HarnessDatabase> {
    if (this.closed)
      return Promise.reject(
        new InvalidOptionsError('sagaCrashHarness', 'the harness was closed (harness.close())'),
      );
    this.database ??= HarnessDatabase.open({
      url: this.options.database?.url,
      schema: this.schema,
      migrations: this.options.migrations ?? [],
      tables: this.options.tables ?? [],
      setup: this.options.setup,
    });
    return this.database;
  }

  /**
   * One run: worker 1 starts the saga and, at `boundary`, is killed; worker 2 recovers it. Without
   * a boundary, worker 1 runs the saga to its end.
   */
  private execute(
    boundary: CrashBoundary | undefined,
    faults: readonly StepFault[],
    expectedStatus: SagaStatus | undefined,
  ): Promise<CrashRunReport> {
    const run = this.turn.then(() => this.executeNow(boundary, faults, expectedStatus));
    this.turn = run.catch(() => undefined);
    return run;
  }

  private async executeNow(
    boundary: CrashBoundary | undefined,
    faults: readonly StepFault[],
    expectedStatus: SagaStatus | undefined,
  ): Promise<CrashRunReport> {
    const db = await this.db();
    const began = Date.now();
    const info: CrashRunInfo = { boundary, faults, index: ++this.runs };
    const name = boundary?.name ?? (faults.map((f) => f.description).join('; ') || 'no faults');
    this.log.reset();
    await db.reset(this.options.seed ? (m) => this.options.seed!(m, info) : undefined);
    const run = new RunState(this.resolved, faults, boundary?.crash, this.log);
    const participant = new RemoteParticipant(db, this.schema, this.options.remote ?? {}, faults);
    const input =
      typeof this.options.input === 'function'
        ? (this.options.input as (run: CrashRunInfo) => TInput)(info)
        : this.options.input;
    const problems: string[] = [];
    let sagaId: string | undefined;
    let record: SagaRecord | undefined;
    let workers: { live: HarnessWorker } | undefined;
    try {
      workers = { live: await this.startWorker(db, 1, run) };
      sagaId = (await workers.live.engine.start(this.saga, input)).sagaId;
      record = await this.drive(db, run, participant, sagaId, workers);
      if (!TERMINAL_SAGA_STATUSES.includes(record.status))
        problems.push(
          `the saga did not end within ${this.runTimeoutMs} ms (runTimeoutMs): it is "${record.status}"; steps: ${record.steps.map((s) => `${s.name}=${s.status}`).join(', ')}. A step waiting on something that never comes? (On PGlite, a step that uses another connection than ctx.manager waits for ever.)`,
        );
      else if (boundary && !run.crashed)
        problems.push(
          `the boundary was never reached: the saga ended "${record.status}" before it (do the input, the seed and the faults lead through it?)`,
        );
    } catch (error) {
      problems.push(`the run failed: ${errorText(error)}`);
    } finally {
      // A worker left mid-run (out of time, or the run failed) is killed, not shut down: it may
      // hold the database (a step stuck in its transaction).
      if (run.timedOut || problems.length) workers?.live.kill('the run was abandoned');
      await workers?.live.close().catch((error: unknown) => {
        problems.push(`the worker did not shut down cleanly: ${errorText(error)}`);
      });
    }
    if (sagaId) record = (await this.store(db).load(sagaId)) ?? record;
    const reached = !boundary || run.crashed;
    if (record && reached && TERMINAL_SAGA_STATUSES.includes(record.status)) {
      problems.push(
        ...checkRun({
          graph: this.resolved.graph,
          saga: record,
          expectedStatus,
          commits: run.activity.commits,
        }),
      );
      if (this.options.invariants) {
        try {
          await this.options.invariants({
            ...info,
            manager: db.manager,
            saga: record,
            input,
            steps: run.activity.steps,
            commits: run.activity.commits,
            commands: participant.commands,
            messages: await participant.messages(record.id),
          });
        } catch (error) {
          problems.push(`${INVARIANT_FAILED} ${invariantText(error)}`);
        }
      }
    }
    return {
      name,
      boundary,
      faults,
      sagaId,
      status: record?.status ?? 'not started',
      error: record?.error ?? null,
      expectedStatus,
      crashed: run.crashed,
      steps: run.activity.steps,
      commits: run.activity.commits,
      commands: participant.commands,
      activity: run.activity.describe(),
      problems,
      // The workers' log explains a run that went astray, not a broken invariant.
      log: problems.some((p) => !p.startsWith(INVARIANT_FAILED))
        ? this.log.tail(FAILED_RUN_LOG_LINES)
        : [],
      durationMs: Date.now() - began,
    };
  }

  /**
   * Drives the run to the saga's end: answers remote commands, and once worker 1 is killed,
   * disposes of it, lets its lease run out and starts worker 2 in its place (`workers.live`).
   * Resolves with the saga as stored at the end, or when the run's time is up: then the live
   * worker is killed, which also frees a database it holds (on PGlite one open transaction makes
   * every other connection wait, the harness's own included).
   */
  private async drive(
    db: HarnessDatabase,
    run: RunState,
    participant: RemoteParticipant,
    sagaId: string,
    workers: { live: HarnessWorker },
  ): Promise<SagaRecord> {
    const store = this.store(db);
    const timer = setTimeout(() => {
      run.timedOut = true;
      workers.live.kill('the run did not end in time');
      run.wakeUp();
    }, this.runTimeoutMs);
    let lastLook = false;
    try {
      for (;;) {
        if (workers.live.killed && !run.timedOut) {
          const dead = workers.live;
          await dead.close();
          await queryOnce(db.dataSource, expireLease(this.schema, { sagaId, owner: dead.ownerId }));
          this.log.mark('worker 2 started: it recovers the saga');
          workers.live = await this.startWorker(db, 2, run);
          continue;
        }
        if (run.remote && !run.timedOut) await participant.answer(sagaId, workers.live.engine);
        const record = await store.load(sagaId);
        if (!record) throw new Error(`saga ${sagaId} is not in the database`);
        if (run.timedOut) return record;
        if (TERMINAL_SAGA_STATUSES.includes(record.status) && !workers.live.killed) {
          // The last step's transaction also completes the saga: its COMMIT may show here just
          // before the worker's probe hears of it (and dies after it, at that boundary).
          if (run.expectsCrash && !lastLook) {
            lastLook = true;
            await run.changes(POLL_MS);
            continue;
          }
          return record;
        }
        await run.changes(POLL_MS);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  private store(db: HarnessDatabase): PostgresSagaStore {
    return new PostgresSagaStore(db.dataSource, { schema: this.schema.name });
  }

  private startWorker(db: HarnessDatabase, index: number, run: RunState): Promise<HarnessWorker> {
    return HarnessWorker.start(index, db, this.blueprint, {
      probe: (worker) => run.probe(worker),
      onEvent: (worker) => (event) => run.onEvent(worker, event),
    });
  }
}

/** One run's state: the crash target, what the workers' step transactions did, and who died. */
class RunState {
  readonly activity: RunActivity;
  readonly remote: boolean;
  crashed = false;
  /** The run's time ran out (its live worker was killed for it). */
  timedOut = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly saga: ResolvedSaga,
    private readonly faults: readonly StepFault[],
    private readonly target: CrashPoint | undefined,
    private readonly log: HarnessLog,
  ) {
    this.activity = new RunActivity(saga.graph.order);
    this.remote = [...saga.graph.steps.values()].some((s) => s.kind === 'remote');
  }

  /** A crash is targeted and has not happened yet. */
  get expectsCrash(): boolean {
    return this.target !== undefined && !this.crashed;
  }

  /** Wakes whoever waits in `changes`. */
  wakeUp(): void {
    this.wake?.();
  }

  /** Resolves when something happened (a worker died, the saga moved), or after `ms`. */
  changes(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  /** The probe of `worker`'s step transactions: faults, activity, and the crash at the boundary. */
  probe(worker: HarnessWorker): StepTransactionProbe {
    return {
      body: async (point, run) => {
        this.activity.ran(point);
        const step = this.saga.graph.steps.get(point.step);
        const fault = faultAt(this.faults, point);
        // A local attempt outlasting its timeout: the phase loop aborts its signal meanwhile, and
        // the attempt fails with StepTimeoutError once the step's code returns.
        if (fault?.kind === 'timeout' && step?.kind === 'local' && step.timeoutMs !== null)
          await sleep(step.timeoutMs + 20);
        if (fault?.kind === 'throw' && fault.at === 'start') throw faultError(fault, point.attempt);
        const value = await run();
        if (fault?.kind === 'throw') throw faultError(fault, point.attempt);
        return value;
      },
      beforeCommit: (point) => this.maybeCrash(worker, 'before-commit', point),
      afterCommit: (point) => {
        this.activity.committed(point, worker.index);
        this.maybeCrash(worker, 'after-commit', point);
      },
    };
  }

  /** `after-failure` boundaries: the step's final failure is recorded (the event follows it). */
  onEvent(worker: HarnessWorker, event: SagaEvent): void {
    const t = this.target;
    if (
      t?.kind === 'after-failure' &&
      event.type === 'step.failed' &&
      event.step === t.step &&
      this.mayCrash(worker)
    )
      this.kill(worker, `after the failure of "${t.step}" was recorded`);
    if (event.type.startsWith('saga.') || event.type === 'step.waiting') this.wake?.();
  }

  private maybeCrash(
    worker: HarnessWorker,
    kind: 'before-commit' | 'after-commit',
    point: StepCommitPoint,
  ): void {
    const t = this.target;
    if (!t || t.kind !== kind || t.step !== point.step || t.phase !== point.phase) return;
    if (!this.mayCrash(worker)) return;
    const where = `${kind} of ${point.phase === 'forward' ? '' : 'the compensation of '}"${point.step}"`;
    this.kill(worker, where);
    // The store reports its COMMIT failed (SagaStoreUnavailableError): the worker stops driving
    // the saga, as after a lost connection. Nothing it does next reaches the database anyway.
    throw new Error(`worker killed by the crash harness (${where})`);
  }

  /** Only worker 1 dies, once. */
  private mayCrash(worker: HarnessWorker): boolean {
    return worker.index === 1 && !this.crashed;
  }

  private kill(worker: HarnessWorker, where: string): void {
    worker.kill(where);
    this.log.mark(`worker 1 killed: ${where}`);
    this.crashed = true;
    this.wake?.();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Jest's assertion errors carry their own full message (matcher hint, expected, received). */
function invariantText(error: unknown): string {
  if (error instanceof Error) return error.message;
  return errorText(error);
}

function validateRemote(
  saga: ResolvedSaga,
  remote: Readonly<Record<string, RemoteStepReplies>>,
): void {
  const remoteSteps = [...saga.graph.steps.values()].filter((s) => s.kind === 'remote');
  for (const step of remoteSteps) {
    if (typeof remote[step.name]?.forward !== 'function')
      throw new InvalidOptionsError(
        'sagaCrashHarness remote',
        `step "${step.name}" of saga "${saga.name}" is remote, and the harness plays its participant: give its replies, e.g. remote: { '${step.name}': { forward: (command) => ({ ok: true, result: ... }) } }`,
      );
  }
  for (const name of Object.keys(remote)) {
    if (!remoteSteps.some((s) => s.name === name))
      throw new InvalidOptionsError(
        'sagaCrashHarness remote',
        `"${name}" is not a remote step of saga "${saga.name}" (its remote steps: ${remoteSteps.map((s) => `"${s.name}"`).join(', ') || 'none'})`,
      );
  }
}

function validateFault(saga: ResolvedSaga, fault: StepFault): void {
  const step = saga.graph.steps.get(fault.step);
  if (!step)
    throw new InvalidOptionsError(
      'sagaCrashHarness faults',
      `"${fault.step}" is not a step of saga "${saga.name}" (its steps: ${saga.graph.order.map((s) => `"${s}"`).join(', ')})`,
    );
  if (fault.phase === 'compensate' && !step.compensate)
    throw new InvalidOptionsError(
      'sagaCrashHarness faults',
      `step "${fault.step}" of saga "${saga.name}" has no compensation to fault`,
    );
  if (fault.kind === 'timeout' && step.kind === 'local' && step.timeoutMs === null)
    throw new InvalidOptionsError(
      'sagaCrashHarness faults',
      `step "${fault.step}" of saga "${saga.name}" has no timeoutMs, so it cannot time out: set { timeoutMs } on the step to test its timeout`,
    );
}
