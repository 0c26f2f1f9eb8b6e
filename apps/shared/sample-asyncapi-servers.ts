import type { AsyncApiService } from '@sage/saga-outbox';

/**
 * The brokers the sample services run on (one at a time, chosen by SAGE_BROKER_URL), as AsyncAPI
 * servers: each adds its protocol's bindings to the services' documents. The hosts are the ones the
 * README's "Two services" walkthrough uses.
 */
export const sampleAsyncApiServers: NonNullable<AsyncApiService['servers']> = {
  kafka: {
    host: 'localhost:9092',
    protocol: 'kafka',
    description: 'Kafka (SAGE_BROKER_URL=kafka://localhost:9092)',
  },
  nats: {
    host: 'localhost:4222',
    protocol: 'nats',
    description: 'NATS JetStream (SAGE_BROKER_URL=nats://localhost:4222)',
  },
  rabbitmq: {
    host: 'localhost:5672',
    protocol: 'amqp',
    description: "RabbitMQ, Sage's topic exchange `sage` (SAGE_BROKER_URL=amqp://localhost:5672)",
  },
};
