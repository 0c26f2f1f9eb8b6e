/**
 * `@sage/saga-outbox/nats`: the NATS JetStream broker adapter. Needs `@nats-io/transport-node` and
 * `@nats-io/jetstream`.
 *
 * @packageDocumentation
 */
export { NatsJetStreamBroker } from './brokers/nats/nats-broker';
export type { NatsJetStreamBrokerOptions } from './brokers/nats/nats-broker';
export type { NatsSecurityOptions, NatsTlsOptions } from './brokers/nats/nats-security-options';
