import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { SagaOutboxModule, sagaOutboxMigrations, SageHttpExceptionFilter } from '@sage/saga-outbox';
import { SageHealthModule } from '@sage/saga-outbox/health';
import { SageMetricsModule } from '@sage/saga-outbox/metrics';
import { DataSource } from 'typeorm';
import { CreateOrders1767225600000 } from './orders/create-orders.migration';
import { OrdersController } from './orders/orders.controller';
import { PlaceOrderSaga } from './orders/place-order.saga';
import { ShippingConsumer } from './orders/shipping.consumer';

@Module({})
export class AppModule {
  static forRoot(config: { databaseUrl: string; brokerUrl: string }): DynamicModule {
    return {
      module: AppModule,
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: config.databaseUrl,
          migrations: [...sagaOutboxMigrations(), CreateOrders1767225600000],
          migrationsRun: true,
        }),
        // Sage shares the app's DataSource: business writes and saga state commit together.
        SagaOutboxModule.forRootAsync({
          inject: [DataSource],
          useFactory: (dataSource: DataSource) => ({ dataSource, broker: config.brokerUrl }),
        }),
        PrometheusModule.register(), // GET /metrics
        SageMetricsModule.forRoot({}),
        SageHealthModule.forRoot({}), // GET /health/live, /health/ready
      ],
      controllers: [OrdersController, ShippingConsumer],
      providers: [
        PlaceOrderSaga,
        // Sage's errors as HTTP statuses: an input the saga's validator rejects is a 400.
        { provide: APP_FILTER, useClass: SageHttpExceptionFilter },
      ],
    };
  }
}
