import { Module, type DynamicModule } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  runMigrationsLocked,
  SagaOutboxModule,
  sagaOutboxMigrations,
  type SagaEngineTuning,
} from '@sage/saga-outbox';
import { DataSource } from 'typeorm';
import { PaymentTables1764230600000 } from './migrations/1764230600000-payment-tables';
import { RefundSaga } from './refunds/refund.saga';
import { RefundsController } from './refunds/refunds.controller';

export interface PaymentServiceConfig {
  databaseUrl: string;
  saga?: SagaEngineTuning;
}

@Module({})
export class PaymentServiceModule {
  static register(config: PaymentServiceConfig): DynamicModule {
    return {
      module: PaymentServiceModule,
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: config.databaseUrl,
          synchronize: false,
          migrations: [...sagaOutboxMigrations(), PaymentTables1764230600000],
          // Run below, serialised across instances (TypeORM's own migrationsRun races on a fresh DB).
          migrationsRun: false,
          migrationsTransactionMode: 'each',
          // Pinned: with search_path "$user", public and a role named like a schema, TypeORM would
          // otherwise look for its migrations table in that schema.
          schema: 'public',
        }),
        SagaOutboxModule.forRootAsync({
          inject: [DataSource],
          useFactory: (dataSource: DataSource) => ({ dataSource, saga: config.saga }),
        }),
      ],
      controllers: [RefundsController],
      providers: [
        {
          provide: 'MIGRATIONS',
          inject: [DataSource],
          useFactory: (ds: DataSource) => runMigrationsLocked(ds),
        },
        RefundSaga,
      ],
    };
  }
}
