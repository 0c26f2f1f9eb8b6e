import type { Type } from '@nestjs/common';
import { IdempotentHandler, type DeliveredMessage, type InboxContext } from '@sage/saga-outbox';
import type { OrderConfirmedV2 } from '../../../shared/contracts/order-confirmed.contract';
import { insertReceipt } from './receipt.sql';

export interface OrderReceiptsEndpoint {
  /** Where order-service publishes `order.confirmed`. */
  destination: string;
  /** Inbox consumer name and broker consumer group. */
  consumer: string;
}

/**
 * Records a receipt for each confirmed order. The message reaches the handler only once it
 * matches its contract (apps/shared/contracts, `contracts.consumes` of the module): decrypted,
 * checked, and upcast to version 2, so the handler reads one shape whichever version order-service
 * wrote; a message that does not match is dead-lettered before it gets here.
 *
 * A class made per endpoint because the destination is a decorator argument.
 */
export function orderReceiptsConsumer(endpoint: OrderReceiptsEndpoint): Type<unknown> {
  class OrderReceiptsConsumer {
    @IdempotentHandler(endpoint.destination, { consumer: endpoint.consumer })
    async onOrderConfirmed(message: DeliveredMessage, { manager }: InboxContext): Promise<void> {
      // Other events on the topic are not this handler's business.
      if (message.type !== 'order.confirmed') return;
      const event = message.payload as unknown as OrderConfirmedV2;
      await insertReceipt(manager, {
        order_id: event.orderId,
        customer_id: event.customer.id,
        authorization_id: event.authorization,
        amount_minor: event.total.amountMinor,
        currency: event.total.currency,
        card_last4: event.last4,
      });
    }
  }
  return OrderReceiptsConsumer;
}
