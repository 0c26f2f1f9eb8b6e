/**
 * Misuse that used to pass silently fails startup with one line naming what is wrong and the fix
 * (issue 12, "No silent misuse"), through the real module on real PostgreSQL: a saga name declared
 * twice (two @Saga classes, a @Saga class and a `forRoot({ sagas })` definition, a runtime
 * SagaService.register, one class provided by two modules) and a Sage handler that also carries
 * Nest's @EventPattern (it would run twice per message).
 */
import 'reflect-metadata';
import { Controller, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventPattern } from '@nestjs/microservices';
import type { EntityManager } from 'typeorm';
import { createTestDatabase, sagePostgresOptions, type TestDatabase } from '@test/support/pg';
import {
  defineSaga,
  IdempotentHandler,
  InvalidOptionsError,
  SagaCommandHandler,
  Saga,
  SagaDefinitionError,
  SagaOutboxModule,
  SagaService,
  SagaStep,
  type SagaOutboxModuleOptions,
} from '../index';

@Saga('order-placement')
class OrderPlacementSaga {
  @SagaStep('reserve', { compensatable: false })
  reserve() {
    return null;
  }
}

@Saga('order-placement')
class LegacyOrderSaga {
  @SagaStep('charge', { compensatable: false })
  charge() {
    return null;
  }
}

const builtOrderPlacement = defineSaga<unknown, EntityManager>('order-placement')
  .step('reserve', { compensatable: false, run: () => null })
  .build();

@Controller()
class PaymentCommandsController {
  @SagaCommandHandler('payment.authorize', { destination: 'payment.commands' })
  @EventPattern('payment.commands')
  authorize(): Promise<null> {
    return Promise.resolve(null);
  }
}

@Controller()
class PaymentsController {
  @IdempotentHandler('orders', { consumer: 'payments.on-order-placed' })
  @EventPattern('orders')
  onOrderPlaced(): Promise<void> {
    return Promise.resolve();
  }
}

let db: TestDatabase;
let postgres: SagaOutboxModuleOptions['postgres'];

beforeAll(async () => {
  db = await createTestDatabase();
  postgres = { ...sagePostgresOptions(db.connection), poolSize: 2 };
});
afterAll(() => db?.drop());

function boot(
  metadata: { imports?: unknown[]; providers?: unknown[]; controllers?: unknown[] },
  options: SagaOutboxModuleOptions = {},
): Promise<INestApplicationContext> {
  @Module({
    imports: [
      SagaOutboxModule.forRoot({ postgres, autoStart: false, ...options }),
      ...((metadata.imports ?? []) as never[]),
    ],
    providers: (metadata.providers ?? []) as never[],
    controllers: (metadata.controllers ?? []) as never[],
  })
  class AppModule {}
  return NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
}

describe('a saga name declared twice fails startup naming both declarations', () => {
  it('two @Saga classes', async () => {
    const booting = boot({ providers: [OrderPlacementSaga, LegacyOrderSaga] });
    await expect(booting).rejects.toThrow(SagaDefinitionError);
    await expect(booting).rejects.toThrow(
      `Saga "order-placement": declared twice, by OrderPlacementSaga and by LegacyOrderSaga. Saga names must be unique in an application; rename one (@Saga('...') or defineSaga({ name })).`,
    );
  });

  it('a @Saga class and a defineSaga() definition in forRoot({ sagas })', async () => {
    await expect(
      boot({ providers: [OrderPlacementSaga] }, { sagas: [builtOrderPlacement as never] }),
    ).rejects.toThrow(
      // Module init order decides which one is first; both are named either way.
      /^Saga "order-placement": declared twice, by (OrderPlacementSaga and by SagaOutboxModule\.forRoot\(\{ sagas \}\)|SagaOutboxModule\.forRoot\(\{ sagas \}\) and by OrderPlacementSaga)\. Saga names must be unique/,
    );
  });

  it('SagaService.register() at runtime, after a @Saga class took the name', async () => {
    const app = await boot({ providers: [OrderPlacementSaga] });
    try {
      const register = () => app.get(SagaService).register(builtOrderPlacement);
      expect(register).toThrow(SagaDefinitionError);
      expect(register).toThrow(
        `Saga "order-placement": declared twice, by OrderPlacementSaga and by SagaService.register().`,
      );
    } finally {
      await app.close();
    }
  });

  it('one @Saga class provided by two modules', async () => {
    @Module({ providers: [OrderPlacementSaga] })
    class OrdersModule {}
    @Module({ providers: [OrderPlacementSaga] })
    class BackOfficeModule {}
    await expect(boot({ imports: [OrdersModule, BackOfficeModule] })).rejects.toThrow(
      `Saga "order-placement": declared twice, both times by OrderPlacementSaga (a @Saga class provided by more than one module, or one definition registered twice). Provide or register it once.`,
    );
  });
});

it('@IdempotentHandler and @EventPattern on one method fail startup naming the method and the fix', async () => {
  const booting = boot({ controllers: [PaymentsController] });
  await expect(booting).rejects.toThrow(InvalidOptionsError);
  await expect(booting).rejects.toThrow(
    `Invalid Sage option "@IdempotentHandler": PaymentsController.onOrderPlaced also has @EventPattern('orders'), so it would run twice per message (once from Sage's broker subscription through the inbox, once from the Nest transport without it). Keep one: @IdempotentHandler alone (Sage consumes through its broker, deduplicated by the inbox), or @EventPattern alone with InboxService.handle(consumer, ctx, ...) inside for deduplication (docs/inbox.md).`,
  );
});

it('@SagaCommandHandler on a controller is found (and checked) like one on a provider', async () => {
  const booting = boot({ controllers: [PaymentCommandsController] });
  await expect(booting).rejects.toThrow(InvalidOptionsError);
  await expect(booting).rejects.toThrow(
    `Invalid Sage option "@SagaCommandHandler": PaymentCommandsController.authorize also has @EventPattern('payment.commands'), so it would run twice per message`,
  );
});
