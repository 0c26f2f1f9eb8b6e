import { SetMetadata, applyDecorators, Injectable } from '@nestjs/common';
import type { SagaOptions, StepOptions } from '../core/saga/saga-definition';

export const SAGA_METADATA = 'sage:saga';
export const SAGA_STEP_METADATA = 'sage:saga-step';
export const SAGA_COMPENSATE_METADATA = 'sage:saga-compensate';

export interface SagaMetadata {
  name: string;
  options: SagaOptions<never>;
}
export interface SagaStepMetadata {
  name: string;
  options: StepOptions;
}

/**
 * Marks a provider class as a saga. Its `@SagaStep` methods are the steps; `@Compensate` methods
 * undo them. Also makes the class injectable.
 */
export function Saga(name: string, options: SagaOptions<never> = {}): ClassDecorator {
  return applyDecorators(
    Injectable(),
    SetMetadata<string, SagaMetadata>(SAGA_METADATA, { name, options }),
  );
}

/** A step of the enclosing `@Saga`. The method receives a `SagaStepContext`; its return value is the step's stored result. */
export function SagaStep(name: string, options: StepOptions = {}): MethodDecorator {
  return SetMetadata<string, SagaStepMetadata>(SAGA_STEP_METADATA, { name, options });
}

/** The compensation of step `stepName`; receives a `SagaCompensationContext`. */
export function Compensate(stepName: string): MethodDecorator {
  return SetMetadata<string, string>(SAGA_COMPENSATE_METADATA, stepName);
}
