import {
  InvalidOptionsError,
  SagaDefinitionError,
  SagaIdempotencyConflictError,
  SagaInputInvalidError,
  SagaNotFoundError,
  SagaWaitTimeoutError,
  UnknownSagaError,
} from '../errors';
import { MessageRefusedError } from '../inbox/message-refused';
import { assertJsonSerializable, type JsonValue } from '../json';
import { SingleFlightLoop, type LoopStats } from '../loop';
import { systemClock, type Clock } from '../ports/clock';
import { silentLogger, type SageLogger } from '../ports/logger';
import {
  pendingStepRecord,
  TERMINAL_SAGA_STATUSES,
  type AppliedReply,
  type NewSaga,
  type SagaRecord,
  type SagaStore,
  type WithinTransaction,
} from '../ports/saga-store';
import { uuidv7 } from '../uuid';
import type { OutboxPublisher } from '../outbox/outbox-publisher';
import type { SagaReply } from './saga-command';
import { stepIdempotencyKey, type SagaDefinition } from './saga-definition';
import type { SagaEvent, SagaEventListener } from './saga-events';
import {
  SAGA_LIFECYCLE_EVENT_TYPES,
  SagaLifecycleEvents,
  type SagaLifecycleEventsOptions,
} from './saga-lifecycle-events';
import { SagaRunner, type RunOutcome } from './saga-runner';
import { DataUnreadableError } from '../protection/protection-errors';
import { failUnreadableSaga } from './unreadable-saga';
import {
  assertStorableText,
  choiceOption,
  nonNegativeNumber,
  optionalName,
  positiveInteger,
  positiveNumber,
} from '../options';
import { errorText } from '../error-text';
import {
  IDEMPOTENCY_CONFLICT_POLICIES,
  sagaInputFingerprint,
  type IdempotencyConflictPolicy,
} from './input-fingerprint';

/** Reasons a saga's encrypted state can never be read again, whichever process tries. */
const PERMANENT_UNREADABLE: ReadonlySet<string> = new Set([
  'subject-erased',
  'tampered',
  'malformed',
]);

export interface SagaEngineOptions<Tx> {
  store: SagaStore<Tx>;
  /** The outbox steps write to with `ctx.emit()`, in their own transaction (and remote steps' commands). */
  outbox?: OutboxPublisher<Tx>;
  /**
   * Where participants reply to remote steps' commands (topic / queue / subject this service
   * consumes; see `applyReply`). Required to register a saga with remote steps.
   */
  replyTo?: string;
  clock?: Clock;
  logger?: SageLogger;
  /** Identifies this worker in `saga_instance.owner`. Default: a fresh UUIDv7 per process. */
  ownerId?: string;
  /** How long a claim on a saga lasts without renewal (database clock). Default 30 s. */
  leaseMs?: number;
  /** How often orphaned sagas (expired lease, or started inside a caller's transaction) are claimed. Default 2 s. */
  recoveryIntervalMs?: number;
  /** Sagas this process drives at once; more wait in the database for capacity. Default 64. */
  maxConcurrentSagas?: number;
  /**
   * Graceful shutdown: how long running sagas may finish before they are interrupted. Default 10 s.
   * Interrupted sagas get as long again to stop; then their leases are released regardless.
   */
  shutdownTimeoutMs?: number;
  random?: () => number;
  /**
   * Opt-in: write `sage.saga.started`, `.step-completed`, `.completed`, `.compensated`, `.failed`
   * to the outbox (key = saga id), each in the transaction of the change it describes. Needs `outbox`.
   */
  lifecycleEvents?: SagaLifecycleEventsOptions;
  /**
   * `start()` with an idempotency key that already started a saga, but with a different input:
   * `'reject'` (default) throws SagaIdempotencyConflictError and writes nothing; `'return-existing'`
   * returns the first saga (`created: false`) whatever the input, as 0.2 did. The same input
   * returns the first saga either way. Sagas started before fingerprints were stored match any input.
   */
  idempotencyConflict?: IdempotencyConflictPolicy;
}

/** How `SagaEngine.register` names where a definition comes from. */
export interface RegisterOptions {
  /**
   * Who declares the saga, named in the error when another declaration takes the same name: the
   * `@Saga` class (`OrderPlacementSaga`), `SagaOutboxModule.forRoot({ sagas })`,
   * `SagaService.register()`. Default "a definition passed to register()".
   */
  declaredBy?: string;
}

export interface StartOptions<Tx> {
  /**
   * Same key and same input (for the same saga name) → the same saga; the second start writes
   * nothing and returns `created: false`. Same key, different input → SagaIdempotencyConflictError
   * (unless the engine's `idempotencyConflict` is `'return-existing'`). At most 256 characters,
   * without NUL or unpaired UTF-16 surrogates.
   */
  idempotencyKey?: string;
  /**
   * Start inside the caller's transaction: the saga exists only if that transaction commits, and
   * a worker picks it up after commit (recovery loop, or `resumePending()` right after commit).
   */
  manager?: Tx;
}

export interface StartResult {
  sagaId: string;
  /** False when the idempotency key had already started a saga (with the same input). */
  created: boolean;
}

export interface WaitOptions {
  timeoutMs?: number;
}

export interface VersionMismatch {
  saga: string;
  runningVersion: string;
  registeredVersion: string | null;
  instances: number;
}

const MAX_IDEMPOTENCY_KEY = 256;
const RUN_END_EVENTS: ReadonlySet<SagaEvent['type']> = new Set([
  'saga.completed',
  'saga.compensated',
  'saga.failed',
  'saga.waiting',
  'saga.interrupted',
]);

/**
 * The saga engine: registry of definitions, start/get/waitFor, and the background work that keeps
 * the durability promise (lease renewal; recovery of orphaned sagas).
 */
export class SagaEngine<Tx = unknown> {
  private readonly definitions = new Map<string, SagaDefinition<unknown, Tx>>();
  /** Who registered each saga name (`RegisterOptions.declaredBy`), for the duplicate-name error. */
  private readonly declaredBy = new Map<string, string>();
  private readonly active = new Map<
    string,
    { runner: SagaRunner<unknown, Tx>; done: Promise<RunOutcome> }
  >();
  private readonly listeners = new Set<SagaEventListener>();
  private readonly store: SagaStore<Tx>;
  private readonly outbox: OutboxPublisher<Tx> | undefined;
  readonly replyTo: string | undefined;
  private readonly lifecycle: SagaLifecycleEvents<Tx> | undefined;
  private readonly clock: Clock;
  private readonly logger: SageLogger;
  readonly ownerId: string;
  private readonly leaseMs: number;
  private readonly maxConcurrent: number;
  private readonly shutdownTimeoutMs: number;
  private readonly random: () => number;
  private readonly idempotencyConflict: IdempotencyConflictPolicy;
  private readonly recoveryLoop: SingleFlightLoop;
  private readonly heartbeatLoop: SingleFlightLoop;
  private loopsController: AbortController | undefined;
  /** Stopped last on shutdown: draining sagas keep their leases while they finish. */
  private heartbeatController: AbortController | undefined;
  private shuttingDown = false;
  /** start() calls that will run their saga here but have not launched it yet (capacity held). */
  private starting = 0;
  /** Sagas claimed by recovery whose runner is not started yet (their leases are renewed too). */
  private readonly launching = new Set<string>();

  constructor(options: SagaEngineOptions<Tx>) {
    if (typeof options.store !== 'object' || options.store === null)
      throw new InvalidOptionsError('store', 'a SagaStore is required');
    this.store = options.store;
    this.outbox = options.outbox;
    // A destination name: travels in every command's headers, stored in the outbox.
    optionalName('replyTo', options.replyTo);
    this.replyTo = options.replyTo;
    this.lifecycle = options.lifecycleEvents
      ? new SagaLifecycleEvents(options.lifecycleEvents, options.outbox)
      : undefined;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
    // An empty owner would be a falsy owner in the store: no lease, so every commit is fenced off.
    if (
      options.ownerId !== undefined &&
      (typeof options.ownerId !== 'string' || options.ownerId.length === 0)
    )
      throw new InvalidOptionsError('ownerId', 'must be a non-empty string');
    // Stored as every owned saga's `owner`.
    if (options.ownerId !== undefined) assertStorableText('ownerId', options.ownerId);
    this.ownerId = options.ownerId ?? uuidv7();
    this.leaseMs = positiveNumber('leaseMs', options.leaseMs ?? 30_000);
    this.maxConcurrent = positiveInteger('maxConcurrentSagas', options.maxConcurrentSagas ?? 64);
    this.shutdownTimeoutMs = nonNegativeNumber(
      'shutdownTimeoutMs',
      options.shutdownTimeoutMs ?? 10_000,
    );
    this.random = options.random ?? Math.random;
    this.idempotencyConflict = choiceOption(
      'idempotencyConflict',
      options.idempotencyConflict,
      IDEMPOTENCY_CONFLICT_POLICIES,
      'reject',
    );
    const recoveryIntervalMs = positiveNumber(
      'recoveryIntervalMs',
      options.recoveryIntervalMs ?? 2_000,
    );
    this.recoveryLoop = new SingleFlightLoop({
      name: 'saga.recovery',
      intervalMs: recoveryIntervalMs,
      // Never slower than its interval: after an outage, orphaned sagas are picked up as soon as
      // their leases allow, not after a minute of backoff. One failed query per interval is cheap.
      errorBackoff: { firstMs: recoveryIntervalMs, maxMs: recoveryIntervalMs },
      tick: () => this.recoverOnce(),
      clock: this.clock,
      logger: this.logger,
    });
    const heartbeatMs = Math.max(10, Math.floor(this.leaseMs / 3));
    this.heartbeatLoop = new SingleFlightLoop({
      name: 'saga.heartbeat',
      intervalMs: heartbeatMs,
      // A failed renewal is retried sooner than the next one is due, not later: the leases are
      // running out meanwhile (backing off past a third of the lease lost every lease on one blip).
      errorBackoff: { firstMs: Math.min(heartbeatMs, 100), maxMs: Math.min(heartbeatMs, 1000) },
      tick: () => this.renewLeases(),
      clock: this.clock,
      logger: this.logger,
    });
  }

  register<TInput>(definition: SagaDefinition<TInput, Tx>, options: RegisterOptions = {}): void {
    const declaredBy = options.declaredBy ?? 'a definition passed to register()';
    const first = this.declaredBy.get(definition.name);
    if (first !== undefined) {
      throw new SagaDefinitionError(
        definition.name,
        undefined,
        first === declaredBy
          ? `declared twice, both times by ${declaredBy} (a @Saga class provided by more than one module, or one definition registered twice). Provide or register it once.`
          : `declared twice, by ${first} and by ${declaredBy}. Saga names must be unique in an application; rename one (@Saga('...') or defineSaga({ name })).`,
      );
    }
    const remote = [...definition.steps.values()].find((s) => s.kind === 'remote');
    if (remote && (!this.outbox || !this.replyTo)) {
      throw new SagaDefinitionError(
        definition.name,
        remote.name,
        'a remote step sends its command through the outbox and needs a reply destination: configure the engine with an outbox and `replyTo` (SagaOutboxModule: `saga: { replyTo }`)',
      );
    }
    this.definitions.set(definition.name, definition as SagaDefinition<unknown, Tx>);
    this.declaredBy.set(definition.name, declaredBy);
  }

  definition(name: string): SagaDefinition<unknown, Tx> | undefined {
    return this.definitions.get(name);
  }

  get sagaNames(): string[] {
    return [...this.definitions.keys()];
  }

  onEvent(listener: SagaEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Validates, persists and (unless inside a caller's transaction) starts running a saga. Every
   * check runs before any SQL: a rejected start leaves the caller's transaction as it was.
   */
  async start(name: string, input: unknown, options: StartOptions<Tx> = {}): Promise<StartResult> {
    const def = this.definitions.get(name);
    if (!def) throw new UnknownSagaError(name, this.sagaNames);
    const key = options.idempotencyKey;
    if (key !== undefined) checkIdempotencyKey(key, `given to start("${name}")`);
    if (def.validate) {
      let verdict: boolean | string | void;
      try {
        verdict = def.validate(input);
      } catch (error) {
        throw new SagaInputInvalidError(name, errorText(error), error);
      }
      if (verdict === false) throw new SagaInputInvalidError(name, 'validator returned false');
      if (typeof verdict === 'string') throw new SagaInputInvalidError(name, verdict);
    }
    assertJsonSerializable(input, `Input of saga "${name}"`);
    if (this.shuttingDown)
      throw new InvalidOptionsError('start', 'the saga engine is shutting down');

    const inCallerTx = options.manager !== undefined;
    // Counts starts still awaiting the store, so concurrent starts cannot overshoot the limit.
    const runHere = !inCallerTx && this.active.size + this.starting < this.maxConcurrent;
    if (runHere) this.starting++;
    try {
      const startedAt = this.clock.now();
      const saga: NewSaga = {
        id: uuidv7(startedAt),
        name,
        version: def.version,
        input,
        idempotencyKey: key ?? null,
        // Only a key is ever compared with it: no hashing for starts without one.
        inputFingerprint: key === undefined ? null : sagaInputFingerprint(name, input),
        stepNames: def.order,
        owner: runHere ? this.ownerId : null,
        leaseMs: this.leaseMs,
        timeoutMs: def.timeoutMs,
      };
      // In the creating transaction: a start rolled back with the caller's transaction announces nothing.
      const announce = this.lifecycle?.within(SAGA_LIFECYCLE_EVENT_TYPES.started, {
        sagaId: saga.id,
        saga: name,
        status: 'running',
      });
      let failedFirst: { runner: SagaRunner<unknown, Tx>; error: unknown } | undefined;
      if (runHere && def.firstStepInStart && this.store.createWithFirstStep) {
        const ran = await this.startWithFirstStep(def, saga, startedAt, announce);
        if ('sagaId' in ran) return ran;
        failedFirst = ran;
      }
      const outcome = await this.store.create(saga, options.manager, announce);
      const { id, created } = outcome;
      if (
        !outcome.created &&
        this.idempotencyConflict === 'reject' &&
        outcome.inputFingerprint !== null &&
        outcome.inputFingerprint !== saga.inputFingerprint
      )
        throw new SagaIdempotencyConflictError(name, key!, id);
      if (created) {
        // Inside the caller's transaction the saga may still roll back: it is reported when a
        // worker first picks it up (saga.resumed), not here.
        if (!inCallerTx)
          this.emit({ type: 'saga.started', sagaId: id, saga: name, at: this.clock.now() });
        // start() ran the first step's attempt 1, which failed: that runner records it and retries.
        if (failedFirst) {
          failedFirst.runner.firstAttemptEnded({ ok: false, error: failedFirst.error });
          await this.launch(id, false, undefined, failedFirst.runner);
        }
        // Run from the state just written, rather than reading it back: one round trip less.
        else if (runHere) await this.launch(id, false, createdRecord(saga, startedAt));
        else if (!inCallerTx) this.recoveryLoop.wake();
      }
      return { sagaId: id, created };
    } finally {
      if (runHere) this.starting--;
    }
  }

  /**
   * Applies a participant's reply to a remote step, in `tx` (the inbox transaction that
   * deduplicates it). Which replies apply (docs/sagas.md, "Which replies are applied"):
   * - its idempotency key must be the step's (`sagaId:step`, `sagaId:step:compensate`), else
   *   MessageRefusedError `reply-key-mismatch`;
   * - the step must be a remote step of a saga that exists, else `reply-step-unknown`;
   * - its attempt must be one the step sent (1 to the step's current attempt of the phase), else
   *   `reply-attempt-unknown`. A reply to an earlier attempt of a step still awaiting applies: every
   *   resend carries the same key, so the participant's answer to any of them is the step's answer;
   * - a reply the step no longer awaits (late, after a timeout or another reply; a duplicate)
   *   changes nothing: undefined, logged.
   * The inbox dead-letters a refused reply at once. Once `tx` has committed, call `replyCommitted`
   * with the result: it reports the step's outcome to listeners and resumes the saga at once
   * rather than at the next recovery round.
   *
   * A success reply to the last open step of a parked saga completes the saga in `tx` (the store's
   * SAGA_TRANSITIONS.completeByReply): one commit instead of a recovery claim, a reload and a
   * completion. A reply whose step is followed by a local step does NOT run that step in `tx`,
   * though DESIGN.md §1 would allow its effects to commit there (a local step's body, record and
   * messages share one transaction, whichever it is): the step needs the saga's lease, so this
   * consumer would have to claim the saga and drive it from inside the inbox transaction; its
   * per-attempt timeout and retry backoff would then hold the consumer's transaction and the
   * broker delivery open; and a failing attempt must not roll back the reply (its inbox row and
   * the step's recorded outcome), which would need a savepoint per step and leave the retry to a
   * runner anyway. So the reply wakes the saga and a runner runs the next step, one commit per step.
   */
  async applyReply(tx: Tx, reply: SagaReply): Promise<AppliedReply | undefined> {
    const where = `the reply to step "${reply.step}" (${reply.phase}, attempt ${reply.attempt}) of saga ${reply.sagaId}`;
    if (reply.idempotencyKey !== stepIdempotencyKey(reply.sagaId, reply.step, reply.phase))
      throw new MessageRefusedError(
        'reply-key-mismatch',
        `${where} carries idempotency key ${JSON.stringify(reply.idempotencyKey.slice(0, 300))}, not the step's`,
      );
    const applied = await this.store.applyReply(tx, reply);
    if (applied?.sagaCompleted) {
      // The reply completed the saga (its last open step; see SagaStore.applyReply): the lifecycle
      // event commits with it, as the runner's completion writes it in the last step's transaction.
      await this.lifecycle?.write(tx, SAGA_LIFECYCLE_EVENT_TYPES.completed, {
        sagaId: reply.sagaId,
        saga: applied.saga,
        status: 'completed',
        step: null,
        error: null,
      });
    }
    if (applied) return applied;
    const refusal = await this.replyRefusal(tx, reply, where);
    if (refusal) throw refusal;
    this.logger.warn('saga reply ignored: the step is no longer awaiting it', {
      event: 'saga.reply_ignored',
      sagaId: reply.sagaId,
      step: reply.step,
      phase: reply.phase,
      attempt: reply.attempt,
    });
    return undefined;
  }

  /**
   * Why a reply that changed nothing answers no command Sage sent (MessageRefusedError), or
   * undefined when it is merely late. Read in `tx` (the inbox transaction): attempts only grow, so
   * a reply to an attempt sent stays one.
   */
  private async replyRefusal(
    tx: Tx,
    reply: SagaReply,
    where: string,
  ): Promise<MessageRefusedError | undefined> {
    const step = await this.store.replyTarget(tx, reply.sagaId, reply.step);
    const kind = step && this.definitions.get(step.saga)?.steps.get(reply.step)?.kind;
    if (!step || (kind !== undefined && kind !== 'remote'))
      return new MessageRefusedError(
        'reply-step-unknown',
        `${where}: ${!step ? 'no such saga or step' : 'the step is not a remote step'}`,
      );
    const sent = reply.phase === 'forward' ? step.attempts : step.compensationAttempts;
    if (reply.attempt > sent)
      return new MessageRefusedError(
        'reply-attempt-unknown',
        `${where}: the step sent ${sent === 0 ? 'no command' : `attempts 1 to ${sent} only`} for this phase`,
      );
    return undefined;
  }

  /** After the transaction of `applyReply` committed: step events, and the woken saga resumes. */
  replyCommitted(reply: SagaReply, applied: AppliedReply): void {
    const base = {
      sagaId: reply.sagaId,
      saga: applied.saga,
      step: reply.step,
      attempt: applied.attempt,
      at: this.clock.now(),
    };
    const { outcome } = reply;
    if (reply.phase === 'forward') {
      if (outcome.ok) {
        const durationMs = applied.startedAt ? base.at - applied.startedAt.getTime() : 0;
        this.emit({ ...base, type: 'step.completed', durationMs: Math.max(0, durationMs) });
        if (applied.sagaCompleted) {
          const { sagaId, saga, at } = base;
          this.emit({ type: 'saga.completed', sagaId, saga, at, ...applied.sagaCompleted });
          return;
        }
      } else this.emit({ ...base, type: 'step.failed', error: outcome.error });
    } else if (outcome.ok) this.emit({ ...base, type: 'compensation.completed' });
    else this.emit({ ...base, type: 'compensation.failed', error: outcome.error });
    this.recoveryLoop.wake();
  }

  /** Claims sagas waiting for a worker now (e.g. right after committing a transaction that started one). */
  resumePending(): void {
    this.recoveryLoop.wake();
  }

  /**
   * The saga `name` started with `idempotencyKey`, or null when none was (or its start rolled back
   * with the caller's transaction). The key is unique per saga name, so there is at most one.
   * Throws UnknownSagaError for a name nothing registered (a typo would otherwise find nothing for
   * ever), InvalidOptionsError for a key start() would refuse.
   */
  async findByKey(name: string, idempotencyKey: string): Promise<SagaRecord | null> {
    if (!this.definitions.has(name)) throw new UnknownSagaError(name, this.sagaNames);
    checkIdempotencyKey(idempotencyKey, `given to findByKey("${name}")`);
    return (await this.store.loadByIdempotencyKey(name, idempotencyKey)) ?? null;
  }

  async get(sagaId: string): Promise<SagaRecord> {
    const record = await this.store.load(sagaId);
    if (!record) throw new SagaNotFoundError(sagaId);
    return record;
  }

  /** Resolves with the saga once it is `completed`, `compensated` or `failed`. */
  async waitFor(sagaId: string, options: WaitOptions = {}): Promise<SagaRecord> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const deadline = this.clock.now() + timeoutMs;
    let pollMs = 20;
    for (;;) {
      const local = this.active.get(sagaId);
      if (local) {
        const left = deadline - this.clock.now();
        if (left > 0) await this.within(local.done, left);
      }
      const record = await this.get(sagaId);
      if (TERMINAL_SAGA_STATUSES.includes(record.status)) return record;
      const left = deadline - this.clock.now();
      if (left <= 0) throw new SagaWaitTimeoutError(sagaId, record.status, timeoutMs);
      await this.clock.sleep(Math.min(pollMs, left));
      pollMs = Math.min(pollMs * 2, 500);
    }
  }

  /** Definitions changed while instances of an older version are still running. */
  async versionMismatches(): Promise<VersionMismatch[]> {
    const rows = await this.store.activeVersions();
    return rows
      .filter((r) => this.definitions.get(r.name)?.version !== r.version)
      .map((r) => ({
        saga: r.name,
        runningVersion: r.version,
        registeredVersion: this.definitions.get(r.name)?.version ?? null,
        instances: r.count,
      }));
  }

  /** Starts lease renewal and the recovery loop. Reports running instances of changed definitions. */
  async startBackground(): Promise<void> {
    if (this.loopsController) return;
    this.loopsController = new AbortController();
    this.heartbeatController = new AbortController();
    for (const m of await this.versionMismatches()) {
      this.logger.warn(
        `saga "${m.saga}" has ${m.instances} unfinished instance(s) of version ${m.runningVersion}, but this process registers ${m.registeredVersion ?? 'no definition'}; they are left alone (not resumed with a different graph). Deploy the old definition under the same name on a worker to finish them.`,
        { event: 'saga.version_mismatch', ...m },
      );
    }
    this.heartbeatLoop.start(this.heartbeatController.signal);
    this.recoveryLoop.start(this.loopsController.signal);
  }

  get loopStats(): {
    recovery: LoopStats;
    heartbeat: LoopStats;
    activeSagas: number;
  } {
    return {
      recovery: this.recoveryLoop.stats,
      heartbeat: this.heartbeatLoop.stats,
      activeSagas: this.active.size,
    };
  }

  /**
   * Graceful shutdown: stop claiming, let running sagas finish within the bound, then interrupt the
   * rest and release their leases so another worker resumes them at once.
   */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    this.loopsController?.abort();
    await this.recoveryLoop.stopped();
    const pending = [...this.active.values()].map((a) => a.done);
    if (pending.length) await this.within(Promise.allSettled(pending), this.shutdownTimeoutMs);
    const left = [...this.active.values()];
    for (const a of left) a.runner.stop('shutdown');
    // A step body that ignores its abort signal cannot be waited for forever: after one more
    // bounded wait its lease is released anyway; if it ever finishes, the fence rejects its commit.
    if (left.length)
      await this.within(Promise.allSettled(left.map((a) => a.done)), this.shutdownTimeoutMs);
    this.heartbeatController?.abort();
    await this.heartbeatLoop.stopped();
    if (left.length) {
      await this.store
        .release(
          this.ownerId,
          left.map((a) => a.runner.sagaId),
        )
        .catch((error: unknown) => {
          this.logger.warn('could not release saga leases on shutdown; they expire on their own', {
            event: 'saga.release_failed',
            error: String(error),
          });
        });
    }
  }

  // ------------------------------------------------------------------ internals

  /** Waits for `promise` at most `ms`, leaving no timer behind (a pending timer delays process exit). */
  private async within(promise: Promise<unknown>, ms: number): Promise<void> {
    const cancel = new AbortController();
    try {
      await Promise.race([promise, this.clock.sleep(ms, cancel.signal).catch(() => undefined)]);
    } finally {
      cancel.abort();
    }
  }

  /**
   * SagaOptions.firstStepInStart: stores the saga and runs attempt 1 of its first step in one
   * transaction, then runs the rest here. When the attempt fails, that transaction stored nothing:
   * the runner and the error come back, start() stores the saga the normal way and launches that
   * runner, which records the failure as attempt 1 and retries per the step's policy. Crash-safe
   * either way: a process that dies before that COMMIT leaves no saga (its
   * caller sees the error), one that dies after leaves a started saga whose lease expires and
   * which recovery resumes.
   */
  private async startWithFirstStep(
    def: SagaDefinition<unknown, Tx>,
    saga: NewSaga,
    startedAt: number,
    announce: WithinTransaction<Tx> | undefined,
  ): Promise<StartResult | { runner: SagaRunner<unknown, Tx>; error: unknown }> {
    const runner = this.newRunner(def, createdRecord(saga, startedAt));
    const attempt = runner.firstStepAttempt();
    const began = this.clock.now();
    const outcome = await this.store.createWithFirstStep!(saga, announce, {
      ...attempt,
      // The saga's only step: its attempt completes the saga too (one commit in all).
      complete:
        def.order.length === 1
          ? {
              within: this.lifecycle?.within(SAGA_LIFECYCLE_EVENT_TYPES.completed, {
                sagaId: saga.id,
                saga: def.name,
                status: 'completed',
                step: null,
                error: null,
              }),
            }
          : undefined,
    });
    if (outcome.kind === 'exists') {
      if (
        this.idempotencyConflict === 'reject' &&
        outcome.inputFingerprint !== null &&
        outcome.inputFingerprint !== saga.inputFingerprint
      )
        throw new SagaIdempotencyConflictError(def.name, saga.idempotencyKey!, outcome.id);
      return { sagaId: outcome.id, created: false };
    }
    if (outcome.kind === 'step-failed') return { runner, error: outcome.error };
    this.emit({ type: 'saga.started', sagaId: saga.id, saga: def.name, at: this.clock.now() });
    const durationMs = this.clock.now() - began;
    runner.firstAttemptEnded({ ok: true, result: outcome.value, durationMs });
    if (outcome.sagaCompleted) {
      this.emit({
        type: 'saga.completed',
        sagaId: saga.id,
        saga: def.name,
        at: this.clock.now(),
        durationMs,
      });
      return { sagaId: saga.id, created: true };
    }
    await this.launch(saga.id, false, undefined, runner);
    return { sagaId: saga.id, created: true };
  }

  /**
   * Runs a saga here: with `runner` prepared by start(), or from `initial`, the state start() just
   * wrote, or else as loaded.
   */
  private async launch(
    sagaId: string,
    resumed: boolean,
    initial?: SagaRecord,
    prepared?: SagaRunner<unknown, Tx>,
  ): Promise<void> {
    if (prepared) return this.track(sagaId, prepared);
    let record: SagaRecord | undefined;
    try {
      record = initial ?? (await this.store.load(sagaId));
    } catch (error) {
      // Encrypted state that can never be read again (an erased data subject, altered bytes):
      // resuming would fail the same way at every lease expiry, so the saga ends here, `failed`.
      // A key this process does not hold is not that: another instance (or this one, once the
      // key is deployed) can still run it, so the lease simply expires and recovery retries.
      if (error instanceof DataUnreadableError && PERMANENT_UNREADABLE.has(error.reason))
        return failUnreadableSaga(this.store, this.ownerId, sagaId, error, this.logger);
      throw error;
    }
    if (!record) return;
    if (TERMINAL_SAGA_STATUSES.includes(record.status)) return;
    const def = this.definitions.get(record.name);
    if (!def || def.version !== record.version || this.shuttingDown) {
      // Claimed by a filter that no longer matches (should not happen), or shutdown began while a
      // start() was in flight (shutdown no longer sees it): give it back for another worker.
      await this.store.release(this.ownerId, [sagaId]);
      return;
    }
    if (resumed) this.emit({ type: 'saga.resumed', sagaId, saga: def.name, at: this.clock.now() });
    this.track(sagaId, this.newRunner(def, record));
  }

  private newRunner(def: SagaDefinition<unknown, Tx>, record: SagaRecord): SagaRunner<unknown, Tx> {
    const sagaId = record.id;
    return new SagaRunner(def, record, this.ownerId, {
      store: this.store,
      outbox: this.outbox,
      replyTo: this.replyTo,
      lifecycle: this.lifecycle,
      clock: this.clock,
      logger: this.logger,
      emit: (e) => {
        // Free the slot before listeners hear the saga ended, so a caller starting the next saga
        // on that event finds capacity (rather than leaving it to the recovery loop).
        if (RUN_END_EVENTS.has(e.type)) this.active.delete(sagaId);
        this.emit(e);
      },
      random: this.random,
    });
  }

  /** Runs `runner` to its end, held in `active` (leases renewed, shutdown waits for it). */
  private track(sagaId: string, runner: SagaRunner<unknown, Tx>): void {
    if (this.shuttingDown) {
      // Shutdown began while start() ran the first step: give the saga back for another worker.
      void this.store.release(this.ownerId, [sagaId]).catch(() => undefined);
      return;
    }
    const done = runner.run().then(
      (outcome) => {
        this.active.delete(sagaId);
        // Interrupted by store trouble or a lost lease: the saga is deliberately NOT released. A lost
        // lease is someone else's already; after store trouble the lease runs out and recovery
        // (here or elsewhere) resumes the saga. Releasing it would make a saga that fails at once
        // claimable at once: relaunched in a tight loop that starves the event loop (and hammers
        // the database). The lease length is the backoff.
        return outcome;
      },
      (error: unknown): RunOutcome => {
        this.active.delete(sagaId);
        this.logger.error('saga runner crashed', {
          event: 'saga.runner_error',
          sagaId,
          error: String(error),
        });
        return 'interrupted';
      },
    );
    this.active.set(sagaId, { runner: runner, done });
  }

  private async recoverOnce(): Promise<void> {
    if (this.shuttingDown) return;
    const capacity = this.maxConcurrent - this.active.size - this.starting;
    if (capacity <= 0) return;
    const versions = [...this.definitions.values()].map((d) => ({
      name: d.name,
      version: d.version,
    }));
    const ids = await this.store.claimOrphans(this.ownerId, versions, capacity, this.leaseMs);
    // Held from the claim on, so the heartbeat renews them while they load; launched together so a
    // large batch does not outlive its lease before its last saga starts.
    const fresh = ids.filter((id) => !this.active.has(id) && !this.launching.has(id));
    for (const id of fresh) this.launching.add(id);
    await Promise.all(
      fresh.map((id) =>
        this.launch(id, true)
          .catch((error: unknown) => {
            this.logger.error(
              'could not resume saga; its lease will expire and it will be retried',
              {
                event: 'saga.resume_failed',
                sagaId: id,
                error: String(error),
              },
            );
          })
          .finally(() => this.launching.delete(id)),
      ),
    );
    // A full batch means more may be waiting: go again soon.
    if (ids.length === capacity) this.recoveryLoop.wake();
  }

  private async renewLeases(): Promise<void> {
    const ids = [...this.active.keys(), ...this.launching];
    if (!ids.length) return;
    const held = new Set(await this.store.renewLeases(this.ownerId, ids, this.leaseMs));
    for (const id of ids) {
      if (!held.has(id)) this.active.get(id)?.runner.stop('lease-lost');
    }
  }

  private emit(event: SagaEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (error) {
        this.logger.warn('saga event listener threw', {
          event: 'saga.listener_error',
          error: String(error),
        });
      }
    }
  }
}

/**
 * An idempotency key the store can hold (and so compare): 1 to 256 characters, without NUL or
 * unpaired UTF-16 surrogates. InvalidOptionsError (option `idempotencyKey`) otherwise; `field` says
 * which call it was given to.
 */
function checkIdempotencyKey(key: unknown, field: string): asserts key is string {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY) {
    throw new InvalidOptionsError(
      'idempotencyKey',
      `must be a non-empty string of at most ${MAX_IDEMPOTENCY_KEY} characters`,
    );
  }
  assertStorableText({ option: 'idempotencyKey', field }, key);
}

/**
 * The saga as `create` just stored it, as `load` would return it: running, owned by its creator,
 * every step pending with no attempts. The input is the JSON form that was stored (the caller's
 * object is not shared with the steps). The timestamps come from this process's clock, not the
 * database's: the runner reads only the deadline of them, counted from just before the insert, as
 * the stored one is counted from the insert. A resumed run reads the stored record.
 */
function createdRecord(saga: NewSaga, startedAt: number): SagaRecord {
  const at = new Date(startedAt);
  return {
    id: saga.id,
    name: saga.name,
    version: saga.version,
    status: 'running',
    input: JSON.parse(JSON.stringify(saga.input)) as JsonValue,
    idempotencyKey: saga.idempotencyKey,
    owner: saga.owner,
    leaseUntil: new Date(startedAt + saga.leaseMs),
    deadlineAt: saga.timeoutMs === null ? null : new Date(startedAt + saga.timeoutMs),
    error: null,
    failedStep: null,
    wakeAt: null,
    wakeSeq: 0,
    createdAt: at,
    updatedAt: at,
    steps: saga.stepNames.map(pendingStepRecord),
  };
}
