/**
 * The full sample stack, A → B → C: order-service's saga asks payment-service to authorize the
 * payment and publishes `order.confirmed`; shipping-service consumes it with a Nest microservice
 * `@EventPattern` handler (SageBrokerTransport, decrypted and contract-checked, deduplicated by
 * its inbox) and runs the shipment saga, which compensates when the carrier refuses the pickup.
 * One trace spans the three services. Spans are collected with the SDK's in-memory exporter.
 */
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { InboxService, InMemoryBroker, type InboxEvent } from '@sage/saga-outbox';
import { waitUntil } from '@sage/saga-outbox/testing';
import { SAMPLE_CARRIER } from '../../apps/shipping-service/src/shipments/sample-carrier';
import { orderBody, SampleApps } from './sample-apps';
import { ShippingApp } from './shipping-app';

describe('order-service → payment-service → shipping-service', () => {
  const exporter = new InMemorySpanExporter();
  const broker = new InMemoryBroker();
  const apps = new SampleApps({
    label: 'three',
    broker,
    payment: { replyTimeoutMs: 10_000, maxAttempts: 2 },
  });
  const shipping = new ShippingApp(apps, broker);
  const inboxEvents: InboxEvent[] = [];

  beforeAll(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
    await apps.start();
    await shipping.start();
    shipping.app.get(InboxService).onEvent((e) => inboxEvents.push(e));
    await apps.orderData.query(`INSERT INTO orders.stock (sku, available) VALUES ('widget', 10)`);
  }, 60_000);

  afterAll(async () => {
    await shipping.stop();
    await apps.stop();
    trace.disable();
    context.disable();
  }, 30_000);

  async function confirmedOrder(key: string, customerId: string): Promise<string> {
    const res = await apps.placeOrder(
      orderBody({ customer: { id: customerId, name: 'Alice', email: 'alice@example.com' } }),
      key,
    );
    expect(res.status).toBe(202);
    const { orderId } = (await res.json()) as { orderId: string };
    expect((await apps.settled(orderId)).saga.status).toBe('completed');
    return orderId;
  }

  const orderConfirmed = (orderId: string) =>
    broker.published.filter(
      (m) =>
        m.type === 'order.confirmed' &&
        m.key === orderId &&
        m.destination === apps.topology.orderEvents,
    );

  it('ships a confirmed order once, even when order.confirmed is delivered twice, in one trace across the three', async () => {
    const slotsBefore = await shipping.carrierSlots(SAMPLE_CARRIER);
    const orderId = await confirmedOrder('three-ok', 'cus-alice');

    const shipment = await shipping.settledShipment(orderId);
    expect(shipment.status).toBe('completed');
    expect(shipment.steps.map((s) => [s.name, s.status])).toEqual([
      ['create-shipment', 'completed'],
      ['reserve-carrier', 'completed'],
      ['book-pickup', 'completed'],
    ]);
    const row = await shipping.shipment(orderId);
    expect(row).toMatchObject({
      status: 'booked',
      carrier: SAMPLE_CARRIER,
      customer_id: 'cus-alice',
    });
    expect(row?.pickup_id).toMatch(/^pickup-/);
    // shipment.booked went out through shipping-service's outbox.
    await broker.waitFor(
      (published) =>
        published.some(
          (m) =>
            m.type === 'shipment.booked' &&
            m.key === orderId &&
            m.destination === apps.topology.shippingEvents,
        ),
      10_000,
    );

    // The same order.confirmed again, same id (a relay republish, a broker redelivery).
    const [event] = orderConfirmed(orderId);
    expect(event).toBeDefined();
    await broker.publish([event!]);
    await waitUntil(
      () =>
        inboxEvents.some(
          (e) =>
            e.type === 'inbox.duplicate' &&
            e.messageId === event!.id &&
            e.consumer === apps.topology.shippingConsumer,
        ),
      'the second delivery to be skipped by the inbox',
      10_000,
    );
    expect(
      inboxEvents.filter((e) => e.type === 'inbox.processed' && e.messageId === event!.id),
    ).toHaveLength(1);
    expect(await shipping.shipmentSagas(orderId)).toBe(1);
    expect(await shipping.carrierSlots(SAMPLE_CARRIER)).toBe(slotsBefore! - 1);
    expect(
      broker.published.filter((m) => m.type === 'shipment.booked' && m.key === orderId),
    ).toHaveLength(1);

    // One trace: order-service's saga, payment-service's handling of its command, shipping-service's
    // handling of order.confirmed and the shipment saga it started.
    const spans = (): ReadableSpan[] => exporter.getFinishedSpans();
    const sagaSpan = (name: string, sagaId: string) =>
      spans().find((s) => s.name === `saga ${name}` && s.attributes['sage.saga.id'] === sagaId);
    const orderSaga = (await apps.view(orderId))!.saga;
    await waitUntil(
      () =>
        sagaSpan('order-placement', orderSaga.id) !== undefined &&
        sagaSpan('shipment', shipment.id) !== undefined,
      'both saga spans to end',
      10_000,
    );
    const traceId = sagaSpan('order-placement', orderSaga.id)!.spanContext().traceId;
    const shipmentSpan = sagaSpan('shipment', shipment.id)!;
    expect(shipmentSpan.spanContext().traceId).toBe(traceId);
    const inTrace = (name: string) =>
      spans().filter((s) => s.name === name && s.spanContext().traceId === traceId);
    const { paymentConsumer, shippingConsumer, orderEvents } = apps.topology;
    expect(inTrace(`${paymentConsumer} process`).length).toBeGreaterThan(0);
    const [publishConfirmed] = inTrace(`${orderEvents} publish`);
    expect(publishConfirmed).toBeDefined();
    // shipping-service's handling is a child of order-service's publish (the traceparent crossed
    // the broker), and the shipment saga a child of that handling.
    const handled = inTrace(`${shippingConsumer} process`);
    expect(handled.map((s) => s.parentSpanContext?.spanId)).toContain(
      publishConfirmed!.spanContext().spanId,
    );
    expect(handled.map((s) => s.spanContext().spanId)).toContain(
      shipmentSpan.parentSpanContext?.spanId,
    );
  });

  it('compensates the shipment when the carrier refuses the pickup: the slot is given back, the shipment cancelled, nothing booked', async () => {
    const slotsBefore = await shipping.carrierSlots(SAMPLE_CARRIER);
    const orderId = await confirmedOrder('three-refused', 'cus-unreachable-bob');

    const shipment = await shipping.settledShipment(orderId);
    expect(shipment.status).toBe('compensated');
    const step = (name: string) => shipment.steps.find((s) => s.name === name);
    expect(step('book-pickup')?.status).toBe('failed');
    expect(step('book-pickup')?.attempts).toBe(1); // refused: not retried
    expect(step('reserve-carrier')?.status).toBe('compensated');
    expect(step('create-shipment')?.status).toBe('compensated');
    expect(await shipping.shipment(orderId)).toMatchObject({ status: 'cancelled', carrier: null });
    expect(await shipping.carrierSlots(SAMPLE_CARRIER)).toBe(slotsBefore);
    expect(
      broker.published.filter((m) => m.type === 'shipment.booked' && m.key === orderId),
    ).toEqual([]);
    // The order itself stays confirmed: shipping is a follow-up saga, not a step of the order's.
    expect((await apps.view(orderId))!.order).toMatchObject({ status: 'confirmed' });
  });
});
