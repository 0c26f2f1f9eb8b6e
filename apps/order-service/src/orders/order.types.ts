export interface PlaceOrderInput {
  orderId: string;
  customer: string;
  sku: string;
  quantity: number;
  amountCents: number;
  /** Sent to payment-service with `payment.authorize`; test cards ending in 0002 are declined. */
  card: string;
}

export class OutOfStockError extends Error {
  constructor(sku: string, wanted: number) {
    super(`not enough stock for ${sku} (wanted ${wanted})`);
    this.name = 'OutOfStockError';
  }
}

export function validatePlaceOrder(input: PlaceOrderInput): true | string {
  if (typeof input !== 'object' || input === null) return 'input must be an object';
  if (typeof input.orderId !== 'string' || !input.orderId) return 'orderId is required';
  if (typeof input.sku !== 'string' || !input.sku) return 'sku is required';
  if (!Number.isInteger(input.quantity) || input.quantity <= 0)
    return 'quantity must be a positive integer';
  if (!Number.isInteger(input.amountCents) || input.amountCents < 0)
    return 'amountCents must be a non-negative integer';
  if (typeof input.card !== 'string' || input.card.length < 4) return 'card is required';
  return true;
}
