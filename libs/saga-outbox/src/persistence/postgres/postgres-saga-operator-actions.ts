import type { DataSource } from 'typeorm';
import { SagaNotFoundError } from '../../core/errors';
import type { SagaRecord } from '../../core/ports/saga-store';
import {
  sagaChangedMeanwhile,
  type SagaOperatorAction,
  type SagaOperatorActionStore,
  type SagaOperatorPlan,
  type SagaSeen,
} from '../../core/saga/saga-operator-actions';
import { insertAuditPending, setAuditActor } from './audit-queries.sql';
import { auditTables } from './audit-tables';
import { toSagaRecord } from './postgres-saga-store';
import { checkedAuditActor } from './query-as-actor';
import { runStatement as run } from './run-statement';
import * as ops from './saga-operator-actions.sql';
import { selectSaga } from './saga-queries.sql';
import { sagaSchema, type SagaSchema } from './schema-name';

/** Options of PostgresSagaOperatorActions. */
export interface PostgresSagaOperatorActionsOptions {
  /** Schema holding the saga tables (default `sage`). */
  schema?: string;
  /** The operator the audit log names as the actor (else the database role). */
  auditActor?: string;
}

/** The audit action each operator action records (docs/audit-log.md). */
export const SAGA_OPERATOR_AUDIT_ACTIONS: Readonly<Record<SagaOperatorAction, string>> = {
  retry: 'saga.retry_requested',
  compensate: 'saga.compensation_requested',
};

/**
 * SagaOperatorActionStore on PostgreSQL: each action is one transaction (lock the saga, read it,
 * plan again on what is read, change it, record the audit entry), so the change and its audit
 * entry commit together or not at all.
 */
export class PostgresSagaOperatorActions implements SagaOperatorActionStore {
  private readonly schema: SagaSchema;
  private readonly auditActor: string | undefined;

  constructor(
    private readonly dataSource: DataSource,
    options: PostgresSagaOperatorActionsOptions = {},
  ) {
    this.schema = sagaSchema(options.schema);
    this.auditActor = checkedAuditActor(options.auditActor);
  }

  async apply(
    action: SagaOperatorAction,
    sagaId: string,
    seen: SagaSeen,
    plan: (saga: SagaRecord, now: Date) => SagaOperatorPlan,
  ): Promise<SagaOperatorPlan> {
    const runner = this.dataSource.createQueryRunner();
    try {
      await runner.startTransaction();
      try {
        if (this.auditActor !== undefined) await run(runner, setAuditActor(this.auditActor));
        const [locked] = await run(runner, ops.lockSagaForOperator(this.schema, { sagaId }));
        const [row] = locked ? await run(runner, selectSaga(this.schema, { id: sagaId })) : [];
        if (!locked || !row) throw new SagaNotFoundError(sagaId);
        const saga = toSagaRecord(row);
        if (saga.status !== seen.status || saga.updatedAt.getTime() !== seen.updatedAt.getTime())
          throw sagaChangedMeanwhile(action, saga, seen);
        const planned = plan(saga, locked.now);
        if (planned.retrySteps.length)
          await run(
            runner,
            ops.resetStepsForRetry(this.schema, { sagaId, steps: planned.retrySteps }),
          );
        const moved = await run(
          runner,
          ops.moveSagaForOperator(this.schema, {
            action,
            sagaId,
            reason:
              action === 'compensate'
                ? `compensation requested by an operator while ${saga.status}`
                : null,
          }),
        );
        if (!moved.length) throw sagaChangedMeanwhile(action, saga, seen);
        await run(
          runner,
          insertAuditPending(auditTables(this.schema), {
            action: SAGA_OPERATOR_AUDIT_ACTIONS[action],
            targetType: 'saga',
            targetId: sagaId,
            detail: JSON.stringify({
              name: saga.name,
              from: planned.from,
              to: planned.to,
              ...(planned.retrySteps.length ? { steps: planned.retrySteps } : {}),
              ...(planned.stepsToUndo.length ? { undo: planned.stepsToUndo } : {}),
              ...(planned.liftsDeadline ? { deadline_lifted: true } : {}),
            }),
            actor: null,
          }),
        );
        await runner.commitTransaction();
        return planned;
      } catch (error) {
        await runner.rollbackTransaction().catch(() => undefined);
        throw error;
      }
    } finally {
      await runner.release();
    }
  }
}
