import { serveSample } from '../../shared/serve-sample';
import { sampleTopology } from '../../shared/sample-topology';
import { ShippingServiceModule } from './shipping-service.module';
import { startShippingTransport } from './shipping-transport';

// SAGE_BROKER_URL: kafka://…, amqp://…, nats://… or memory:// (see README "Two services").
const topology = sampleTopology(process.env.SAGE_DESTINATION_PREFIX);
void serveSample(
  'shipping-service',
  3002,
  (databaseUrl) =>
    ShippingServiceModule.register({
      databaseUrl,
      broker: process.env.SAGE_BROKER_URL,
      topology,
      // Master keys: SAGE_ENCRYPTION_KEYS, the same as order-service's. Data-subject keys:
      // order-service's database, where it makes them (SAGE_SUBJECT_KEYS_DATABASE_URL).
      encryption: {
        subjectKeysDatabaseUrl: process.env.SAGE_SUBJECT_KEYS_DATABASE_URL || undefined,
      },
    }),
  // The `order.confirmed` @EventPattern handler, through SageBrokerTransport.
  (app) => startShippingTransport(app, topology),
);
