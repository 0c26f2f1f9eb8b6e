/**
 * The saga the saga-worker round runs: a → b → c, every step LOCAL, each inserting one business
 * row through the step's transaction (the shape of benchmarks/scenarios/saga-local-3step.ts).
 * The controller and the workers build it from this one module, so its version hash agrees.
 */
import type { EntityManager } from 'typeorm';
import { defineSaga, type SagaDefinition } from '@sage/saga-outbox';
import { BUSINESS_TABLE, INSERT_BUSINESS_ROW } from '../harness/database';

export const SCALING_SAGA = 'bench-scaling-3step';
export const SCALING_SAGA_STEPS = 3;

export interface ScalingSagaInput {
  n: number;
}

export function scalingSaga(): SagaDefinition<ScalingSagaInput, EntityManager> {
  const run = async (ctx: { sagaId: string; stepName: string; manager: EntityManager }) => {
    await ctx.manager.query(INSERT_BUSINESS_ROW, [ctx.sagaId, ctx.stepName]);
  };
  const compensate = async (ctx: { sagaId: string; stepName: string; manager: EntityManager }) => {
    await ctx.manager.query(`DELETE FROM ${BUSINESS_TABLE} WHERE saga_id = $1 AND step = $2`, [
      ctx.sagaId,
      ctx.stepName,
    ]);
  };
  return defineSaga<ScalingSagaInput, EntityManager>(SCALING_SAGA)
    .step('a', { run, compensate })
    .step('b', { dependsOn: ['a'], run, compensate })
    .step('c', { dependsOn: ['b'], run, compensate })
    .build();
}
