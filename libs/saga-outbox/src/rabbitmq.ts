/**
 * `@sage/saga-outbox/rabbitmq`: the RabbitMQ broker adapter. Needs `amqplib` and `amqp-connection-manager`.
 *
 * @packageDocumentation
 */
export { RabbitMqBroker, RabbitMqTopologyError } from './brokers/rabbitmq/rabbitmq-broker';
export type {
  RabbitMqBrokerOptions,
  RabbitMqTlsOptions,
  PemInput,
} from './brokers/rabbitmq/rabbitmq-broker';
