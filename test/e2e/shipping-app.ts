/**
 * shipping-service booted next to SampleApps (order-service and payment-service), as main.ts boots
 * it: its own test database, the same broker, topology and master keys, the data-subject keys read
 * from order-service's database, and its `@EventPattern` transport started before HTTP listens.
 */
import type { INestApplication } from '@nestjs/common';
import { SagaService, type Broker, type SagaRecord } from '@sage/saga-outbox';
import { DataSource } from 'typeorm';
import { SHIPMENT_SAGA } from '../../apps/shipping-service/src/shipments/shipment.saga';
import {
  carrierSlotsLeft,
  findShipment,
  type ShipmentRow,
} from '../../apps/shipping-service/src/shipments/shipment.sql';
import { ShippingServiceModule } from '../../apps/shipping-service/src/shipping-service.module';
import { startShippingTransport } from '../../apps/shipping-service/src/shipping-transport';
import { createSampleApp } from '../../apps/shared/sample-http';
import { createTestDatabase, type TestDatabase } from '../support/pg';
import { databaseUrl, type SampleApps } from './sample-apps';

export class ShippingApp {
  db!: TestDatabase;
  app!: INestApplication;

  constructor(
    private readonly apps: SampleApps,
    private readonly broker: Broker | string,
  ) {}

  /** Starts after `apps.start()` (it reads order-service's database for the data-subject keys). */
  async start(): Promise<void> {
    this.db = await createTestDatabase({ migrated: false });
    const app = await createSampleApp(
      ShippingServiceModule.register({
        databaseUrl: databaseUrl(this.db),
        broker: this.broker,
        topology: this.apps.topology,
        outbox: { relay: { pollIntervalMs: 50 } },
        saga: { recoveryIntervalMs: 100 },
        encryption: {
          keys: this.apps.encryptionKeys,
          subjectKeysDatabaseUrl: databaseUrl(this.apps.orderDb),
        },
      }),
      { logger: process.env.SAGE_TEST_NEST_LOGS ? ['error', 'warn'] : false },
    );
    try {
      await startShippingTransport(app, this.apps.topology);
      await app.init();
    } catch (error) {
      await app.close().catch(() => undefined);
      throw error;
    }
    this.app = app;
  }

  async stop(): Promise<void> {
    await this.app?.close();
    await this.db?.drop();
  }

  get data(): DataSource {
    return this.app.get(DataSource);
  }

  /** The order's shipment saga, once it is completed, compensated or failed. */
  async settledShipment(orderId: string, timeoutMs = 20_000): Promise<SagaRecord> {
    const sagas = this.app.get(SagaService);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const saga = await sagas.findByKey(SHIPMENT_SAGA, orderId);
      if (saga && ['completed', 'compensated', 'failed'].includes(saga.status)) return saga;
      if (Date.now() > deadline)
        throw new Error(
          `shipment of ${orderId} not settled in ${timeoutMs} ms: ${JSON.stringify(saga)}`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  shipment(orderId: string): Promise<ShipmentRow | undefined> {
    return findShipment(this.data.manager, orderId);
  }

  carrierSlots(carrier: string): Promise<number | undefined> {
    return carrierSlotsLeft(this.data.manager, carrier);
  }

  /** Shipment sagas started for the order (however often its event arrived). */
  async shipmentSagas(orderId: string): Promise<number> {
    const [row] = (await this.data.query(
      `SELECT count(*)::int AS n FROM shipping_sage.saga_instance WHERE name = $1 AND idempotency_key = $2`,
      [SHIPMENT_SAGA, orderId],
    )) as { n: number }[];
    return row?.n ?? 0;
  }
}
