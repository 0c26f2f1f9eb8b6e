import type { Provider } from '@nestjs/common';
import type { Broker } from '../../core/ports/broker';
import { NO_TRACING, type SageTracer } from '../../core/ports/tracer';
import { SAGE_TRACER } from '../sage-tracer.token';
import { OUTBOX_BROKER } from './outbox.options';

/**
 * The broker the relay and the optimistic sender publish through: OUTBOX_BROKER wrapped by the
 * tracer (publish spans, `traceparent` carried), or null when no broker is configured.
 */
export const OUTBOX_PUBLISHING_BROKER = Symbol('SAGE_OUTBOX_PUBLISHING_BROKER');

export const outboxPublishingBrokerProvider: Provider = {
  provide: OUTBOX_PUBLISHING_BROKER,
  inject: [
    { token: OUTBOX_BROKER, optional: true },
    { token: SAGE_TRACER, optional: true },
  ],
  useFactory: (broker?: Broker | null, tracer?: SageTracer): Broker | null =>
    broker ? (tracer ?? NO_TRACING).broker(broker) : null,
};
