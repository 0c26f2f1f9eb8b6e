// Entry point: `@sage/saga-outbox/brokers/nats` (loads its client library only when imported).
export { NatsJetStreamBroker } from './nats-broker';
export type { NatsJetStreamBrokerOptions } from './nats-broker';
