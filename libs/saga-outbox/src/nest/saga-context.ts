import type { EntityManager } from 'typeorm';
import type { CompensationContext, StepContext } from '../core/saga/saga-definition';

/** What a `@SagaStep` method receives: `manager` is the step's transaction. */
export type SagaStepContext<TInput = unknown> = StepContext<TInput, EntityManager>;
/** What a `@Compensate` method receives. */
export type SagaCompensationContext<TInput = unknown> = CompensationContext<TInput, EntityManager>;
