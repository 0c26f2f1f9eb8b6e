/**
 * A running Nest app with Sage and its operator console on a test database, for the console's
 * integration and browser tests: an order saga whose payment step fails (its reservation is then
 * compensated), the in-memory broker with a switchable fault (to dead-letter messages for real),
 * and an access policy driven by request headers: `x-operator: <name>` may act when
 * `x-can-act: yes`, `x-viewer: yes` may look, anything else is refused.
 */
import 'reflect-metadata';
import { Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { EntityManager } from 'typeorm';
import {
  defineSaga,
  InMemoryBroker,
  OutboxRepository,
  SagaOutboxModule,
  SagaService,
  SageDatabase,
  type OutboxMessageInput,
} from '@sage/saga-outbox';
import { SageConsoleModule, type SageConsoleModuleOptions } from '@sage/saga-outbox/console';
import type { PgConnection } from './pg';

export interface OrderInput {
  orderId: string;
  customer: string;
  failPayment?: boolean;
  [key: string]: unknown;
}

/** reserve-stock and notify-warehouse first, charge-payment after the reservation, ship last. */
export const orderSaga = defineSaga<OrderInput, EntityManager>('order-placement')
  .step('reserve-stock', {
    run: (ctx) => ({ reservation: `r-${ctx.input.orderId}` }),
    compensate: () => undefined,
  })
  .step('notify-warehouse', { run: () => ({ notified: true }), compensate: () => undefined })
  .step('charge-payment', {
    dependsOn: ['reserve-stock'],
    retry: { maxAttempts: 1 },
    run: (ctx) => {
      if (ctx.input.failPayment) throw new Error('card declined <b>by issuer</b>');
      return { charged: 42 };
    },
    compensate: () => undefined,
  })
  .step('ship', {
    dependsOn: ['charge-payment', 'notify-warehouse'],
    compensatable: false,
    run: () => ({ shipped: true }),
  })
  .build();

export interface ConsoleApp {
  app: INestApplication;
  /** The app's base URL (`http://127.0.0.1:<port>`). */
  url: string;
  broker: InMemoryBroker;
  sagas: SagaService;
  outbox: OutboxRepository;
  /** Publishes one message through the outbox in its own transaction; returns its id. */
  publish(message: OutboxMessageInput): Promise<string>;
  close(): Promise<void>;
}

export async function startConsoleApp(
  connection: PgConnection,
  consoleOptions: Partial<SageConsoleModuleOptions> = {},
): Promise<ConsoleApp> {
  const broker = new InMemoryBroker();
  const access: SageConsoleModuleOptions['access'] = (req) => {
    const operator = req.headers['x-operator'];
    if (typeof operator === 'string' && operator)
      return { operator, canAct: req.headers['x-can-act'] === 'yes' };
    return req.headers['x-viewer'] === 'yes';
  };
  @Module({
    imports: [
      SagaOutboxModule.forRoot({
        postgres: {
          host: connection.host,
          port: connection.port,
          user: connection.user,
          password: connection.password,
          database: connection.database,
        },
        broker,
        sagas: [orderSaga] as never[],
        saga: { recoveryIntervalMs: 100 },
        outbox: { relay: { pollIntervalMs: 50 } },
      }),
      SageConsoleModule.forRoot({ path: '/sage', access, actions: true, ...consoleOptions }),
    ],
  })
  class ConsoleTestAppModule {}
  const app = await NestFactory.create(ConsoleTestAppModule, {
    logger: false,
    abortOnError: false,
  });
  await app.listen(0, '127.0.0.1');
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  return {
    app,
    url,
    broker,
    sagas: app.get(SagaService),
    outbox: app.get(OutboxRepository),
    publish: async (message) => {
      const outbox = app.get(OutboxRepository);
      const [id] = await app
        .get(SageDatabase)
        .dataSource.transaction((manager) => outbox.publish(message, { manager }));
      return id!;
    },
    close: () => app.close(),
  };
}
