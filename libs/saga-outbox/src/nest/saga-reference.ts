import { Reflector } from '@nestjs/core';
import { SAGA_METADATA, type SagaMetadata } from './decorators';
import { SagaClassInvalidError } from './saga-class-invalid.error';
import type { SagaClass } from './saga-input-of';

const reflector = new Reflector();

/** How SagaService methods name a saga: by its name, or by its `@Saga` class. */
export type SagaReference = string | SagaClass;

/**
 * The saga name `saga` stands for: the string itself, or the name in the class's `@Saga()`
 * metadata (a subclass of a `@Saga` class inherits it). SagaClassInvalidError for anything else;
 * `method` is the SagaService method, for the message.
 */
export function sagaNameOf(saga: SagaReference, method: string): string {
  if (typeof saga === 'string') return saga;
  if (typeof saga !== 'function') throw new SagaClassInvalidError(method, describe(saga), false);
  const metadata = reflector.get<SagaMetadata | undefined>(SAGA_METADATA, saga);
  if (!metadata) throw new SagaClassInvalidError(method, saga.name || '(anonymous)', true);
  return metadata.name;
}

function describe(value: unknown): string {
  if (value === undefined || value === null) return String(value);
  return `a value of type ${typeof value}`;
}
