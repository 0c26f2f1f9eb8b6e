import type { Type } from '@nestjs/common';
import { MetadataScanner, Reflector } from '@nestjs/core';
import type { EntityManager } from 'typeorm';
import { InvalidOptionsError } from '../../core/errors';
import {
  buildSagaDefinition,
  type CompensationBody,
  type SagaDefinition,
  type StepSpec,
} from '../../core/saga/saga-definition';
import {
  SAGA_COMPENSATE_METADATA,
  SAGA_METADATA,
  SAGA_STEP_METADATA,
  type SagaMetadata,
  type SagaStepMetadata,
} from '../../nest/decorators';

/** The saga a crash harness tests: a `@Saga` provider class, or a `defineSaga(...).build()` definition. */
export type SagaUnderTest<TInput = unknown> =
  Type<unknown> | SagaDefinition<TInput, EntityManager> | SagaDefinition<never, EntityManager>;

/** The saga as the harness sees it before any worker runs: its name, its graph, how to register it. */
export interface ResolvedSaga {
  readonly name: string;
  /**
   * The step graph (order, dependencies, pivots, kinds, timeouts, retry policies). For a class it
   * is read from the decorators; its bodies are the prototype's methods, never called from it.
   */
  readonly graph: SagaDefinition<unknown, EntityManager>;
  /** A `@Saga` class: added to each worker's providers (Sage discovers it there). */
  readonly provider?: Type<unknown>;
  /** A built definition: given to each worker's SagaOutboxModule as `sagas`. */
  readonly definition?: SagaDefinition<never, EntityManager>;
}

/** Reads the saga under test, failing with a message that says what to pass instead. */
export function resolveSaga(saga: SagaUnderTest<unknown>): ResolvedSaga {
  if (typeof saga === 'function') return fromClass(saga);
  if (
    typeof saga === 'object' &&
    saga !== null &&
    typeof saga.name === 'string' &&
    saga.steps instanceof Map &&
    Array.isArray(saga.order)
  ) {
    const definition = saga as SagaDefinition<never, EntityManager>;
    return {
      name: definition.name,
      graph: definition as unknown as SagaDefinition<unknown, EntityManager>,
      definition,
    };
  }
  throw new InvalidOptionsError(
    'saga',
    'must be a @Saga() provider class or a saga definition (defineSaga(...).build())',
  );
}

/** The graph of a `@Saga` class, from its decorators, as SagaExplorer reads them from an instance. */
function fromClass(type: Type<unknown>): ResolvedSaga {
  const reflector = new Reflector();
  const meta = reflector.get<SagaMetadata | undefined>(SAGA_METADATA, type);
  if (!meta)
    throw new InvalidOptionsError(
      'saga',
      `class ${type.name || '(anonymous)'} has no @Saga() decorator: pass the saga provider class, or a defineSaga(...).build() definition`,
    );
  const prototype = type.prototype as Record<string, unknown>;
  const steps: StepSpec<unknown, EntityManager>[] = [];
  const compensations = new Map<string, CompensationBody<unknown, EntityManager>>();
  for (const methodName of new MetadataScanner().getAllMethodNames(prototype)) {
    const method = prototype[methodName];
    if (typeof method !== 'function') continue;
    const body = method as (...args: unknown[]) => unknown;
    const step = reflector.get<SagaStepMetadata | undefined>(SAGA_STEP_METADATA, body);
    if (step) steps.push({ ...step.options, name: step.name, run: body });
    const compensated = reflector.get<string | undefined>(SAGA_COMPENSATE_METADATA, body);
    if (compensated !== undefined) compensations.set(compensated, body);
  }
  const graph = buildSagaDefinition<unknown, EntityManager>({
    ...(meta.options as object),
    name: meta.name,
    steps: steps.map((s) => ({ ...s, compensate: compensations.get(s.name) })),
  });
  return { name: meta.name, graph, provider: type };
}
