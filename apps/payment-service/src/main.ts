import { serveSample } from '../../shared/serve-sample';
import { sampleTopology } from '../../shared/sample-topology';
import { PaymentServiceModule } from './payment-service.module';

// SAGE_BROKER_URL: kafka://…, amqp://…, nats://… or memory:// (see README "Two services").
void serveSample('payment-service', 3001, (databaseUrl) =>
  PaymentServiceModule.register({
    databaseUrl,
    broker: process.env.SAGE_BROKER_URL,
    topology: sampleTopology(process.env.SAGE_DESTINATION_PREFIX),
    // Where authentication goes (apps/shared/api-key.guard.ts); unset: no check.
    apiKey: process.env.SAGE_SAMPLE_API_KEY || undefined,
    // Master keys: SAGE_ENCRYPTION_KEYS, the same as order-service's. Data-subject keys:
    // order-service's database, where it makes them (SAGE_SUBJECT_KEYS_DATABASE_URL).
    encryption: { subjectKeysDatabaseUrl: process.env.SAGE_SUBJECT_KEYS_DATABASE_URL || undefined },
  }),
);
