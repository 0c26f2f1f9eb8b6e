import { Injectable, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import type { EntityManager } from 'typeorm';
import { SagaDefinitionError } from '../core/errors';
import {
  buildSagaDefinition,
  type CompensationBody,
  type StepSpec,
} from '../core/saga/saga-definition';
import { SagaEngine } from '../core/saga/saga-engine';
import {
  SAGA_COMPENSATE_METADATA,
  SAGA_METADATA,
  SAGA_STEP_METADATA,
  type SagaMetadata,
  type SagaStepMetadata,
} from './decorators';

type Method = (...args: unknown[]) => unknown;

/**
 * Finds `@Saga` providers at module init, turns their `@SagaStep` / `@Compensate` methods into a
 * validated definition graph, and registers it with the engine. A malformed saga fails startup
 * with an error naming the saga and the step.
 */
@Injectable()
export class SagaExplorer implements OnModuleInit {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    private readonly engine: SagaEngine<EntityManager>,
  ) {}

  onModuleInit(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const instance: unknown = wrapper.instance;
      const metatype = wrapper.metatype;
      if (!instance || !metatype || typeof metatype !== 'function') continue;
      const saga = this.reflector.get<SagaMetadata | undefined>(SAGA_METADATA, metatype);
      if (!saga) continue;
      this.engine.register(this.definitionFor(saga, instance as Record<string, Method>), {
        declaredBy: metatype.name,
      });
    }
  }

  private definitionFor(saga: SagaMetadata, instance: Record<string, Method>) {
    const prototype = Object.getPrototypeOf(instance) as object;
    const steps = new Map<string, StepSpec<unknown, EntityManager>>();
    const compensations = new Map<string, CompensationBody<unknown, EntityManager>>();
    for (const methodName of this.scanner.getAllMethodNames(prototype)) {
      const method = instance[methodName];
      if (typeof method !== 'function') continue;
      const step = this.reflector.get<SagaStepMetadata | undefined>(SAGA_STEP_METADATA, method);
      if (step) {
        if (steps.has(step.name))
          throw new SagaDefinitionError(
            saga.name,
            step.name,
            `duplicate step name (methods ${methodName} and another)`,
          );
        steps.set(step.name, {
          ...step.options,
          name: step.name,
          run: method.bind(instance),
        });
      }
      const compensated = this.reflector.get<string | undefined>(SAGA_COMPENSATE_METADATA, method);
      if (compensated !== undefined) {
        if (compensations.has(compensated))
          throw new SagaDefinitionError(
            saga.name,
            compensated,
            'more than one @Compensate for this step',
          );
        compensations.set(compensated, method.bind(instance));
      }
    }
    for (const stepName of compensations.keys()) {
      if (!steps.has(stepName)) {
        throw new SagaDefinitionError(
          saga.name,
          stepName,
          `@Compensate("${stepName}") names a step that has no @SagaStep`,
        );
      }
    }
    return buildSagaDefinition<unknown, EntityManager>({
      ...(saga.options as object),
      name: saga.name,
      steps: [...steps.values()].map((s) => ({ ...s, compensate: compensations.get(s.name) })),
    });
  }
}
