import { defineContract } from '@sage/saga-outbox';
import { orderIdSchema } from './schema-parts';

/** Where shipping-service publishes `shipment.booked` (`sampleTopology().shippingEvents`), for AsyncAPI. */
export const SHIPPING_EVENTS_DESTINATION = 'shipments';

/** `shipment.booked`: ids only, no personal data (the label's address comes from the customer system). */
export type ShipmentBookedV1 = {
  orderId: string;
  carrier: string;
  pickupId: string;
};

/** Version 1: what shipping-service's shipment saga publishes once the carrier booked the pickup. */
export const shipmentBookedV1 = defineContract({
  type: 'shipment.booked',
  version: 1,
  kind: 'event',
  destination: SHIPPING_EVENTS_DESTINATION,
  description:
    "A confirmed order's shipment was booked: a carrier reserved and its pickup scheduled. Published once per order, in the transaction that books it.",
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['orderId', 'carrier', 'pickupId'],
    properties: {
      orderId: orderIdSchema,
      carrier: { type: 'string', pattern: '^[a-z0-9-]{1,64}$' },
      pickupId: { type: 'string', pattern: '^pickup-[A-Za-z0-9_-]{1,128}$' },
    },
  },
});
