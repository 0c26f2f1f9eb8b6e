import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import {
  InvalidOptionsError,
  LeaseLostError,
  SagaCreateConflictError,
  SagaStepUnknownError,
  SagaTransactionInactiveError,
  SagaStoreUnavailableError,
} from '../../core/errors';
import type { JsonValue } from '../../core/json';
import type {
  ActiveVersionCount,
  AppliedReply,
  ReplyTarget,
  AwaitReply,
  Fence,
  FirstStepInStart,
  FirstStepStartOutcome,
  ParkOutcome,
  NewSaga,
  SagaCreateOutcome,
  SagaRecord,
  SagaStatus,
  SagaStore,
  SagaVersionRef,
  StepPhase,
  StepRecord,
  StepStatus,
  StepTxOptions,
  StepTxOutcome,
  WithinTransaction,
} from '../../core/ports/saga-store';
import type { StepFailure } from '../../core/ports/saga-store';
import { stepPhaseOpen } from '../../core/saga/step-transitions';
import { SAGA_TRANSITIONS } from '../../core/saga/saga-transitions';
import * as q from './saga-queries.sql';
import { sagaSchema, type SagaSchema } from './schema-name';
import { runStatement as run } from './run-statement';
import { storableText } from '../../core/error-text';
import { stepTransactionProbe } from './step-transaction-probe';

export interface PostgresSagaStoreOptions {
  /** Schema holding the saga tables (default `sage`); the one the migrations were created with. */
  schema?: string;
}

/**
 * SagaStore on PostgreSQL through a TypeORM DataSource (an initialised `postgres` one, which may be
 * served by PGlite). Step bodies receive the step transaction's EntityManager. All SQL is in
 * saga-queries.sql.ts.
 */
export class PostgresSagaStore implements SagaStore<EntityManager> {
  private readonly schema: SagaSchema;

  constructor(
    private readonly dataSource: DataSource,
    options: PostgresSagaStoreOptions = {},
  ) {
    if (dataSource.options.type !== 'postgres') {
      throw new InvalidOptionsError(
        'dataSource',
        `PostgresSagaStore needs a TypeORM DataSource of type "postgres", got "${dataSource.options.type}".`,
      );
    }
    this.schema = sagaSchema(options.schema);
  }

  async create(
    saga: NewSaga,
    tx?: EntityManager,
    within?: WithinTransaction<EntityManager>,
  ): Promise<SagaCreateOutcome> {
    if (tx === undefined) {
      // One statement is atomic on its own: no BEGIN/COMMIT unless a hook must commit with it.
      if (!within) return this.withRunner((runner) => this.insert(runner, saga));
      return this.inTransaction(async (runner) => {
        const outcome = await this.insert(runner, saga);
        if (outcome.created) await within(runner.manager);
        return outcome;
      });
    }
    const runner = tx.queryRunner;
    if (!runner?.isTransactionActive) {
      throw new SagaTransactionInactiveError(
        `Saga "${saga.name}" was started with an EntityManager that is not inside a transaction, so it could not join it. ` +
          'Pass the manager given by dataSource.transaction(...) (or the current @nestjs-cls/transactional one), or pass none.',
      );
    }
    // Join the caller's transaction: they commit or roll back; we neither begin nor end it.
    const outcome = await this.insert(runner, saga);
    if (outcome.created && within) await within(tx);
    return outcome;
  }

  async createWithFirstStep<T>(
    saga: NewSaga,
    within: WithinTransaction<EntityManager> | undefined,
    first: FirstStepInStart<T, EntityManager>,
  ): Promise<FirstStepStartOutcome<T>> {
    const owner = saga.owner;
    if (owner === null)
      throw new InvalidOptionsError('owner', 'createWithFirstStep needs an owner');
    const fence: Fence = { sagaId: saga.id, owner };
    const probe = stepTransactionProbe(this.dataSource);
    const point = { sagaId: saga.id, step: first.step, phase: 'forward' as const, attempt: 1 };
    const runner = this.dataSource.createQueryRunner();
    try {
      await runner.connect();
      await runner.startTransaction();
      try {
        const created = await this.insert(runner, saga);
        if (!created.created) {
          await rollbackQuietly(runner);
          return { kind: 'exists', id: created.id, inputFingerprint: created.inputFingerprint };
        }
        if (within) await within(runner.manager);
        // No step lock (runStepTransaction's first statement): the step row was inserted by this
        // transaction, so no other one can see it, let alone run it, before COMMIT.
        let ran: { result: JsonValue; value: T };
        try {
          ran = await (probe?.body
            ? probe.body(point, () => first.body(runner.manager))
            : first.body(runner.manager));
        } catch (error) {
          await rollbackQuietly(runner);
          return { kind: 'step-failed', error };
        }
        const [recorded] = await run(
          runner,
          q.completeStep(this.schema, {
            ...fence,
            step: first.step,
            attempt: 1,
            result: ran.result,
          }),
        );
        // The lease, counted from BEGIN, ran out while the body ran: the saga is not stored, and
        // the attempt counts as failed (the normal start then runs the step under a fresh lease).
        if (!recorded?.fenced) {
          await rollbackQuietly(runner);
          const error = new Error(
            `attempt 1 of step "${first.step}" ran longer than the saga lease (leaseMs) inside start()`,
          );
          return { kind: 'step-failed', error };
        }
        if (!recorded.recorded) throw unknownStep(saga.id, first.step);
        const sagaCompleted =
          first.complete !== undefined &&
          (await this.transitionIn(runner, fence, 'complete', first.complete.within));
        const committing = { ...point, awaitingReply: false, completesSaga: sagaCompleted };
        try {
          probe?.beforeCommit?.(committing);
          await runner.commitTransaction();
          probe?.afterCommit?.(committing);
        } catch (error) {
          // Refused for what the step wrote (e.g. a deferred constraint): nothing committed, and
          // the step's writes are the cause, so it is the attempt's failure (see refusedWrites).
          if (refusedWrites(error)) {
            await rollbackQuietly(runner);
            return { kind: 'step-failed', error };
          }
          throw error;
        }
        return { kind: 'done', id: saga.id, value: ran.value, sagaCompleted };
      } catch (error) {
        await rollbackQuietly(runner);
        throw error;
      }
    } finally {
      await runner.release();
    }
  }

  async load(id: string): Promise<SagaRecord | undefined> {
    // A malformed id cannot name a saga; asking PostgreSQL would only raise 22P02.
    if (!isUuid(id)) return undefined;
    const [row] = await this.withRunner((runner) => run(runner, q.selectSaga(this.schema, { id })));
    return row ? toSagaRecord(row) : undefined;
  }

  async loadByIdempotencyKey(
    name: string,
    idempotencyKey: string,
  ): Promise<SagaRecord | undefined> {
    const [row] = await this.withRunner((runner) =>
      run(runner, q.selectSagaByKey(this.schema, { name, idempotencyKey })),
    );
    return row ? toSagaRecord(row) : undefined;
  }

  async runStepTransaction<T>(
    fence: Fence,
    step: string,
    phase: StepPhase,
    attempt: number,
    body: (tx: EntityManager) => Promise<{ result: JsonValue; value: T; awaitReply?: AwaitReply }>,
    options: StepTxOptions<EntityManager> = {},
  ): Promise<StepTxOutcome<T>> {
    if (!isUuid(fence.sagaId)) throw unknownStep(fence.sagaId, step);
    const { complete } = options;
    // The crash harness's seam (testing/crash-harness); none outside its tests.
    const probe = stepTransactionProbe(this.dataSource);
    /** The store's own statements: their failures are the store's trouble, not the step's. */
    const bookkeeping = async <R>(operation: string, work: () => Promise<R>): Promise<R> => {
      try {
        return await work();
      } catch (error) {
        if (refusedWrites(error)) throw error;
        throw new SagaStoreUnavailableError(fence.sagaId, step, phase, operation, error);
      }
    };
    const runner = this.dataSource.createQueryRunner();
    try {
      await bookkeeping('BEGIN', async () => {
        await runner.connect();
        await runner.startTransaction();
      });
      try {
        const [locked] = await bookkeeping('the step lock', () =>
          run(runner, q.lockStep(this.schema, { sagaId: fence.sagaId, step })),
        );
        if (!locked) throw unknownStep(fence.sagaId, step);
        if (!stepPhaseOpen(phase, locked.status as StepStatus)) {
          // Nothing was written; whether or not ROLLBACK gets through, the phase is done.
          await rollbackQuietly(runner);
          return { kind: 'already-done' };
        }
        // Awaited before anything else touches the transaction: it ends only once the body settled.
        // What the body throws is the step's failure and propagates as it is.
        const point = { sagaId: fence.sagaId, step, phase, attempt };
        const { result, value, awaitReply } = await (probe?.body
          ? probe.body(point, () => body(runner.manager))
          : body(runner.manager));
        const params = { sagaId: fence.sagaId, owner: fence.owner, step, attempt };
        // Fenced in the same statement, the last before COMMIT (see fencedStepUpdate for why).
        const [recorded] = await bookkeeping('recording the step', () =>
          run(
            runner,
            awaitReply
              ? q.awaitStepReply(this.schema, { ...params, phase, timeoutMs: awaitReply.timeoutMs })
              : phase === 'forward'
                ? q.completeStep(this.schema, { ...params, result })
                : q.compensateStep(this.schema, params),
          ),
        );
        if (!recorded?.fenced) throw new LeaseLostError(fence.sagaId, fence.owner);
        if (!recorded.recorded) throw unknownStep(fence.sagaId, step);
        // The saga's last step: it completes in this transaction too, fenced like any transition.
        const sagaCompleted =
          complete !== undefined &&
          !awaitReply &&
          phase === 'forward' &&
          (await bookkeeping('completing the saga', () =>
            this.transitionIn(runner, fence, 'complete', complete.within),
          ));
        // A failed COMMIT may still have committed. Recovery resumes the saga either way, and the
        // step lock and status check above make a committed step a no-op when it runs again.
        await bookkeeping('COMMIT', async () => {
          const committing = {
            ...point,
            awaitingReply: awaitReply !== undefined,
            completesSaga: sagaCompleted,
          };
          probe?.beforeCommit?.(committing);
          await runner.commitTransaction();
          probe?.afterCommit?.(committing);
        });
        return sagaCompleted ? { kind: 'done', value, sagaCompleted } : { kind: 'done', value };
      } catch (error) {
        await rollbackQuietly(runner);
        throw error;
      }
    } finally {
      await runner.release();
    }
  }

  /**
   * SAGA_TRANSITIONS[name] for the fence's saga in `runner`'s open transaction, then `within` when
   * it moved; false when it did not (fenced off, or already moved).
   */
  private async transitionIn(
    runner: QueryRunner,
    fence: Fence,
    name: 'complete',
    within: WithinTransaction<EntityManager> | undefined,
  ): Promise<boolean> {
    const { from, to } = SAGA_TRANSITIONS[name];
    const moved =
      (
        await run(
          runner,
          q.transitionSaga(this.schema, {
            sagaId: fence.sagaId,
            owner: fence.owner,
            from,
            to,
            error: null,
            failedStep: null,
          }),
        )
      ).length > 0;
    if (moved && within) await within(runner.manager);
    return moved;
  }

  async recordStepFailure(fence: Fence, failure: StepFailure): Promise<void> {
    if (!isUuid(fence.sagaId)) throw new LeaseLostError(fence.sagaId, fence.owner);
    const [outcome] = await this.withRunner((runner) =>
      run(
        runner,
        q.recordStepFailure(this.schema, {
          sagaId: fence.sagaId,
          owner: fence.owner,
          ...failure,
          error: storableText(failure.error),
        }),
      ),
    );
    if (!outcome?.fenced) throw new LeaseLostError(fence.sagaId, fence.owner);
    if (!outcome.updated) throw unknownStep(fence.sagaId, failure.step);
  }

  async park(fence: Fence, seenWakeSeq: number): Promise<ParkOutcome> {
    if (!isUuid(fence.sagaId)) return 'lost';
    const [row] = await this.withRunner((runner) =>
      run(
        runner,
        q.parkSaga(this.schema, { sagaId: fence.sagaId, owner: fence.owner, seenWakeSeq }),
      ),
    );
    if (!row?.fenced) return 'lost';
    return row.parked ? 'parked' : 'woken';
  }

  async applyReply(
    tx: EntityManager,
    reply: {
      sagaId: string;
      step: string;
      phase: StepPhase;
      attempt?: number;
      outcome: { ok: true; result: JsonValue } | { ok: false; error: string };
    },
  ): Promise<AppliedReply | undefined> {
    if (!isUuid(reply.sagaId)) return undefined;
    if (reply.attempt !== undefined && !(Number.isSafeInteger(reply.attempt) && reply.attempt > 0))
      return undefined;
    const runner = tx.queryRunner;
    if (!runner?.isTransactionActive) {
      throw new SagaTransactionInactiveError(
        `The reply to step "${reply.step}" of saga ${reply.sagaId} must be applied inside the inbox transaction that deduplicates it.`,
      );
    }
    const updated = await run(
      runner,
      q.applyStepReply(this.schema, {
        sagaId: reply.sagaId,
        step: reply.step,
        phase: reply.phase,
        attempt: reply.attempt ?? null,
        ok: reply.outcome.ok,
        result: reply.outcome.ok ? reply.outcome.result : null,
        error: reply.outcome.ok ? null : storableText(reply.outcome.error),
      }),
    );
    const [step] = updated;
    if (!step) return undefined;
    if (reply.phase === 'forward' && reply.outcome.ok) {
      // Its last open step: the saga completes here, in the reply's transaction (one statement,
      // like the wake it replaces).
      const [saga] = await run(runner, q.completeOrWakeSaga(this.schema, { sagaId: reply.sagaId }));
      const applied = { saga: saga?.name ?? '', attempt: step.attempt, startedAt: step.started_at };
      return saga?.completed
        ? { ...applied, sagaCompleted: { durationMs: Math.max(0, Math.round(saga.duration_ms)) } }
        : applied;
    }
    const [saga] = await run(runner, q.wakeSaga(this.schema, { sagaId: reply.sagaId }));
    return { saga: saga?.name ?? '', attempt: step.attempt, startedAt: step.started_at };
  }

  async replyTarget(
    tx: EntityManager,
    sagaId: string,
    step: string,
  ): Promise<ReplyTarget | undefined> {
    if (!isUuid(sagaId)) return undefined;
    const runner = tx.queryRunner;
    if (!runner?.isTransactionActive) {
      throw new SagaTransactionInactiveError(
        `The reply to step "${step}" of saga ${sagaId} must be checked inside the inbox transaction that deduplicates it.`,
      );
    }
    const [row] = await run(runner, q.selectReplyTarget(this.schema, { sagaId, step }));
    return row
      ? {
          saga: row.saga,
          status: row.status as StepStatus,
          attempts: row.attempts,
          compensationAttempts: row.compensation_attempts,
        }
      : undefined;
  }

  async inputOf(
    tx: EntityManager,
    sagaId: string,
  ): Promise<{ name: string; input: JsonValue } | undefined> {
    if (!isUuid(sagaId)) return undefined;
    const runner = tx.queryRunner;
    if (!runner?.isTransactionActive) {
      throw new SagaTransactionInactiveError(
        `The input of saga ${sagaId} must be read inside the step's or the reply's transaction.`,
      );
    }
    const [row] = await run(runner, q.selectSagaInput(this.schema, { sagaId }));
    return row ? { name: row.name, input: row.input as JsonValue } : undefined;
  }

  async transition(
    fence: Fence,
    from: readonly SagaStatus[],
    to: SagaStatus,
    detail?: { error?: string; failedStep?: string },
    within?: WithinTransaction<EntityManager>,
  ): Promise<boolean> {
    if (!isUuid(fence.sagaId) || from.length === 0) return false;
    const statement = q.transitionSaga(this.schema, {
      sagaId: fence.sagaId,
      owner: fence.owner,
      from,
      to,
      error: detail?.error === undefined ? null : storableText(detail.error),
      failedStep: detail?.failedStep ?? null,
    });
    if (!within) return (await this.withRunner((runner) => run(runner, statement))).length > 0;
    // The UPDATE's row lock is held until COMMIT, so the hook's writes commit with the change (or
    // neither does); a fenced-off or already-moved saga runs no hook.
    return this.inTransaction(async (runner) => {
      const moved = (await run(runner, statement)).length > 0;
      if (moved) await within(runner.manager);
      return moved;
    });
  }

  async renewLeases(owner: string, sagaIds: readonly string[], leaseMs: number): Promise<string[]> {
    const ids = sagaIds.filter(isUuid);
    if (!ids.length) return [];
    const rows = await this.withRunner((runner) =>
      run(runner, q.renewLeases(this.schema, { owner, sagaIds: ids, leaseMs })),
    );
    return rows.map((r) => r.id);
  }

  async claimOrphans(
    owner: string,
    versions: readonly SagaVersionRef[],
    limit: number,
    leaseMs: number,
  ): Promise<string[]> {
    if (!versions.length || limit <= 0) return [];
    const rows = await this.withRunner((runner) =>
      run(
        runner,
        q.claimOrphans(this.schema, {
          owner,
          names: versions.map((v) => v.name),
          versions: versions.map((v) => v.version),
          limit,
          leaseMs,
        }),
      ),
    );
    return rows.map((r) => r.id);
  }

  async release(owner: string, sagaIds: readonly string[]): Promise<void> {
    const ids = sagaIds.filter(isUuid);
    if (!ids.length) return;
    await this.withRunner((runner) =>
      run(runner, q.releaseSagas(this.schema, { owner, sagaIds: ids })),
    );
  }

  async activeVersions(): Promise<ActiveVersionCount[]> {
    return this.withRunner((runner) => run(runner, q.selectActiveVersions(this.schema)));
  }

  /**
   * Instance + steps in one statement; on an idempotency-key hit, the existing id and fingerprint,
   * and no writes.
   */
  private async insert(runner: QueryRunner, saga: NewSaga): Promise<SagaCreateOutcome> {
    const params = { ...saga, inputFingerprint: saga.inputFingerprint ?? null };
    // Two rounds at most: the row holding our key could be deleted between our INSERT (which saw
    // it) and our SELECT; the second INSERT then succeeds.
    for (let round = 0; round < 2; round++) {
      const [inserted] = await run(runner, q.createSaga(this.schema, params));
      if (inserted) return { id: inserted.id, created: true };
      // Only an idempotency-key conflict makes ON CONFLICT DO NOTHING return no row.
      const [existing] = await run(
        runner,
        q.selectSagaByIdempotencyKey(this.schema, {
          name: saga.name,
          idempotencyKey: saga.idempotencyKey!,
        }),
      );
      if (existing)
        return { id: existing.id, created: false, inputFingerprint: existing.input_fingerprint };
    }
    throw new SagaCreateConflictError(saga.name, saga.idempotencyKey ?? '');
  }

  private async withRunner<T>(fn: (runner: QueryRunner) => Promise<T>): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    try {
      return await fn(runner);
    } finally {
      await runner.release();
    }
  }

  private async inTransaction<T>(fn: (runner: QueryRunner) => Promise<T>): Promise<T> {
    return this.withRunner(async (runner) => {
      await runner.connect();
      await runner.startTransaction();
      try {
        const value = await fn(runner);
        await runner.commitTransaction();
        return value;
      } catch (error) {
        await rollbackQuietly(runner);
        throw error;
      }
    });
  }
}

/**
 * Rolls back after a failure; the original error is what the caller needs, so a failing ROLLBACK
 * (connection already broken — pg then discards the connection from the pool) is not rethrown.
 */
async function rollbackQuietly(runner: QueryRunner): Promise<void> {
  if (!runner.isTransactionActive) return;
  try {
    await runner.rollbackTransaction();
  } catch {
    // The failure that brought us here is the one reported.
  }
}

/**
 * The database answered that the transaction cannot commit because of what it wrote: an integrity
 * violation (class 23, e.g. a deferred constraint the step's writes broke, checked at COMMIT) or a
 * transaction rollback (class 40: serialization failure, deadlock). Nothing committed, and the
 * step's own work is the cause, so it is a failed attempt of the step (retried per its policy), not
 * store trouble: treating it as such would resume the saga into the same failure forever.
 */
function refusedWrites(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(23|40)[0-9A-Z]{3}$/.test(code);
}

function unknownStep(sagaId: string, step: string): SagaStepUnknownError {
  return new SagaStepUnknownError(sagaId, step);
}

/** The textual forms PostgreSQL's uuid input accepts that we need (canonical, any case, or 32 hex digits). */
const UUID = /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})$/i;
function isUuid(id: string): boolean {
  return typeof id === 'string' && UUID.test(id);
}

export function toSagaRecord(row: q.SagaInstanceRow): SagaRecord {
  return {
    id: row.id,
    name: row.name,
    version: row.version,
    status: row.status as SagaStatus,
    input: row.input as JsonValue,
    idempotencyKey: row.idempotency_key,
    owner: row.owner,
    leaseUntil: row.lease_until,
    deadlineAt: row.deadline_at,
    error: row.error,
    failedStep: row.failed_step,
    wakeAt: row.wake_at,
    wakeSeq: Number(row.wake_seq),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    steps: row.steps.map(toStepRecord),
  };
}

function toStepRecord(step: q.SagaStepJson): StepRecord {
  return {
    name: step.name,
    status: step.status as StepStatus,
    attempts: step.attempts,
    compensationAttempts: step.compensation_attempts,
    result: (step.result ?? null) as JsonValue | null,
    error: step.error,
    startedAt: toDate(step.started_at),
    completedAt: toDate(step.completed_at),
    compensatedAt: toDate(step.compensated_at),
    replyDeadline: toDate(step.reply_deadline),
  };
}

/** json_build_object renders timestamptz as ISO 8601 with offset, which Date parses exactly (to the ms). */
function toDate(value: string | null): Date | null {
  return value === null ? null : new Date(value);
}
