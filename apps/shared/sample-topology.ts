/**
 * The names the sample services agree on: where order-service sends payment commands, where
 * payment-service sends its replies, and the consumer groups. A `prefix` gives a test run (or a
 * second deployment on the same broker) its own topics / queues / subjects.
 */
export interface SampleTopology {
  /** Commands order-service's saga sends to payment-service (`payment.authorize`, `payment.void`). */
  paymentCommands: string;
  /** Replies payment-service sends back; order-service's saga reply consumer reads them. */
  orderReplies: string;
  /** Events order-service publishes (`order.confirmed`). */
  orderEvents: string;
  /** Consumer group (and inbox consumer) of order-service's reply consumer. */
  orderConsumer: string;
  /** Consumer group (and inbox consumer) of payment-service's command handlers. */
  paymentConsumer: string;
  /** Consumer group (and inbox consumer) of payment-service's `order.confirmed` receipts. */
  paymentReceiptsConsumer: string;
  /** Consumer group (and inbox consumer) of shipping-service's `order.confirmed` `@EventPattern`. */
  shippingConsumer: string;
  /** Events shipping-service publishes (`shipment.booked`). */
  shippingEvents: string;
}

const NAME = /^[A-Za-z0-9_-]*$/;

/** The sample topology; `prefix` (letters, digits, `-`, `_`) is prepended as `prefix.` to every name. */
export function sampleTopology(prefix = ''): SampleTopology {
  if (!NAME.test(prefix))
    throw new Error(`destination prefix must match ${String(NAME)}, got ${JSON.stringify(prefix)}`);
  const p = prefix ? `${prefix}.` : '';
  return {
    paymentCommands: `${p}payment.commands`,
    orderReplies: `${p}order-service.saga-replies`,
    orderEvents: `${p}orders`,
    orderConsumer: `${p}order-service`,
    paymentConsumer: `${p}payment-service`,
    paymentReceiptsConsumer: `${p}payment-service.order-receipts`,
    shippingConsumer: `${p}shipping-service.order-confirmed`,
    shippingEvents: `${p}shipments`,
  };
}
