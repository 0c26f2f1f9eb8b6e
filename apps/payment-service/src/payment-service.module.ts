import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  runMigrationsLocked,
  SagaOutboxModule,
  sagaOutboxMigrations,
  SageHttpExceptionFilter,
  type Broker,
  type OutboxModuleOptions,
  type SagaEngineTuning,
} from '@sage/saga-outbox';
import { openTelemetryTracing } from '@sage/saga-outbox/tracing';
import { DataSource } from 'typeorm';
import { sampleObservability } from '../../shared/observability';
import { sampleTopology, type SampleTopology } from '../../shared/sample-topology';
import { AuthorizationsController } from './authorizations/authorizations.controller';
import { paymentCommandHandlers } from './authorizations/payment-command.handlers';
import { PaymentTables1764230600000 } from './migrations/1764230600000-payment-tables';
import { PaymentAuthorizations1764489700000 } from './migrations/1764489700000-payment-authorizations';
import { OrderReceipts1765300000000 } from './migrations/1765300000000-order-receipts';
import { orderReceiptsConsumer } from './receipts/order-receipts.consumer';
import { RefundSaga } from './refunds/refund.saga';
import { RefundsController } from './refunds/refunds.controller';
import { sampleApiKey } from '../../shared/api-key.guard';
import { sampleValidationPipe } from '../../shared/sample-validation';
import { sampleDecryption, type SampleDecryption } from '../../shared/sample-data-protection';
import { paymentServiceContracts } from '../../shared/contracts';

export interface PaymentServiceConfig {
  /** postgres:// URL of the service's database (may be the one order-service uses: the schemas differ). */
  databaseUrl: string;
  saga?: SagaEngineTuning;
  /**
   * The broker payment commands are consumed from and the in-process relay publishes this service's
   * outbox (the replies) to: a URL (`kafka://`, `amqp://`, `nats://`, `memory://`) or a Broker
   * instance (not closed by the app). None → no command consumer and no relay in this process.
   */
  broker?: Broker | string;
  /** Destination and consumer names shared with order-service. Default `sampleTopology()`. */
  topology?: SampleTopology;
  /** Outbox relay / retention tuning. */
  outbox?: OutboxModuleOptions;
  /**
   * The `X-API-Key` the business routes require (SampleApiKeyGuard: where authentication goes).
   * Undefined (the demo, the tests): no check.
   */
  apiKey?: string;
  /**
   * Decryption of what order-service encrypted (the card token of `payment.authorize`): the same
   * master keys as order-service (default `SAGE_ENCRYPTION_KEYS`, see SampleEncryption) and its
   * data-subject keys (`subjectKeysDatabaseUrl`).
   */
  encryption?: SampleDecryption;
}

/** Schema of payment-service's Sage tables (its outbox, inbox and sagas); business tables are in `payments`. */
export const PAYMENT_SAGE_SCHEMA = 'payment_sage';

@Module({})
export class PaymentServiceModule {
  static register(config: PaymentServiceConfig): DynamicModule {
    const topology = config.topology ?? sampleTopology();
    const decryption = sampleDecryption('payment-service', config.encryption);
    return {
      module: PaymentServiceModule,
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: config.databaseUrl,
          synchronize: false,
          migrations: [
            ...sagaOutboxMigrations({ schema: PAYMENT_SAGE_SCHEMA }),
            PaymentTables1764230600000,
            PaymentAuthorizations1764489700000,
            OrderReceipts1765300000000,
          ],
          // Its own migrations table: the service may share a database with order-service.
          migrationsTableName: 'payment_service_migrations',
          // Run below, serialised across instances (TypeORM's own migrationsRun races on a fresh DB).
          migrationsRun: false,
          migrationsTransactionMode: 'each',
          // Pinned: with search_path "$user", public and a role named like a schema, TypeORM would
          // otherwise look for its migrations table in that schema.
          schema: 'public',
        }),
        ...decryption.imports,
        SagaOutboxModule.forRootAsync({
          inject: [DataSource, ...decryption.inject],
          useFactory: (dataSource: DataSource, keysDataSource?: DataSource) => ({
            dataSource,
            schema: PAYMENT_SAGE_SCHEMA,
            saga: config.saga,
            broker: config.broker,
            outbox: config.outbox,
            // Spans for sagas, steps, outbox writes, publishes and inbox handling (exported when an
            // OpenTelemetry SDK is registered: apps/shared/tracing.ts).
            tracing: openTelemetryTracing(),
            // What it receives is checked against its contract (apps/shared/contracts) after
            // decryption, before a handler runs: a message that does not match is dead-lettered at
            // once; `order.confirmed` version 1 is upcast to version 2.
            contracts: paymentServiceContracts,
            // Keys only: Sage decrypts every command before its handler runs (a command it cannot
            // decrypt is dead-lettered, never handled); nothing here is encrypted on write.
            dataProtection: decryption.options(keysDataSource),
          }),
        }),
        ...sampleObservability('payment-service'),
      ],
      controllers: [RefundsController, AuthorizationsController],
      providers: [
        {
          provide: 'MIGRATIONS',
          inject: [DataSource],
          useFactory: (ds: DataSource) => runMigrationsLocked(ds),
        },
        RefundSaga,
        // Sage's typed errors as HTTP statuses: invalid refund 400, unknown saga id 404...
        { provide: APP_FILTER, useClass: SageHttpExceptionFilter },
        // Bodies checked against their DTOs: unknown fields, wrong types, missing refundId are 400.
        sampleValidationPipe,
        sampleApiKey(config.apiKey),
        paymentCommandHandlers({
          destination: topology.paymentCommands,
          consumer: topology.paymentConsumer,
        }),
        orderReceiptsConsumer({
          destination: topology.orderEvents,
          consumer: topology.paymentReceiptsConsumer,
        }),
      ],
    };
  }
}
