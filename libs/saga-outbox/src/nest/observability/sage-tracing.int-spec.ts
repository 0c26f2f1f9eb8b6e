import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { context, SpanKind, trace, type SpanContext } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import {
  IdempotentHandler,
  InMemoryBroker,
  OutboxRepository,
  Saga,
  SagaOutboxModule,
  SagaService,
  SagaStep,
  SageDatabase,
  type DeliveredMessage,
  type InboxContext,
  type SagaStepContext,
} from '../../index';
import { waitUntil } from '../../testing/async';
import { openTelemetryTracing } from '../../tracing';

jest.setTimeout(60_000);

const ORDERS = `traced-orders-${randomUUID().slice(0, 8)}`;
const RECEIPTS = `traced-receipts-${randomUUID().slice(0, 8)}`;
const handled: { messageId: string; active: SpanContext | undefined; traceparent?: string }[] = [];

@Saga('traced-order')
class TracedOrderSaga {
  @SagaStep('place', { compensatable: false })
  async place(ctx: SagaStepContext<{ orderId: string }>) {
    await ctx.emit({
      destination: ORDERS,
      type: 'order.placed',
      key: ctx.input.orderId,
      payload: { orderId: ctx.input.orderId },
    });
    return { placed: true };
  }
}

@Injectable()
class ReceiptsConsumer {
  constructor(private readonly outbox: OutboxRepository) {}

  @IdempotentHandler(ORDERS, { consumer: 'receipts.on-order' })
  async onOrder(message: DeliveredMessage, { manager, messageId }: InboxContext) {
    handled.push({
      messageId,
      active: trace.getActiveSpan()?.spanContext(),
      traceparent: message.headers.traceparent,
    });
    // A message written while handling continues the same trace.
    await this.outbox.publish(
      { destination: RECEIPTS, type: 'receipt.issued', payload: { for: messageId } },
      { manager },
    );
  }
}

describe('tracing: one trace from the saga step through the outbox and the broker into the inbox', () => {
  const exporter = new InMemorySpanExporter();
  let db: TestDatabase;
  let app: INestApplicationContext;

  beforeAll(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
    db = await createTestDatabase();
    @Module({
      imports: [
        SagaOutboxModule.forRoot({
          postgres: { ...db.connection, poolSize: 4 },
          broker: new InMemoryBroker(),
          outbox: { relay: { pollIntervalMs: 20 }, retention: { enabled: false } },
          tracing: openTelemetryTracing(),
        }),
      ],
      providers: [TracedOrderSaga, ReceiptsConsumer],
    })
    class AppModule {}
    app = await NestFactory.createApplicationContext(AppModule, {
      logger: false,
      abortOnError: false,
    });
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
    trace.disable();
    context.disable();
  });

  it('links request → saga → step → outbox write → relay publish → inbox → next write as parent/child spans', async () => {
    const tracer = trace.getTracer('test');
    const { sagaId, requestSpan } = await tracer.startActiveSpan('POST /orders', async (span) => {
      try {
        const started = await app.get(SagaService).start('traced-order', { orderId: 'o-1' });
        return { sagaId: started.sagaId, requestSpan: span.spanContext() };
      } finally {
        span.end();
      }
    });
    expect((await app.get(SagaService).waitFor(sagaId)).status).toBe('completed');
    await waitUntil(() => handled.length === 1, 'the consumer to handle the order', 10_000);
    await waitUntil(
      () => exporter.getFinishedSpans().some((s) => s.name === `${RECEIPTS} publish`),
      'the receipt to be published',
      10_000,
    );

    const spans = exporter.getFinishedSpans();
    const one = (name: string): ReadableSpan => {
      const found = spans.filter((s) => s.name === name);
      expect(found.map((s) => s.name)).toEqual([name]);
      return found[0]!;
    };
    const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

    const saga = one('saga traced-order');
    const step = one('saga step place');
    const writes = spans.filter((s) => s.name === 'sage.outbox.write');
    const publishOrder = one(`${ORDERS} publish`);
    const consume = one('receipts.on-order process');
    const publishReceipt = one(`${RECEIPTS} publish`);

    // Every span of the flow is in the request's trace.
    for (const s of [saga, step, ...writes, publishOrder, consume, publishReceipt])
      expect(s.spanContext().traceId).toBe(requestSpan.traceId);

    expect(parentOf(saga)).toBe(requestSpan.spanId);
    expect(parentOf(step)).toBe(saga.spanContext().spanId);
    const orderWrite = writes.find((w) => parentOf(w) === step.spanContext().spanId);
    expect(orderWrite?.kind).toBe(SpanKind.PRODUCER);
    expect(parentOf(publishOrder)).toBe(orderWrite!.spanContext().spanId);
    expect(publishOrder.kind).toBe(SpanKind.PRODUCER);
    expect(parentOf(consume)).toBe(publishOrder.spanContext().spanId);
    expect(consume.kind).toBe(SpanKind.CONSUMER);
    // The handler ran inside the consumer span; its own write and the next publish follow on.
    expect(handled[0]!.active?.spanId).toBe(consume.spanContext().spanId);
    expect(handled[0]!.traceparent).toContain(publishOrder.spanContext().spanId);
    const receiptWrite = writes.find((w) => parentOf(w) === consume.spanContext().spanId);
    expect(receiptWrite).toBeDefined();
    expect(parentOf(publishReceipt)).toBe(receiptWrite!.spanContext().spanId);

    // The write span's traceparent is stored with the outbox row.
    const [row] = (await app
      .get(SageDatabase)
      .dataSource.query(`SELECT headers FROM sage.outbox_message WHERE destination = $1`, [
        ORDERS,
      ])) as { headers: Record<string, string> }[];
    expect(row?.headers.traceparent).toBe(
      `00-${requestSpan.traceId}-${orderWrite!.spanContext().spanId}-01`,
    );
  });
});
