/**
 * SagaService by class: `start(OrderSaga, input)` typed by the class (checked by tsc: the
 * `@ts-expect-error` lines fail the type check if a wrong input ever compiles), the name taken from
 * `@Saga()`, a clear error for a class that is not a saga, and `findByKey` by name or class.
 */
import 'reflect-metadata';
import type { EntityManager } from 'typeorm';
import { InvalidOptionsError, SagaInputInvalidError, UnknownSagaError } from '../core/errors';
import { defineSaga } from '../core/saga/saga-builder';
import { SagaEngine } from '../core/saga/saga-engine';
import { InMemorySagaStore, type InMemoryTx } from '../testing/in-memory-saga-store';
import { Compensate, Saga, SagaStep } from './decorators';
import type { SagaCompensationContext, SagaStepContext } from './saga-context';
import { SagaClassInvalidError } from './saga-class-invalid.error';
import type { SagaInputOf } from './saga-input-of';
import { SagaService } from './saga.service';

interface OrderInput {
  orderId: string;
  quantity: number;
}

@Saga('typed-order')
class TypedOrderSaga {
  @SagaStep('reserve')
  reserve(ctx: SagaStepContext<OrderInput>) {
    return { reserved: ctx.input.quantity };
  }

  @Compensate('reserve')
  release(ctx: SagaCompensationContext<OrderInput>) {
    return ctx.input.orderId;
  }

  /** A context without a type argument does not widen the input to `unknown`. */
  @SagaStep('notify', { dependsOn: ['reserve'] })
  notify(ctx: SagaStepContext) {
    return ctx.sagaId;
  }

  /** Not a step: a helper method with another parameter is ignored. */
  format(count: number): string {
    return String(count);
  }
}

/** A subclass inherits its parent's `@Saga` name. */
class SubclassedOrderSaga extends TypedOrderSaga {}

class PlainService {
  @SagaStep('looks-like-a-step')
  run(ctx: SagaStepContext<{ a: number }>) {
    return ctx.input.a;
  }
}

// ---- compile-time: what SagaInputOf infers (a mismatch fails `tsc`) ----
type Equals<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
class _MixedInputs {
  a(ctx: SagaStepContext<{ a: string }>) {
    return ctx.input.a;
  }
  b(ctx: SagaCompensationContext<{ b: number }>) {
    return ctx.input.b;
  }
}
class _NoContexts {
  run() {
    return 1;
  }
}
abstract class _AbstractSaga {
  abstract run(ctx: SagaStepContext<{ id: string }>): void;
}
const inferred: [
  Equals<SagaInputOf<typeof TypedOrderSaga>, OrderInput>,
  Equals<SagaInputOf<typeof SubclassedOrderSaga>, OrderInput>,
  Equals<SagaInputOf<typeof _MixedInputs>, { a: string } & { b: number }>,
  Equals<SagaInputOf<typeof _NoContexts>, unknown>,
  Equals<SagaInputOf<typeof _AbstractSaga>, { id: string }>,
] = [true, true, true, true, true];

const engines: SagaEngine<InMemoryTx>[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.shutdown()));
});

/** A SagaService on an in-memory engine with `typed-order` registered (as the explorer would). */
function setup() {
  const engine = new SagaEngine<InMemoryTx>({
    store: new InMemorySagaStore(),
    shutdownTimeoutMs: 50,
  });
  engines.push(engine);
  const runs: unknown[] = [];
  engine.register(
    defineSaga<OrderInput, InMemoryTx>('typed-order', {
      validate: (i) =>
        typeof i?.orderId === 'string' && Number.isInteger(i.quantity) ? true : 'bad order',
    })
      .step('reserve', {
        compensatable: false,
        run: (ctx) => {
          runs.push(ctx.input);
          return null;
        },
      })
      .build(),
  );
  // The service is written for the PostgreSQL engine; the engine's API is the same for any Tx.
  const sagas = new SagaService(engine as unknown as SagaEngine<EntityManager>);
  return { sagas, runs };
}

describe('SagaService.start by class', () => {
  it('starts the saga named by the class’s @Saga, with the input typed by its steps', async () => {
    const { sagas, runs } = setup();
    const order: OrderInput = { orderId: 'o-1', quantity: 2 };
    const { sagaId, created } = await sagas.start(TypedOrderSaga, order, {
      idempotencyKey: 'k-1',
    });
    expect(created).toBe(true);
    const record = await sagas.waitFor(sagaId);
    expect(record).toMatchObject({ name: 'typed-order', status: 'completed', input: order });
    expect(runs).toEqual([order]);
    // The name form reaches the same saga (same key, same input: the first saga back).
    await expect(sagas.start('typed-order', order, { idempotencyKey: 'k-1' })).resolves.toEqual({
      sagaId,
      created: false,
    });
    // A subclass starts its parent's saga.
    await expect(
      sagas.start(SubclassedOrderSaga, order, { idempotencyKey: 'k-1' }),
    ).resolves.toEqual({ sagaId, created: false });
  });

  it('does not compile with a wrong input (and the validator still refuses it at run time)', async () => {
    const { sagas, runs } = setup();
    await expect(
      // @ts-expect-error -- quantity is a number in the steps' SagaStepContext<OrderInput>
      sagas.start(TypedOrderSaga, { orderId: 'o-1', quantity: '2' }),
    ).rejects.toThrow(SagaInputInvalidError);
    await expect(
      // @ts-expect-error -- quantity is missing
      sagas.start(TypedOrderSaga, { orderId: 'o-1' }),
    ).rejects.toThrow(SagaInputInvalidError);
    expect(runs).toEqual([]);
    expect(inferred).toEqual([true, true, true, true, true]);
  });

  it('rejects a class without @Saga, naming it and the fix; nothing is written', async () => {
    const { sagas, runs } = setup();
    const error = await sagas.start(PlainService, { a: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SagaClassInvalidError);
    expect(error).toMatchObject({ code: 'SAGA_CLASS_INVALID', method: 'start' });
    expect((error as Error).message).toBe(
      'SagaService.start() was given the class PlainService, which is not a saga: it has no @Saga() decorator. ' +
        "Decorate it with @Saga('<saga name>') and list it in a module's providers, or pass the saga's name. Nothing was written.",
    );
    expect(runs).toEqual([]);
  });

  it('rejects undefined (a class lost to a circular import) with a message saying so', async () => {
    const { sagas } = setup();
    const lost = undefined as unknown as typeof TypedOrderSaga;
    await expect(sagas.start(lost, { orderId: 'o', quantity: 1 })).rejects.toThrow(
      'SagaService.start() needs a @Saga class or a saga name, but was given undefined. ' +
        'If you passed a class, a circular import may have left it undefined at this point: import the saga class from its own file, ' +
        'or pass the saga name. Nothing was written.',
    );
  });
});

describe('SagaService.findByKey', () => {
  it('finds the saga started with a key, by name or by class; null when none was', async () => {
    const { sagas } = setup();
    const { sagaId } = await sagas.start(
      TypedOrderSaga,
      { orderId: 'o-7', quantity: 1 },
      { idempotencyKey: 'order-o-7' },
    );
    await sagas.waitFor(sagaId);
    const byClass = await sagas.findByKey(TypedOrderSaga, 'order-o-7');
    expect(byClass).toMatchObject({ id: sagaId, name: 'typed-order', status: 'completed' });
    expect(byClass).toEqual(await sagas.get(sagaId));
    await expect(sagas.findByKey('typed-order', 'order-o-7')).resolves.toEqual(byClass);
    await expect(sagas.findByKey(TypedOrderSaga, 'order-o-8')).resolves.toBeNull();
  });

  it('rejects an unregistered saga, a non-saga class and a key start() would refuse', async () => {
    const { sagas } = setup();
    await expect(sagas.findByKey('typed-ordr', 'k')).rejects.toThrow(UnknownSagaError);
    await expect(sagas.findByKey('typed-ordr', 'k')).rejects.toThrow(
      /No saga named "typed-ordr" is registered\. Known sagas: "typed-order"/,
    );
    await expect(sagas.findByKey(PlainService, 'k')).rejects.toThrow(
      'SagaService.findByKey() was given the class PlainService, which is not a saga',
    );
    await expect(sagas.findByKey(TypedOrderSaga, '')).rejects.toThrow(InvalidOptionsError);
    await expect(sagas.findByKey(TypedOrderSaga, 'x'.repeat(257))).rejects.toThrow(
      'Invalid Sage option "idempotencyKey": must be a non-empty string of at most 256 characters',
    );
    await expect(sagas.findByKey(TypedOrderSaga, 'nul\u0000')).rejects.toThrow(
      /Invalid Sage option "idempotencyKey": given to findByKey\("typed-order"\) contains the NUL character/,
    );
  });
});
