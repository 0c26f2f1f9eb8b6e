import type { DataSource } from 'typeorm';
import { auditActorProblem } from '../../core/audit/audit-actor';
import { InvalidOptionsError } from '../../core/errors';
import { setAuditActor } from './audit-queries.sql';
import { queryOnce, runStatement } from './run-statement';
import type { Statement } from './saga-queries.sql';

/**
 * One statement in its own transaction on a pooled connection, as queryOnce, with `actor` named
 * first (`set_config('sage.actor', actor, true)`: transaction-local, so the pooled connection never
 * carries it on): the audit triggers record the operator as the actor of what it changes. No
 * actor: a plain queryOnce (the triggers record the database role).
 */
export async function queryAsActor<Row>(
  dataSource: DataSource,
  actor: string | undefined,
  statement: Statement<Row>,
): Promise<Row[]> {
  if (actor === undefined) return queryOnce(dataSource, statement);
  const runner = dataSource.createQueryRunner();
  try {
    await runner.startTransaction();
    try {
      await runStatement(runner, setAuditActor(actor));
      const rows = await runStatement(runner, statement);
      await runner.commitTransaction();
      return rows;
    } catch (error) {
      await runner.rollbackTransaction().catch(() => undefined);
      throw error;
    }
  } finally {
    await runner.release();
  }
}

/** `auditActor` as given, or InvalidOptionsError naming it. */
export function checkedAuditActor(actor: string | undefined): string | undefined {
  if (actor === undefined) return undefined;
  const problem = auditActorProblem(actor);
  if (problem) throw new InvalidOptionsError('auditActor', `${problem}.`);
  return actor;
}
