import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import type { DeliveredMessage } from '../../core/ports/broker';
import { SageBrokerContext } from '../microservices/sage-broker.transport';
import { withInboxSpan } from './sage-tracing';

// The consumer span of an inbox handler continues the producer's trace from the message headers,
// whichever source `InboxService.handle` was given.
describe('withInboxSpan: the producer trace from each source', () => {
  const exporter = new InMemorySpanExporter();
  const traceId = '0af7651916cd43dd8448eb211c80319c';
  const producerSpan = 'b7ad6b7169203331';
  const message: DeliveredMessage = {
    id: 'm-1',
    destination: 'orders',
    key: 'o-1',
    type: 'order.confirmed',
    payload: { orderId: 'o-1' },
    headers: { traceparent: `00-${traceId}-${producerSpan}-01` },
    time: new Date(),
    deliveryAttempt: 1,
  };

  beforeAll(() => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
  });
  afterAll(() => {
    trace.disable();
    context.disable();
  });
  beforeEach(() => exporter.reset());

  it.each([
    ['a DeliveredMessage', message],
    [
      'a SageBrokerContext (@EventPattern on SageBrokerTransport)',
      new SageBrokerContext([message]),
    ],
  ])('%s: the handler runs in a child of the producer span', async (_, source) => {
    const active = await withInboxSpan('shipping', message.id, source, () =>
      Promise.resolve(trace.getActiveSpan()?.spanContext()),
    );
    const [span] = exporter.getFinishedSpans();
    expect(span?.name).toBe('shipping process');
    expect(span?.spanContext().traceId).toBe(traceId);
    expect(span?.parentSpanContext?.spanId).toBe(producerSpan);
    expect(active?.spanId).toBe(span?.spanContext().spanId);
  });
});
