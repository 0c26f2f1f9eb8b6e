import {
  buildSagaDefinition,
  type CompensationBody,
  type SagaDefinition,
  type SagaOptions,
  type StepBody,
  type StepOptions,
  type StepSpec,
} from './saga-definition';

/**
 * The plain (decorator-free) way to declare a saga. Produces the same definition as the `@Saga` decorator.
 *
 * ```ts
 * const placement = defineSaga<Order, EntityManager>('order-placement')
 *   .step('reserve-stock', { run: reserve, compensate: release })
 *   .step('charge', { dependsOn: ['reserve-stock'], run: charge, compensate: refund })
 *   .build();
 * ```
 */
export class SagaBuilder<TInput = unknown, Tx = unknown> {
  private readonly steps: StepSpec<TInput, Tx>[] = [];

  constructor(
    private readonly name: string,
    private readonly options: SagaOptions<TInput> = {},
  ) {}

  step(
    name: string,
    spec: StepOptions & { run: StepBody<TInput, Tx>; compensate?: CompensationBody<TInput, Tx> },
  ): this {
    this.steps.push({ ...spec, name });
    return this;
  }

  build(): SagaDefinition<TInput, Tx> {
    return buildSagaDefinition({ ...this.options, name: this.name, steps: this.steps });
  }
}

export function defineSaga<TInput = unknown, Tx = unknown>(
  name: string,
  options?: SagaOptions<TInput>,
): SagaBuilder<TInput, Tx> {
  return new SagaBuilder<TInput, Tx>(name, options);
}
