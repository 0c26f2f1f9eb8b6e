import { Module, type DynamicModule, type Type } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { SagaOutboxModule, sagaOutboxMigrations, type SagaEngineTuning } from '@sage/saga-outbox';
import { DataSource } from 'typeorm';
import { OrderTables1764230500000 } from './migrations/1764230500000-order-tables';
import { OrderPlacementSaga } from './orders/order-placement.saga';
import { OrdersController } from './orders/orders.controller';
import { FakeCardGateway, PaymentGateway } from './orders/payment-gateway';

export interface OrderServiceConfig {
  /** postgres:// URL of the service's database. */
  databaseUrl: string;
  saga?: SagaEngineTuning;
  http?: boolean;
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
          migrationsRun: true,
          migrationsTransactionMode: 'each',
          extra: { max: 10 },
        }),
        SagaOutboxModule.forRootAsync({
          inject: [DataSource],
          useFactory: (dataSource: DataSource) => ({ dataSource, saga: config.saga }),
        }),
      ],
      controllers: config.http === false ? [] : [OrdersController],
      providers: [OrderPlacementSaga, { provide: PaymentGateway, useClass: config.paymentGateway ?? FakeCardGateway }],
    };
  }
}
