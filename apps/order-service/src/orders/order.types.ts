import { findCardNumber } from '../../../shared/card-number';

/**
 * The customer an order is for. `id` is the data subject's id (what an erasure or an export is
 * asked for); `name` and `email` are personal data: they travel in the saga input and in the
 * `order.confirmed` event (for whoever writes to the customer), and nowhere else. The order table
 * keeps only `id`.
 */
// Types, not interfaces: they go into message payloads, which must be assignable to JsonValue.
export type OrderCustomer = {
  id: string;
  name: string;
  email: string;
};

/**
 * A card as the payment provider's client-side tokenisation returns it (Stripe Elements, Adyen
 * Web Components, Braintree Hosted Fields...): the browser or app sends the card number to the
 * provider and gets back an opaque token, so the card number (PAN) never reaches this server. Only
 * the token (which only payment-service's provider account can charge) and the last four digits
 * (to show "Visa ···4242") go into the saga, its commands and its events.
 *
 * Sample convention: tokens starting `tok_declined` are declined by payment-service.
 */
export type CardToken = {
  token: string;
  last4: string;
};

export interface PlaceOrderInput {
  orderId: string;
  customer: OrderCustomer;
  sku: string;
  quantity: number;
  amountCents: number;
  /** ISO 4217 code, e.g. `EUR`. */
  currency: string;
  /** Sent to payment-service with `payment.authorize`. */
  paymentMethod: CardToken;
}

export class OutOfStockError extends Error {
  constructor(sku: string, wanted: number) {
    super(`not enough stock for ${sku} (wanted ${wanted})`);
    this.name = 'OutOfStockError';
  }
}

const CARD_TOKEN = /^tok_[A-Za-z0-9_]{1,100}$/;
const LAST4 = /^[0-9]{4}$/;
const CURRENCY = /^[A-Z]{3}$/;

/**
 * The saga's own check of its input, whoever starts it (the HTTP API, the demo, a script): what the
 * steps depend on, and no card number anywhere (the messages name fields, never values).
 */
export function validatePlaceOrder(input: PlaceOrderInput): true | string {
  if (typeof input !== 'object' || input === null) return 'input must be an object';
  const pan = findCardNumber(input);
  if (pan)
    return `${pan} contains a card number; only a card token and its last four digits are accepted`;
  if (typeof input.orderId !== 'string' || !input.orderId) return 'orderId is required';
  const customer = input.customer as Partial<OrderCustomer> | undefined;
  if (typeof customer !== 'object' || customer === null) return 'customer is required';
  if (typeof customer.id !== 'string' || !customer.id) return 'customer.id is required';
  if (typeof customer.name !== 'string' || !customer.name) return 'customer.name is required';
  if (typeof customer.email !== 'string' || !customer.email.includes('@'))
    return 'customer.email is required';
  if (typeof input.sku !== 'string' || !input.sku) return 'sku is required';
  if (!Number.isInteger(input.quantity) || input.quantity <= 0)
    return 'quantity must be a positive integer';
  if (!Number.isInteger(input.amountCents) || input.amountCents < 0)
    return 'amountCents must be a non-negative integer';
  if (typeof input.currency !== 'string' || !CURRENCY.test(input.currency))
    return 'currency must be an ISO 4217 code such as EUR';
  const method = input.paymentMethod as Partial<CardToken> | undefined;
  if (typeof method?.token !== 'string' || !CARD_TOKEN.test(method.token))
    return 'paymentMethod.token must be a card token (tok_...)';
  if (typeof method.last4 !== 'string' || !LAST4.test(method.last4))
    return 'paymentMethod.last4 must be 4 digits';
  return true;
}
