/**
 * A saga class (a `@Saga` provider) as a value, e.g. to start it by class:
 * `sagas.start(OrderPlacementSaga, input)`. Any class matches the type; that it carries `@Saga` is
 * checked when it is used (SagaClassInvalidError).
 */
export type SagaClass<TInstance = unknown> = abstract new (...args: never[]) => TInstance;

/**
 * The input a saga class's steps take, read from the context parameter of its methods:
 * `createOrder(ctx: SagaStepContext<PlaceOrderInput>)` makes it `PlaceOrderInput`. When methods
 * declare different inputs, it is what satisfies all of them (their intersection); with none
 * declared (`SagaStepContext` without a type argument, or no context parameter) it is `unknown`.
 * Only public methods are seen: a `private` step does not take part.
 *
 * ```ts
 * type Input = SagaInputOf<typeof OrderPlacementSaga>; // PlaceOrderInput
 * ```
 */
export type SagaInputOf<S extends SagaClass> =
  S extends SagaClass<infer T>
    ? [BoxedInputs<T>] extends [never]
      ? unknown
      : Intersection<BoxedInputs<T>> extends { input: infer I }
        ? I
        : unknown
    : unknown;

/**
 * The input each method's first parameter declares, if that parameter is a step or compensation
 * context, boxed: a bare `unknown` in the union would absorb every other member.
 */
type BoxedInputs<T> = { [K in keyof T]-?: ContextInput<T[K]> }[keyof T];

type ContextInput<M> = M extends (context: infer C, ...rest: never[]) => unknown
  ? C extends { readonly sagaId: string; readonly stepName: string; readonly input: infer I }
    ? { input: I }
    : never
  : never;

/** `A | B` → `A & B`. */
type Intersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void
  ? I
  : never;
