// Entry point: `@sage/saga-outbox/brokers/rabbitmq` (loads its client library only when imported).
export { RabbitMqBroker } from './rabbitmq-broker';
export type { RabbitMqBrokerOptions } from './rabbitmq-broker';
