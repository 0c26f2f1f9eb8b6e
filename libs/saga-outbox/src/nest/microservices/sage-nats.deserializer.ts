import type { ConsumerDeserializer, IncomingEvent } from '@nestjs/microservices';
import { decodeJsonPayload } from './json-payload';

/**
 * Deserializer for `Transport.NATS` subscribed to subjects Sage's outbox (NatsJetStreamBroker)
 * publishes to (`${subjectPrefix}${destination}`, e.g. `sage.orders`). Set for you by
 * `sageNatsOptions` (the way to connect the transport).
 *
 * Nest's default NATS deserializer takes any JSON body with a `pattern` or `data` field for a Nest
 * packet, so a Sage payload such as `{ data: ... }` would lose everything but `data` (and reach no
 * handler); it also throws on a body that is not JSON. This one always treats the body as the Sage
 * payload: pattern = the subject, data = the outbox `payload` exactly. The headers (`Nats-Msg-Id` =
 * outbox id, `ce-*`) stay in the `NatsContext` for `InboxService.handle`. Use it only on subjects
 * Sage (or another non-Nest producer) writes: Nest `ClientProxy.emit()` packets would arrive whole.
 *
 * Never sets a packet `id`: Sage messages are events, so Nest never tries to reply.
 *
 * Delivery caveat: Nest's NATS transport is core NATS. A JetStream subject is delivered to core
 * subscribers too, but at most once: no ack, no redelivery after a handler failure, nothing for a
 * subscriber that was disconnected when it was published (the stream still holds it). See docs/inbox.md.
 */
export class SageNatsDeserializer implements ConsumerDeserializer {
  deserialize(value: unknown, options?: Record<string, unknown>): IncomingEvent {
    const pattern = typeof options?.channel === 'string' ? options.channel : undefined;
    return { pattern: pattern as string, data: decodeJsonPayload(value ?? null) };
  }
}
