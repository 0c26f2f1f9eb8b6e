import { SagaOutboxError } from '../core/errors';

/**
 * A SagaService method was given, in place of a saga name, something that is not a `@Saga` class
 * (code `SAGA_CLASS_INVALID`): a class without `@Saga()`, or `undefined` (typically a circular
 * import that left the class undefined when the call ran). Nothing was written.
 */
export class SagaClassInvalidError extends SagaOutboxError {
  constructor(
    /** The method called, e.g. `start`. */
    readonly method: string,
    /** What it was given: a class name, or `undefined`, `null`, a type. */
    readonly given: string,
    isClass: boolean,
  ) {
    super(
      'SAGA_CLASS_INVALID',
      isClass
        ? `SagaService.${method}() was given the class ${given}, which is not a saga: it has no @Saga() decorator. ` +
            `Decorate it with @Saga('<saga name>') and list it in a module's providers, or pass the saga's name. Nothing was written.`
        : `SagaService.${method}() needs a @Saga class or a saga name, but was given ${given}. ` +
            'If you passed a class, a circular import may have left it undefined at this point: import the saga class from its own file, ' +
            'or pass the saga name. Nothing was written.',
    );
  }
}
