/**
 * `@sage/saga-outbox/microservices`: consuming what Sage publishes with `@nestjs/microservices`
 * (`@EventPattern` handlers): `sageKafkaOptions` / `sageRmqOptions` / `sageNatsOptions`, complete
 * options for Nest's own transports with Sage's deserializer set (the way to connect them), the
 * deserializers themselves, and SageBrokerTransport on Sage's adapters. Needs
 * `@nestjs/microservices` (plus the client library of the Nest transport you use).
 *
 * @packageDocumentation
 */
export { SageKafkaDeserializer } from './nest/microservices/sage-kafka.deserializer';
export { SageRmqDeserializer } from './nest/microservices/sage-rmq.deserializer';
export type { SageRmqDeserializerOptions } from './nest/microservices/sage-rmq.deserializer';
export { SageNatsDeserializer } from './nest/microservices/sage-nats.deserializer';
export { ackRmqAfter } from './nest/microservices/rmq-ack';
export type { RmqAckContext } from './nest/microservices/rmq-ack';
export { SageBrokerTransport, SageBrokerContext } from './nest/microservices/sage-broker.transport';
export type { SageBrokerTransportOptions } from './nest/microservices/sage-broker.transport';
export {
  sageKafkaOptions,
  sageNatsOptions,
  sageRmqOptions,
} from './nest/microservices/sage-transport-options';
export type {
  SageKafkaOptions,
  SageNatsOptions,
  SageRmqOptions,
  SageTransportOptions,
} from './nest/microservices/sage-transport-options';
