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
import { sampleApiKey } from '../../shared/api-key.guard';
import { sampleEncryptionKeys, type SampleEncryption } from '../../shared/sample-data-protection';
import { sampleObservability } from '../../shared/observability';
import { sampleValidationPipe } from '../../shared/sample-validation';
import { sampleTopology, type SampleTopology } from '../../shared/sample-topology';
import { orderServiceContracts } from '../../shared/contracts';
import { OrderTables1764230500000 } from './migrations/1764230500000-order-tables';
import { ORDER_PLACEMENT_SAGA, orderPlacementSaga } from './orders/order-placement.saga';
import { OrdersController } from './orders/orders.controller';

export interface OrderServiceConfig {
  /** postgres:// URL of the service's database. */
  databaseUrl: string;
  /** Engine tuning; `replyTo` / `replyConsumer` come from `topology`. */
  saga?: Omit<SagaEngineTuning, 'replyTo' | 'replyConsumer'>;
  http?: boolean;
  /**
   * The broker the in-process relay publishes the outbox to (payment commands, `order.confirmed`)
   * and the saga replies are consumed from: a URL (`kafka://h:9092`, `amqp://u:p@h:5672`,
   * `nats://h:4222`, `memory://`) or a Broker instance (not closed by the app). None → no relay
   * and no reply consumer in this process (the standalone relay can publish the outbox).
   */
  broker?: Broker | string;
  /** Destination and consumer names shared with payment-service. Default `sampleTopology()`. */
  topology?: SampleTopology;
  /**
   * The remote `authorize-payment` step: reply timeout per attempt (default 30 s), sends of
   * `payment.authorize` (default 3) and of its compensation `payment.void` (default 10).
   */
  payment?: { replyTimeoutMs?: number; maxAttempts?: number; voidMaxAttempts?: number };
  /** Outbox relay / retention tuning. */
  outbox?: OutboxModuleOptions;
  /**
   * The `X-API-Key` the business routes require (SampleApiKeyGuard: where authentication goes).
   * Undefined (the demo, the tests): no check.
   */
  apiKey?: string;
  /**
   * Encryption of the customer's personal data (name, e-mail, card token) in the saga input, the
   * outbox and on the broker, per customer (`sage gdpr erase <customer id>` shreds it). Keys
   * default to `SAGE_ENCRYPTION_KEYS`, else an ephemeral key (see SampleEncryption).
   */
  encryption?: SampleEncryption;
  /**
   * The `order.confirmed` version written (apps/shared/contracts): 2 (default, the newest) or 1,
   * for a rollout whose consumers do not accept version 2 yet.
   */
  orderConfirmedVersion?: 1 | 2;
}

/** The order service: its business tables and Sage's share one DataSource, so one transaction covers both. */
@Module({})
export class OrderServiceModule {
  static register(config: OrderServiceConfig): DynamicModule {
    const topology = config.topology ?? sampleTopology();
    const OrderPlacementSaga = orderPlacementSaga({
      orderEvents: topology.orderEvents,
      orderConfirmedVersion: config.orderConfirmedVersion,
      payment: {
        destination: topology.paymentCommands,
        replyTimeoutMs: config.payment?.replyTimeoutMs ?? 30_000,
        maxAttempts: config.payment?.maxAttempts ?? 3,
        voidMaxAttempts: config.payment?.voidMaxAttempts ?? 10,
      },
    });
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
            saga: {
              ...config.saga,
              replyTo: topology.orderReplies,
              replyConsumer: topology.orderConsumer,
            },
            broker: config.broker,
            outbox: config.outbox,
            // Spans for sagas, steps, outbox writes, publishes and inbox handling (exported when an
            // OpenTelemetry SDK is registered: apps/shared/tracing.ts).
            tracing: openTelemetryTracing(),
            // What it writes to the outbox (order.confirmed, the saga's commands) is checked against
            // its contract (apps/shared/contracts) in the writing transaction, before encryption;
            // the replies it receives against the commands' `reply` schemas.
            contracts: orderServiceContracts,
            dataProtection: {
              keys: sampleEncryptionKeys('order-service', config.encryption?.keys),
              subjectKeyCacheMs: config.encryption?.subjectKeyCacheMs,
              // Data-subject keys: the `subject_key` table of this database, which payment-service
              // reads too (its `subjectKeysDatabaseUrl`).
              sagas: {
                'order-placement': {
                  subject: 'customer.id',
                  input: ['customer.name', 'customer.email', 'paymentMethod.token'],
                },
              },
              messages: {
                'order.confirmed': {
                  subject: 'customer.id',
                  fields: ['customer.name', 'customer.email'],
                },
                // The card token, under the customer's key: erasing the customer shreds the
                // copies already on the broker too (the command carries `customerId` for this).
                'payment.authorize': { subject: 'customerId', fields: ['paymentMethod.token'] },
              },
            },
          }),
        }),
        ...sampleObservability('order-service'),
      ],
      controllers: config.http === false ? [] : [OrdersController],
      providers: [
        {
          provide: 'MIGRATIONS',
          inject: [DataSource],
          useFactory: (ds: DataSource) => runMigrationsLocked(ds),
        },
        OrderPlacementSaga,
        // The class itself, for OrdersController to start the saga by class.
        { provide: ORDER_PLACEMENT_SAGA, useValue: OrderPlacementSaga },
        // Sage's typed errors as HTTP statuses: invalid input 400, unknown saga id 404, key reuse 409...
        { provide: APP_FILTER, useClass: SageHttpExceptionFilter },
        // Bodies checked against their DTOs: unknown fields, wrong types, bounds are 400.
        sampleValidationPipe,
        sampleApiKey(config.apiKey),
      ],
    };
  }
}
