import type { Broker } from './broker';
import type { OutboxWriter } from './outbox-store';
import type { SagaEvent } from '../saga/saga-events';

/**
 * Where traces come from, as a port: the engine and the Nest layer call these four hooks and know
 * nothing of OpenTelemetry. `NO_TRACING` (the default) makes no spans and loads nothing; the
 * `@sage/saga-outbox/tracing` entry point's `openTelemetryTracing()` makes saga, step, outbox
 * write, publish and inbox spans with `@opentelemetry/api` and carries `traceparent` through the
 * broker.
 */
export interface SageTracer {
  /** Subscribed to the saga engine's events (saga, step and compensation spans). */
  onSagaEvent(event: SagaEvent): void;
  /** Wraps the outbox writer (the write span; stores its `traceparent` in the message headers). */
  outboxWriter<Tx>(writer: OutboxWriter<Tx>): OutboxWriter<Tx>;
  /** Wraps the broker the relay and the optimistic sender publish through (publish spans). */
  broker(broker: Broker): Broker;
  /** Runs an inbox handler in a consumer span continuing the producer's trace (`source`: a DeliveredMessage or a transport context). */
  inboxHandling<T>(
    consumer: string,
    messageId: string,
    source: unknown,
    handle: () => Promise<T>,
  ): Promise<T>;
}

/** No spans: every hook passes its argument through. */
export const NO_TRACING: SageTracer = {
  onSagaEvent: () => undefined,
  outboxWriter: (writer) => writer,
  broker: (broker) => broker,
  inboxHandling: (_consumer, _messageId, _source, handle) => handle(),
};
