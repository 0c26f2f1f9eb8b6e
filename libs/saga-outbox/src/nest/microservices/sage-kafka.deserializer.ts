import type { ConsumerDeserializer, IncomingEvent } from '@nestjs/microservices';
import { decodeJsonPayload, headerText } from './json-payload';

/** The record Nest's Kafka server hands its deserializer: a kafkajs message after Nest's KafkaParser. */
interface NestKafkaRecord {
  value?: unknown;
  headers?: Record<string, unknown>;
}

/**
 * Deserializer for `Transport.KAFKA` consuming topics written by Sage's outbox (KafkaBroker). Set
 * for you by `sageKafkaOptions` (the way to connect the transport):
 *
 * ```ts
 * app.connectMicroservice(sageKafkaOptions({ client: { brokers }, consumer: { groupId } }));
 * ```
 *
 * - pattern = the topic, i.e. the outbox `destination` (Nest subscribes each `@EventPattern` as a
 *   topic, so the pattern cannot be the message type here);
 * - data = the outbox `payload` exactly. Nest's own deserializer only JSON-parses values that
 *   start with `{` or `[`: a string, number, boolean or null payload would reach the handler as
 *   its JSON text (`'"abc"'`, `'42'`). With `parser: { keepBinary: true }` the bytes are decoded too;
 * - the record, with the CloudEvents headers (`ce-id` = outbox id, `ce-type`, `ce-subject` = key),
 *   stays in the `KafkaContext`, so `InboxService.handle(consumer, ctx, ...)` finds the message id.
 *
 * Records from other producers (no `ce-specversion` header) are handled as Nest's default does.
 * It never sets a packet `id`: every Sage message is an event, never a request awaiting a reply.
 */
export class SageKafkaDeserializer implements ConsumerDeserializer {
  deserialize(value: unknown, options?: Record<string, unknown>): IncomingEvent {
    const record = (value ?? {}) as NestKafkaRecord;
    const pattern = typeof options?.channel === 'string' ? options.channel : undefined;
    const sage = headerText(record.headers?.['ce-specversion']) !== undefined;
    const raw = record.value ?? null;
    const data: unknown = sage || raw instanceof Uint8Array ? decodeJsonPayload(raw) : raw; // Nest's default for non-Sage records
    return { pattern, data };
  }
}
