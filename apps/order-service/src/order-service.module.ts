import { Module, type DynamicModule, type Type } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  runMigrationsLocked,
  SagaOutboxModule,
  sagaOutboxMigrations,
  type SagaEngineTuning,
} from '@sage/saga-outbox';
import { DataSource } from 'typeorm';
import type { Broker } from '@sage/saga-outbox';
import { OrderTables1764230500000 } from './migrations/1764230500000-order-tables';
import { OrderPlacementSaga } from './orders/order-placement.saga';
import { OrdersController } from './orders/orders.controller';
import { FakeCardGateway, PaymentGateway } from './orders/payment-gateway';

export interface OrderServiceConfig {
  /** postgres:// URL of the service's database. */
  databaseUrl: string;
  saga?: SagaEngineTuning;
  http?: boolean;
  /** Where the outbox relay publishes (e.g. `order.confirmed`); none → no relay in this process. */
  broker?: Broker;
  /** The card processor; default FakeCardGateway. */
  paymentGateway?: Type<PaymentGateway>;
}

/** The order service: its business tables and Sage's share one DataSource, so one transaction covers both. */
@Module({})
export class OrderServiceModule {
  static register(config: OrderServiceConfig): DynamicModule {
    return {
      module: OrderServiceModule,
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: config.databaseUrl,
          synchronize: false,
          migrations: [...sagaOutboxMigrations(), OrderTables1764230500000],
          // Run below, serialised across instances (TypeORM's own migrationsRun races on a fresh DB).
          migrationsRun: false,
          migrationsTransactionMode: 'each',
          // Pinned: with search_path "$user", public and a role named like a schema, TypeORM would
          // otherwise look for its migrations table in that schema.
          schema: 'public',
          extra: { max: 10 },
        }),
        SagaOutboxModule.forRootAsync({
          inject: [DataSource],
          useFactory: (dataSource: DataSource) => ({
            dataSource,
            saga: config.saga,
            broker: config.broker,
          }),
        }),
      ],
      controllers: config.http === false ? [] : [OrdersController],
      providers: [
        {
          provide: 'MIGRATIONS',
          inject: [DataSource],
          useFactory: (ds: DataSource) => runMigrationsLocked(ds),
        },
        OrderPlacementSaga,
        { provide: PaymentGateway, useClass: config.paymentGateway ?? FakeCardGateway },
      ],
    };
  }
}
