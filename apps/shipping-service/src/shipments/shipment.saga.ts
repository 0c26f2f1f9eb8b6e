import {
  Compensate,
  Saga,
  SagaStep,
  type SagaCompensationContext,
  type SagaStepContext,
} from '@sage/saga-outbox';
import type { ShipmentBookedV1 } from '../../../shared/contracts/shipment-booked.contract';
import {
  bookSamplePickup,
  NoCarrierCapacityError,
  PickupRefusedError,
  SAMPLE_CARRIER,
} from './sample-carrier';
import {
  insertShipment,
  releaseCarrierSlot,
  takeCarrierSlot,
  updateShipment,
} from './shipment.sql';

/** What the shipment saga starts from: the ids of a confirmed order (no personal data). */
export type ShipmentInput = {
  orderId: string;
  customerId: string;
};

/** The shipment saga's name (what `SagaService.start` and `findByKey` take). */
export const SHIPMENT_SAGA = 'shipment';

export interface ShipmentSettings {
  /** Where `shipment.booked` is published. */
  shippingEvents: string;
}

const permanent = (e: unknown): boolean =>
  !(e instanceof PickupRefusedError || e instanceof NoCarrierCapacityError);

/**
 * The follow-up saga of a confirmed order, in shipping-service:
 *
 *   create-shipment ── reserve-carrier ── book-pickup (pivot)
 *
 * All local: each step's writes, its completion record and what it emits commit together. When the
 * carrier refuses the pickup (sample: a customer id starting `cus-unreachable`), the reserved slot
 * is given back and the shipment cancelled, in reverse order. `shipment.booked` is written to the
 * outbox in the booking's transaction: published if and only if the pickup is booked.
 *
 * A class made per configuration because the destination is a step argument; the step graph, and
 * so the definition version, is the same for every configuration.
 */
export function shipmentSaga({ shippingEvents }: ShipmentSettings) {
  @Saga(SHIPMENT_SAGA, {
    timeoutMs: 60_000,
    validate: (i: ShipmentInput) =>
      typeof i?.orderId === 'string' && typeof i.customerId === 'string'
        ? true
        : 'orderId and customerId are required',
  })
  class ShipmentSaga {
    @SagaStep('create-shipment')
    async createShipment(ctx: SagaStepContext<ShipmentInput>) {
      await insertShipment(ctx.manager, {
        order_id: ctx.input.orderId,
        saga_id: ctx.sagaId,
        customer_id: ctx.input.customerId,
      });
    }

    @Compensate('create-shipment')
    async cancelShipment(ctx: SagaCompensationContext<ShipmentInput>) {
      await updateShipment(ctx.manager, ctx.input.orderId, 'cancelled');
    }

    @SagaStep('reserve-carrier', {
      dependsOn: ['create-shipment'],
      retry: { maxAttempts: 3, retryable: permanent },
    })
    async reserveCarrier(ctx: SagaStepContext<ShipmentInput>) {
      if (!(await takeCarrierSlot(ctx.manager, SAMPLE_CARRIER)))
        throw new NoCarrierCapacityError(SAMPLE_CARRIER);
      await updateShipment(ctx.manager, ctx.input.orderId, 'carrier-reserved', {
        carrier: SAMPLE_CARRIER,
      });
      return { carrier: SAMPLE_CARRIER };
    }

    @Compensate('reserve-carrier')
    async releaseCarrier(ctx: SagaCompensationContext<ShipmentInput>) {
      await releaseCarrierSlot(ctx.manager, SAMPLE_CARRIER);
      await updateShipment(ctx.manager, ctx.input.orderId, 'pending', { carrier: null });
    }

    /** The pivot: once the carrier has booked the pickup the shipment goes (nothing after it to undo). */
    @SagaStep('book-pickup', {
      dependsOn: ['reserve-carrier'],
      pivot: true,
      retry: { maxAttempts: 3, retryable: permanent },
    })
    async bookPickup(ctx: SagaStepContext<ShipmentInput>) {
      const { orderId, customerId } = ctx.input;
      const pickupId = bookSamplePickup(orderId, customerId, ctx.idempotencyKey);
      await updateShipment(ctx.manager, orderId, 'booked', { pickupId });
      const event: ShipmentBookedV1 = { orderId, carrier: SAMPLE_CARRIER, pickupId };
      // Checked against its contract (apps/shared/contracts) as written.
      await ctx.emit({
        destination: shippingEvents,
        type: 'shipment.booked',
        key: orderId,
        payload: { ...event },
      });
      return { pickupId };
    }
  }
  return ShipmentSaga;
}
