// Entry point: `@sage/saga-outbox/brokers/kafka` (loads its client library only when imported).
export { KafkaBroker } from './kafka-broker';
export type { KafkaBrokerOptions } from './kafka-broker';
