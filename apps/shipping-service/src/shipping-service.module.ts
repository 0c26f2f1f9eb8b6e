import { Module, type DynamicModule } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  runMigrationsLocked,
  SagaOutboxModule,
  sagaOutboxMigrations,
  type Broker,
  type OutboxModuleOptions,
  type SagaEngineTuning,
} from '@sage/saga-outbox';
import { openTelemetryTracing } from '@sage/saga-outbox/tracing';
import { DataSource } from 'typeorm';
import { shippingServiceContracts } from '../../shared/contracts';
import { sampleObservability } from '../../shared/observability';
import { sampleDecryption, type SampleDecryption } from '../../shared/sample-data-protection';
import { sampleTopology, type SampleTopology } from '../../shared/sample-topology';
import { ShippingTables1765400000000 } from './migrations/1765400000000-shipping-tables';
import { orderConfirmedController } from './shipments/order-confirmed.controller';
import { shipmentSaga } from './shipments/shipment.saga';

export interface ShippingServiceConfig {
  /** postgres:// URL of the service's database (may be another service's: the schemas differ). */
  databaseUrl: string;
  saga?: SagaEngineTuning;
  /**
   * The broker `order.confirmed` is consumed from (by the `@EventPattern` handler, through
   * SageBrokerTransport: startShippingTransport) and the in-process relay publishes this service's
   * outbox (`shipment.booked`) to: a URL (`kafka://`, `amqp://`, `nats://`, `memory://`) or a
   * Broker instance (not closed by the app). None → no consumer and no relay in this process.
   */
  broker?: Broker | string;
  /** Destination and consumer names shared with the other services. Default `sampleTopology()`. */
  topology?: SampleTopology;
  /** Outbox relay / retention tuning. */
  outbox?: OutboxModuleOptions;
  /**
   * Decryption of the customer's name and e-mail in `order.confirmed`: the same master keys as
   * order-service (default `SAGE_ENCRYPTION_KEYS`) and its data-subject keys
   * (`subjectKeysDatabaseUrl`), as payment-service.
   */
  encryption?: SampleDecryption;
}

/** Schema of shipping-service's Sage tables (its outbox, inbox and sagas); business tables are in `shipping`. */
export const SHIPPING_SAGE_SCHEMA = 'shipping_sage';

/**
 * The shipping service: consumes `order.confirmed` with a Nest microservice `@EventPattern`
 * handler (connect it with startShippingTransport after creating the app) and runs the shipment
 * saga for each confirmed order. Its business tables and Sage's share one DataSource.
 */
@Module({})
export class ShippingServiceModule {
  static register(config: ShippingServiceConfig): DynamicModule {
    const topology = config.topology ?? sampleTopology();
    const decryption = sampleDecryption('shipping-service', config.encryption);
    return {
      module: ShippingServiceModule,
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: config.databaseUrl,
          synchronize: false,
          migrations: [
            ...sagaOutboxMigrations({ schema: SHIPPING_SAGE_SCHEMA }),
            ShippingTables1765400000000,
          ],
          // Its own migrations table: the service may share a database with the others.
          migrationsTableName: 'shipping_service_migrations',
          // Run below, serialised across instances (TypeORM's own migrationsRun races on a fresh DB).
          migrationsRun: false,
          migrationsTransactionMode: 'each',
          // Pinned: with search_path "$user", public and a role named like a schema, TypeORM would
          // otherwise look for its migrations table in that schema.
          schema: 'public',
          // More connections than `order.confirmed` deliveries handled at once (RabbitMQ prefetch
          // 32, NATS concurrency 16 by default), with room for the relay and the saga loops: each
          // handler holds its inbox transaction's connection while the shipment saga it starts
          // takes a second one. With fewer (pg's default is 10), under load every connection was
          // held by an inbox transaction waiting for another: shipments stopped, and the open
          // transactions held back the server's xmin, stalling every outbox relay on it
          // (found by `npm run load:http`, benchmarks/http-load).
          extra: { max: 48 },
        }),
        ...decryption.imports,
        SagaOutboxModule.forRootAsync({
          inject: [DataSource, ...decryption.inject],
          useFactory: (dataSource: DataSource, keysDataSource?: DataSource) => ({
            dataSource,
            schema: SHIPPING_SAGE_SCHEMA,
            saga: config.saga,
            broker: config.broker,
            outbox: config.outbox,
            // Spans for the shipment saga, its outbox writes, publishes and the inbox handling of
            // `order.confirmed`, continuing order-service's trace (apps/shared/tracing.ts).
            tracing: openTelemetryTracing(),
            // `order.confirmed` is checked (and version 1 upcast) by SageBrokerTransport before the
            // handler; `shipment.booked` is checked as the saga writes it.
            contracts: shippingServiceContracts,
            // Keys only: the transport decrypts `order.confirmed` with them; nothing here is
            // encrypted on write (the shipment saga keeps ids only).
            dataProtection: decryption.options(keysDataSource),
          }),
        }),
        ...sampleObservability('shipping-service'),
      ],
      controllers: [
        orderConfirmedController({
          destination: topology.orderEvents,
          consumer: topology.shippingConsumer,
        }),
      ],
      providers: [
        {
          provide: 'MIGRATIONS',
          inject: [DataSource],
          useFactory: (ds: DataSource) => runMigrationsLocked(ds),
        },
        shipmentSaga({ shippingEvents: topology.shippingEvents }),
      ],
    };
  }
}
