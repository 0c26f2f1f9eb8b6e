import type { ConsumerDeserializer, IncomingEvent } from '@nestjs/microservices';
import { headerText } from './json-payload';

/** The AMQP properties Nest's RMQ server hands its deserializer (amqplib `MessageProperties`). */
interface AmqpProperties {
  type?: unknown;
  headers?: Record<string, unknown>;
}

export interface SageRmqDeserializerOptions {
  /**
   * The `@EventPattern` a Sage message is dispatched to. Default: the message type (AMQP `type`
   * property, else header `ce-type`), e.g. `@EventPattern('order.placed')`.
   */
  pattern?: (properties: { type: string | undefined; headers: Record<string, unknown> }) => string;
}

/**
 * Deserializer for `Transport.RMQ` consuming a queue that Sage's outbox (RabbitMqBroker) routes to.
 * Set for you by `sageRmqOptions` (the way to connect the transport).
 * Nest's RMQ transport expects every body to be a Nest packet `{ pattern, data }`; Sage sends the
 * bare payload (CloudEvents binary mode: attributes in AMQP properties and `ce-*` headers), so
 * without this every message would reach no handler. With it:
 *
 * - pattern = the message type (or `options.pattern`);
 * - data = the outbox `payload` exactly (Nest has already JSON-parsed the body);
 * - the AMQP message stays in the `RmqContext`: `message-id` = the outbox id, for `InboxService.handle`.
 *
 * A message without a type (not from Sage) is handled as Nest's default does: a body with
 * `pattern`/`data` is a Nest packet; anything else has no pattern, and Nest rejects it (with
 * `noAck: false`, to the queue's dead-letter exchange). Never sets a packet `id`: Sage messages are
 * events, never requests awaiting a reply.
 */
export class SageRmqDeserializer implements ConsumerDeserializer {
  constructor(private readonly options: SageRmqDeserializerOptions = {}) {}

  deserialize(value: unknown, options?: Record<string, unknown>): IncomingEvent {
    const properties = (options ?? {}) as AmqpProperties;
    const headers = properties.headers ?? {};
    const type =
      (typeof properties.type === 'string' && properties.type !== ''
        ? properties.type
        : undefined) ?? headerText(headers['ce-type']);
    const sage = type !== undefined || headerText(headers['ce-specversion']) !== undefined;
    if (!sage) {
      const packet = value as { pattern?: unknown; data?: unknown } | null;
      if (packet && typeof packet === 'object' && ('pattern' in packet || 'data' in packet))
        return { pattern: packet.pattern as string, data: packet.data };
      return { pattern: undefined, data: value };
    }
    const pattern = this.options.pattern
      ? this.options.pattern({ type, headers })
      : (type as string);
    return { pattern, data: value };
  }
}
