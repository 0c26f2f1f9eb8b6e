import {
  Transport,
  type KafkaOptions,
  type NatsOptions,
  type RmqOptions,
} from '@nestjs/microservices';
import { InvalidOptionsError } from '../../core/errors';
import { SageKafkaDeserializer } from './sage-kafka.deserializer';
import { SageNatsDeserializer } from './sage-nats.deserializer';
import { SageRmqDeserializer, type SageRmqDeserializerOptions } from './sage-rmq.deserializer';

/**
 * A Nest transport's own options without `deserializer` (Sage sets it). Key remapping keeps both
 * the named options and an index signature (Nest's NATS options have one); `deserializer?: never`
 * makes passing one a compile error as well as a runtime one.
 */
type WithSageDeserializer<T> = {
  [K in keyof NonNullable<T> as K extends 'deserializer' ? never : K]: NonNullable<T>[K];
} & {
  /** Set by Sage (its deserializer for this transport); passing one throws InvalidOptionsError. */
  deserializer?: never;
};

/**
 * What the helpers return: Nest's options for one transport, complete (`transport` and `options`
 * both set), so assignable to `MicroserviceOptions`.
 */
export type SageTransportOptions<T extends Transport, O extends { options?: object }> = {
  transport: T;
  options: NonNullable<O['options']>;
};

/**
 * The options of Nest's `Transport.RMQ` (`urls`, `queue`, `noAck`, `prefetchCount`, `noAssert`...)
 * except `deserializer`, plus SageRmqDeserializer's `pattern`.
 */
export type SageRmqOptions = WithSageDeserializer<RmqOptions['options']> &
  SageRmqDeserializerOptions;

/** The options of Nest's `Transport.KAFKA` (`client`, `consumer`, `run`, `subscribe`, `parser`...) except `deserializer`. */
export type SageKafkaOptions = WithSageDeserializer<KafkaOptions['options']>;

/** The options of Nest's `Transport.NATS` (`servers`, `queue`, `name`, auth...) except `deserializer`. */
export type SageNatsOptions = WithSageDeserializer<NatsOptions['options']>;

/**
 * Complete `MicroserviceOptions` for Nest's RabbitMQ transport consuming a queue Sage's outbox routes
 * to, with SageRmqDeserializer set. Without it no Sage message reaches a handler: Nest only warns
 * "An unsupported event was received. It has been negative acknowledged, so it will not be
 * re-delivered. Pattern: undefined" for each one.
 *
 * ```ts
 * app.connectMicroservice(sageRmqOptions({ urls: [url], queue, noAssert: true, noAck: false }));
 * ```
 *
 * Every other option passes through to Nest as given (Nest's defaults apply: `noAck` is true
 * unless you set it; set `noAck: false` and wrap handlers in `ackRmqAfter` to ack after the inbox
 * commits). `pattern` chooses what `@EventPattern` matches (default: the message type).
 * A `deserializer` throws InvalidOptionsError.
 */
export function sageRmqOptions(
  options: SageRmqOptions = {},
): SageTransportOptions<Transport.RMQ, RmqOptions> {
  refuseDeserializer(
    'sageRmqOptions',
    options,
    'SageRmqDeserializer',
    'pass `pattern` to choose what @EventPattern matches',
  );
  const { pattern, ...rmq } = options;
  return {
    transport: Transport.RMQ,
    options: { ...rmq, deserializer: new SageRmqDeserializer(pattern ? { pattern } : {}) },
  };
}

/**
 * Complete `MicroserviceOptions` for Nest's Kafka transport consuming topics Sage's outbox writes,
 * with SageKafkaDeserializer set (`@EventPattern(topic)`, the payload exactly as published):
 *
 * ```ts
 * app.connectMicroservice(sageKafkaOptions({ client: { brokers }, consumer: { groupId: 'payments' } }));
 * ```
 *
 * Every other option passes through to Nest as given. A `deserializer` throws InvalidOptionsError.
 */
export function sageKafkaOptions(
  options: SageKafkaOptions = {},
): SageTransportOptions<Transport.KAFKA, KafkaOptions> {
  refuseDeserializer(
    'sageKafkaOptions',
    options,
    'SageKafkaDeserializer',
    "records from other producers are handled as Nest's default deserializer does",
  );
  return {
    transport: Transport.KAFKA,
    options: { ...options, deserializer: new SageKafkaDeserializer() },
  };
}

/**
 * Complete `MicroserviceOptions` for Nest's NATS transport subscribed to subjects Sage's outbox
 * publishes to, with SageNatsDeserializer set (`@EventPattern(subject)`, the payload exactly as
 * published). Core NATS: no ack, no redelivery (docs/inbox.md).
 *
 * ```ts
 * app.connectMicroservice(sageNatsOptions({ servers: [url], queue: 'payments' }));
 * ```
 *
 * Every other option passes through to Nest as given. A `deserializer` throws InvalidOptionsError.
 */
export function sageNatsOptions(
  options: SageNatsOptions = {},
): SageTransportOptions<Transport.NATS, NatsOptions> {
  refuseDeserializer(
    'sageNatsOptions',
    options,
    'SageNatsDeserializer',
    'subjects that carry Nest packets (ClientProxy.emit) need a transport of their own, `{ transport: Transport.NATS, options }`',
  );
  return {
    transport: Transport.NATS,
    options: { ...options, deserializer: new SageNatsDeserializer() },
  };
}

/** The deserializer is what makes Sage's messages reach the handlers: never replaced silently. */
function refuseDeserializer(
  helper: string,
  options: object,
  deserializer: string,
  instead: string,
): void {
  if ((options as { deserializer?: unknown }).deserializer === undefined) return;
  throw new InvalidOptionsError(
    `${helper}({ deserializer })`,
    `Sage sets the deserializer (${deserializer}) so that its messages reach your @EventPattern handlers; remove it (${instead}).`,
  );
}
