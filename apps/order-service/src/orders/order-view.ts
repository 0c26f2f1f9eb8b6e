import type { SagaRecord } from '@sage/saga-outbox';
import type { PlaceOrderInput } from './order.types';

/**
 * Where an order stands, in the customer's words:
 * - `processing`: being placed (stock, order record);
 * - `awaiting-payment`: waiting for payment-service to authorise the card;
 * - `confirmed`: past the point of no return (the pivot `confirm-order` committed);
 * - `cancelling` / `cancelled`: it failed and what was done is being (has been) undone;
 * - `on-hold`: it could not be cancelled automatically; an operator takes it from there.
 */
export type OrderStatus =
  'processing' | 'awaiting-payment' | 'confirmed' | 'cancelling' | 'cancelled' | 'on-hold';

/**
 * What `GET /orders/:id` answers: the order as its customer sees it, derived from the saga's
 * status and steps. Nothing internal (saga id, owner, lease, version, step errors, the input), no
 * personal data, and the card only as its last four digits.
 */
export interface OrderView {
  orderId: string;
  status: OrderStatus;
  amountCents: number;
  /** ISO 4217 code. */
  currency: string;
  /** The card's last four digits. */
  last4: string;
  /** ISO 8601. */
  placedAt: string;
  /** ISO 8601: the last change of the order's saga. */
  updatedAt: string;
  /** Why the order was not confirmed, in words for the customer; null while it may still be. */
  failureReason: string | null;
}

/** The fields of OrderView, in order (what the e2e tests check the answer against). */
export const ORDER_VIEW_FIELDS: readonly (keyof OrderView)[] = [
  'orderId',
  'status',
  'amountCents',
  'currency',
  'last4',
  'placedAt',
  'updatedAt',
  'failureReason',
];

/** The view of the order placed by `saga` (an order-placement saga). */
export function orderViewOf(saga: SagaRecord): OrderView {
  const input = saga.input as unknown as PlaceOrderInput;
  return {
    orderId: input.orderId,
    status: orderStatusOf(saga),
    amountCents: input.amountCents,
    currency: input.currency,
    last4: input.paymentMethod.last4,
    placedAt: saga.createdAt.toISOString(),
    updatedAt: saga.updatedAt.toISOString(),
    failureReason: failureReasonOf(saga),
  };
}

function stepStatus(saga: SagaRecord, name: string): string | undefined {
  return saga.steps.find((s) => s.name === name)?.status;
}

function orderStatusOf(saga: SagaRecord): OrderStatus {
  switch (saga.status) {
    case 'completed':
      return 'confirmed';
    case 'compensated':
      return 'cancelled';
    case 'compensating':
      return 'cancelling';
    case 'failed':
      return 'on-hold';
    case 'running':
    case 'waiting':
      if (stepStatus(saga, 'confirm-order') === 'completed') return 'confirmed';
      return stepStatus(saga, 'authorize-payment') === 'waiting'
        ? 'awaiting-payment'
        : 'processing';
  }
}

/**
 * The step that failed, told as the customer would be told; never the step's error text (it may
 * name internals, or data the customer should not see).
 */
function failureReasonOf(saga: SagaRecord): string | null {
  if (saga.status === 'failed')
    return 'The order could not be cancelled automatically; our team will contact you.';
  if (saga.status !== 'compensating' && saga.status !== 'compensated') return null;
  switch (saga.failedStep) {
    case 'reserve-stock':
      return 'The item is out of stock.';
    case 'authorize-payment':
      // A step that failed is not compensated; one that timed out (outcome unknown) is.
      return stepStatus(saga, 'authorize-payment') === 'failed'
        ? 'The payment was declined.'
        : 'The payment could not be confirmed in time.';
    default:
      return 'The order could not be completed.';
  }
}
