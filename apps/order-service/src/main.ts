import { serveSample } from '../../shared/serve-sample';
import { sampleTopology } from '../../shared/sample-topology';
import { OrderServiceModule } from './order-service.module';

// SAGE_BROKER_URL: kafka://…, amqp://…, nats://… or memory:// (see README "Two services").
void serveSample('order-service', 3000, (databaseUrl) =>
  OrderServiceModule.register({
    databaseUrl,
    broker: process.env.SAGE_BROKER_URL,
    topology: sampleTopology(process.env.SAGE_DESTINATION_PREFIX),
    payment: {
      replyTimeoutMs: optionalNumber('SAGE_PAYMENT_REPLY_TIMEOUT_MS'),
      maxAttempts: optionalNumber('SAGE_PAYMENT_MAX_ATTEMPTS'),
    },
    // Where authentication goes (apps/shared/api-key.guard.ts); unset: no check.
    apiKey: process.env.SAGE_SAMPLE_API_KEY || undefined,
  }),
);

function optionalNumber(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0)
    throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return n;
}
