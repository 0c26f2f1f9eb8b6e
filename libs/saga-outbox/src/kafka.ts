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
} from './brokers/kafka/kafka-broker';
