import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import type { SagaRecord } from '../core/ports/saga-store';
import type { SagaDefinition } from '../core/saga/saga-definition';
import {
  SagaEngine,
  type StartOptions,
  type StartResult,
  type VersionMismatch,
  type WaitOptions,
} from '../core/saga/saga-engine';
import type { SagaEventListener } from '../core/saga/saga-events';
import type { SagaClass, SagaInputOf } from './saga-input-of';
import { sagaNameOf, type SagaReference } from './saga-reference';

/** The saga API for application code. */
@Injectable()
export class SagaService {
  constructor(private readonly engine: SagaEngine<EntityManager>) {}

  /**
   * Starts the saga of `@Saga` class `saga` with `input`, typed by the class: the input its steps'
   * contexts declare (`SagaStepContext<PlaceOrderInput>` → `PlaceOrderInput`; see SagaInputOf), so a
   * wrong input does not compile. `sagas.start(OrderPlacementSaga, order, { idempotencyKey: order.id })`.
   * A class without `@Saga()` (or `undefined`, from a circular import) rejects with
   * SagaClassInvalidError; otherwise as the name form below.
   */
  start<S extends SagaClass>(
    saga: S,
    input: SagaInputOf<S>,
    options?: StartOptions<EntityManager>,
  ): Promise<StartResult>;
  /**
   * Starts saga `name` with `input`. Same `idempotencyKey` and input twice → the same saga (second
   * call writes nothing); same key with another input → SagaIdempotencyConflictError (unless the
   * module's `saga.idempotencyConflict` is `'return-existing'`).
   * With `manager`, the saga is created in your transaction and runs after it commits.
   * Rejects with UnknownSagaError, SagaInputInvalidError, NotSerializableError or InvalidOptionsError
   * (an unusable idempotency key) before writing anything.
   */
  start<TInput>(
    name: string,
    input: TInput,
    options?: StartOptions<EntityManager>,
  ): Promise<StartResult>;
  async start(
    saga: SagaReference,
    input: unknown,
    options?: StartOptions<EntityManager>,
  ): Promise<StartResult> {
    return this.engine.start(sagaNameOf(saga, 'start'), input, options);
  }

  /**
   * The saga (by name or `@Saga` class) started with `idempotencyKey`, or null when none was (or its
   * start rolled back with your transaction): e.g. to answer a retried request with the saga its
   * first attempt started. Rejects with UnknownSagaError for a saga nothing registered,
   * InvalidOptionsError for a key `start()` would refuse, SagaClassInvalidError for a class without
   * `@Saga()`.
   */
  async findByKey(saga: SagaReference, idempotencyKey: string): Promise<SagaRecord | null> {
    return this.engine.findByKey(sagaNameOf(saga, 'findByKey'), idempotencyKey);
  }

  /** Status, steps (status, attempts, result, error) and failure reason. Throws SagaNotFoundError. */
  get(sagaId: string): Promise<SagaRecord> {
    return this.engine.get(sagaId);
  }

  /** Resolves once the saga is completed, compensated or failed; SagaWaitTimeoutError after `timeoutMs` (default 30 s). */
  waitFor(sagaId: string, options?: WaitOptions): Promise<SagaRecord> {
    return this.engine.waitFor(sagaId, options);
  }

  /** Picks up sagas started inside a transaction right away instead of at the next recovery tick. */
  resumePending(): void {
    this.engine.resumePending();
  }

  /** Registers a saga built with `defineSaga()` at runtime. */
  register<TInput>(definition: SagaDefinition<TInput, EntityManager>): void {
    this.engine.register(definition, { declaredBy: 'SagaService.register()' });
  }

  /** Subscribe to typed lifecycle events (logging, metrics, traces). Returns an unsubscribe function. */
  onEvent(listener: SagaEventListener): () => void {
    return this.engine.onEvent(listener);
  }

  /** Running instances whose saga definition has changed since they started. */
  versionMismatches(): Promise<VersionMismatch[]> {
    return this.engine.versionMismatches();
  }
}
