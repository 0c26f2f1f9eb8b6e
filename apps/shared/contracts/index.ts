/**
 * The sample services' message contracts (docs/contracts.md): one file per message type, shared by
 * the service that produces it and the one that consumes it, given to each service's
 * `SagaOutboxModule.forRoot({ contracts: { publishes, consumes } })`.
 */
import { orderConfirmedV1, orderConfirmedV2 } from './order-confirmed.contract';
import { paymentAuthorizeV1 } from './payment-authorize.contract';
import { paymentVoidV1 } from './payment-void.contract';
import { shipmentBookedV1 } from './shipment-booked.contract';

export * from './order-confirmed.contract';
export * from './payment-authorize.contract';
export * from './payment-void.contract';
export * from './shipment-booked.contract';

/**
 * order-service writes `order.confirmed` (version 2; version 1 still allowed, for a rollout that
 * must wait for its consumers) and the order saga's commands to payment-service; the replies it
 * receives are checked against the commands' `reply` schemas.
 */
export const orderServiceContracts = {
  publishes: [orderConfirmedV1, orderConfirmedV2, paymentAuthorizeV1, paymentVoidV1],
  consumes: [],
} as const;

/**
 * payment-service handles the order saga's commands (its success replies are checked against
 * their `reply` schemas) and records a receipt for each `order.confirmed`, of either version (it
 * always sees version 2: version 1 is upcast).
 */
export const paymentServiceContracts = {
  publishes: [],
  consumes: [paymentAuthorizeV1, paymentVoidV1, orderConfirmedV1, orderConfirmedV2],
} as const;

/**
 * shipping-service starts a shipment for each `order.confirmed` (either version, always seen as
 * version 2) and publishes `shipment.booked` when its pickup is booked.
 */
export const shippingServiceContracts = {
  publishes: [shipmentBookedV1],
  consumes: [orderConfirmedV1, orderConfirmedV2],
} as const;

/**
 * Every contract of the samples, once: what `sage contracts snapshot` records in
 * contracts.snapshot.json and `sage contracts check` compares with it (npm run contracts:check).
 */
export const contracts = [
  orderConfirmedV1,
  orderConfirmedV2,
  paymentAuthorizeV1,
  paymentVoidV1,
  shipmentBookedV1,
];
