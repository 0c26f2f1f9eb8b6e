/**
 * One trace across the two sample services (issue 6): order-service's saga sends
 * `payment.authorize` through its outbox and the broker to payment-service, whose handler and reply
 * continue the trace, and the reply's handling back in order-service too. Spans are collected with
 * the OpenTelemetry SDK's in-memory exporter; the library itself only uses @opentelemetry/api.
 */
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { InMemoryBroker } from '@sage/saga-outbox';
import { waitUntil } from '@sage/saga-outbox/testing';
import { orderBody, SampleApps } from './sample-apps';

describe('tracing across order-service and payment-service', () => {
  const exporter = new InMemorySpanExporter();
  const apps = new SampleApps({
    label: 'tracing',
    broker: new InMemoryBroker(),
    payment: { replyTimeoutMs: 10_000, maxAttempts: 2 },
  });

  beforeAll(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
    await apps.start();
    await apps.orderData.query(`INSERT INTO orders.stock (sku, available) VALUES ('widget', 5)`);
  }, 60_000);

  afterAll(async () => {
    await apps.stop();
    trace.disable();
    context.disable();
  }, 30_000);

  it('links the saga, the command through the broker, the participant, its reply and the resumed saga in one trace', async () => {
    const res = await apps.placeOrder(orderBody({ amountCents: 900 }), 'trace-1');
    expect(res.status).toBe(202);
    const { orderId } = (await res.json()) as { orderId: string };
    expect((await apps.settled(orderId)).saga.status).toBe('completed');

    const {
      paymentCommands: commands,
      orderReplies: replies,
      paymentConsumer,
      orderConsumer,
    } = apps.topology;
    const spans = (): ReadableSpan[] => exporter.getFinishedSpans();
    const named = (name: string): ReadableSpan[] => spans().filter((s) => s.name === name);
    await waitUntil(
      () => named('saga order-placement').length === 1,
      'the saga span to end',
      10_000,
    );
    const saga = named('saga order-placement')[0]!;
    const traceId = saga.spanContext().traceId;
    const inTrace = (name: string): ReadableSpan[] =>
      named(name).filter((s) => s.spanContext().traceId === traceId);
    const byId = new Map(spans().map((s) => [s.spanContext().spanId, s]));
    /** Names of the ancestors of `span`, nearest first, as far as they were recorded. */
    const ancestors = (span: ReadableSpan): string[] => {
      const names: string[] = [];
      for (let s = span; s.parentSpanContext?.spanId;) {
        const parent = byId.get(s.parentSpanContext.spanId);
        if (!parent) break;
        names.push(parent.name);
        s = parent;
      }
      return names;
    };

    // order-service publishes the command in the saga's trace...
    const [sendCommand] = inTrace(`${commands} publish`);
    expect(sendCommand).toBeDefined();
    // ...payment-service handles it as a child of that publish (the traceparent crossed the broker)...
    const [handle] = inTrace(`${paymentConsumer} process`);
    expect(handle).toBeDefined();
    expect(handle!.parentSpanContext?.spanId).toBe(sendCommand!.spanContext().spanId);
    // ...its reply is published from within the handling, and order-service's reply consumer
    // handles it as a child of that publish.
    const [sendReply] = inTrace(`${replies} publish`);
    expect(sendReply).toBeDefined();
    expect(ancestors(sendReply!)).toContain(`${paymentConsumer} process`);
    const [applyReply] = inTrace(`${orderConsumer} process`);
    expect(applyReply).toBeDefined();
    expect(applyReply!.parentSpanContext?.spanId).toBe(sendReply!.spanContext().spanId);
    // The chain from the reply back to the saga: every hop recorded, none guessed.
    expect(ancestors(applyReply!)).toEqual(
      expect.arrayContaining([
        `${replies} publish`,
        `${paymentConsumer} process`,
        `${commands} publish`,
      ]),
    );
  });
});
