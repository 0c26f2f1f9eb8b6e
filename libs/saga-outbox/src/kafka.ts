/**
 * `@sage/saga-outbox/kafka`: the Kafka broker adapter. Needs `kafkajs`.
 *
 * @packageDocumentation
 */
export { KafkaBroker } from './brokers/kafka/kafka-broker';
export type {
  KafkaBrokerOptions,
  KafkaBrokerLogLevel,
  KafkaConsumerOptions,
  KafkaSslOptions,
  KafkaSaslOptions,
  KafkaSaslMechanism,
  KafkaCompression,
  KafkaPublishOptions,
} from './brokers/kafka/kafka-broker';
