import { defineContract } from '@sage/saga-outbox';
import {
  amountMinorSchema,
  authorizationIdSchema,
  currencySchema,
  customerSchema,
  last4Schema,
  orderIdSchema,
} from './schema-parts';

/** Where order-service publishes `order.confirmed` (`sampleTopology().orderEvents`), for AsyncAPI. */
export const ORDER_EVENTS_DESTINATION = 'orders';

/** The customer an `order.confirmed` names; `name` and `email` are personal data. */
export type OrderConfirmedCustomer = { id: string; name: string; email: string };

/** `order.confirmed` version 1: the amount and its currency as two top-level fields. */
export type OrderConfirmedV1 = {
  orderId: string;
  customer: OrderConfirmedCustomer;
  amountCents: number;
  currency: string;
  last4: string;
  authorization: string;
};

/**
 * `order.confirmed` version 2: the amount and its currency travel together as `total` (a money
 * value is never read without its currency), in the currency's minor unit whatever it is (JPY has
 * none, so "cents" was the wrong name).
 */
export type OrderConfirmedV2 = {
  orderId: string;
  customer: OrderConfirmedCustomer;
  total: { amountMinor: number; currency: string };
  last4: string;
  authorization: string;
};

/** Version 1, as order-service published it first; still accepted from producers not yet upgraded. */
export const orderConfirmedV1 = defineContract({
  type: 'order.confirmed',
  version: 1,
  kind: 'event',
  destination: ORDER_EVENTS_DESTINATION,
  description:
    'An order was confirmed: stock reserved and payment authorized. Published once per order, in the transaction that confirms it.',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['orderId', 'customer', 'amountCents', 'currency', 'last4', 'authorization'],
    properties: {
      orderId: orderIdSchema,
      customer: customerSchema,
      amountCents: amountMinorSchema,
      currency: currencySchema,
      last4: last4Schema,
      authorization: authorizationIdSchema,
    },
  },
});

/** Version 1 → 2: `amountCents` and `currency` become `total: { amountMinor, currency }`. */
export function upcastOrderConfirmedV1(v1: OrderConfirmedV1): OrderConfirmedV2 {
  const { orderId, customer, amountCents, currency, last4, authorization } = v1;
  return { orderId, customer, total: { amountMinor: amountCents, currency }, last4, authorization };
}

/**
 * Version 2, the newest: what order-service publishes, and what a consumer that accepts both
 * versions always handles (version 1 messages are upcast with `upcastOrderConfirmedV1` first).
 */
export const orderConfirmedV2 = defineContract({
  type: 'order.confirmed',
  version: 2,
  kind: 'event',
  destination: ORDER_EVENTS_DESTINATION,
  description:
    'An order was confirmed: stock reserved and payment authorized. Version 2 carries the amount and its currency together as `total`.',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['orderId', 'customer', 'total', 'last4', 'authorization'],
    properties: {
      orderId: orderIdSchema,
      customer: customerSchema,
      total: {
        type: 'object',
        additionalProperties: false,
        required: ['amountMinor', 'currency'],
        properties: { amountMinor: amountMinorSchema, currency: currencySchema },
      },
      last4: last4Schema,
      authorization: authorizationIdSchema,
    },
  },
  // The payload was checked against version 1 before this runs.
  upcast: (previous) => upcastOrderConfirmedV1(previous as OrderConfirmedV1),
});
