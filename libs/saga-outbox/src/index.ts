// The curated public API of @sage/saga-outbox. Nothing else is public.

// Errors
export {
  SagaOutboxError,
  SagaDefinitionError,
  UnknownSagaError,
  SagaInputInvalidError,
  NotSerializableError,
  InvalidOptionsError,
  SagaNotFoundError,
  SagaWaitTimeoutError,
  StepTimeoutError,
  SagaTimeoutError,
  LeaseLostError,
} from './core/errors';
export type { JsonValue } from './core/json';

// Saga definitions
export { defineSaga, SagaBuilder } from './core/saga/saga-builder';
export { buildSagaDefinition } from './core/saga/saga-definition';
export type {
  SagaDefinition,
  StepDefinition,
  SagaOptions,
  StepOptions,
  FailureStrategy,
  StepContext,
  CompensationContext,
} from './core/saga/saga-definition';
export type { RetryPolicy, RetryPolicyInput } from './core/saga/retry-policy';
export type { SagaEvent, SagaEventListener } from './core/saga/saga-events';
export type { SagaRecord, StepRecord, SagaStatus, StepStatus } from './core/ports/saga-store';
export { SagaEngine } from './core/saga/saga-engine';
export type {
  SagaEngineOptions,
  StartOptions,
  StartResult,
  WaitOptions,
  VersionMismatch,
} from './core/saga/saga-engine';

// Persistence
export { sagaOutboxMigrations } from '../../../migrations';
export { PostgresSagaStore } from './persistence/postgres/postgres-saga-store';
export { startEmbeddedPostgres } from './persistence/postgres/embedded-postgres';
export type { EmbeddedPostgres } from './persistence/postgres/embedded-postgres';

// Nest
export { SagaOutboxModule } from './nest/saga-outbox.module';
export { SAGA_OUTBOX_OPTIONS } from './nest/saga-outbox.module-definition';
export type {
  SagaOutboxModuleOptions,
  SagaOutboxPostgresOptions,
  SagaOutboxEmbeddedOptions,
  SagaEngineTuning,
} from './nest/saga-outbox.options';
export { Saga, SagaStep, Compensate } from './nest/decorators';
export type { SagaStepContext, SagaCompensationContext } from './nest/saga-context';
export { SagaService } from './nest/saga.service';
export { SageDatabase } from './nest/sage-database';
