import { createHash } from 'node:crypto';

/** The carrier the sample books with (a row of `shipping.carrier_capacity`). */
export const SAMPLE_CARRIER = 'sample-express';

/**
 * Sample convention: the carrier refuses pickups for customers whose id starts with
 * `cus-unreachable` (no deliverable address), as a payment provider's test tokens decline.
 */
export const UNREACHABLE_CUSTOMER_PREFIX = 'cus-unreachable';

/** The carrier refused the pickup: retrying will not change its answer, the shipment is undone. */
export class PickupRefusedError extends Error {
  constructor(orderId: string) {
    super(`the carrier refused the pickup for order ${orderId}: no deliverable address`);
    this.name = 'PickupRefusedError';
  }
}

/** No pickup slot left at the carrier. */
export class NoCarrierCapacityError extends Error {
  constructor(carrier: string) {
    super(`carrier ${carrier} has no pickup slot left`);
    this.name = 'NoCarrierCapacityError';
  }
}

/**
 * Books a pickup with the (simulated) carrier. The pickup id is derived from the step's
 * idempotency key, as a real carrier API keyed by it would answer a retry with the first booking.
 */
export function bookSamplePickup(
  orderId: string,
  customerId: string,
  idempotencyKey: string,
): string {
  if (customerId.startsWith(UNREACHABLE_CUSTOMER_PREFIX)) throw new PickupRefusedError(orderId);
  return `pickup-${createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 32)}`;
}
