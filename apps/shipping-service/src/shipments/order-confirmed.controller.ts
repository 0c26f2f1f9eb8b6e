import { Controller, type Type } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { InboxService, SagaService } from '@sage/saga-outbox';
import type { SageBrokerContext } from '@sage/saga-outbox/microservices';
import type { OrderConfirmedV2 } from '../../../shared/contracts/order-confirmed.contract';
import { SHIPMENT_SAGA, type ShipmentInput } from './shipment.saga';

export interface OrderConfirmedEndpoint {
  /** Where order-service publishes `order.confirmed` (the `@EventPattern`). */
  destination: string;
  /** Inbox consumer name (and the transport's consumer group, see shipping-transport.ts). */
  consumer: string;
}

/**
 * Starts a shipment for each confirmed order, from a Nest microservice `@EventPattern` handler fed
 * by SageBrokerTransport (shipping-transport.ts): the payload arrives decrypted, checked against
 * its contract and upcast to version 2; a message that does not match (or cannot be decrypted) is
 * dead-lettered by `InboxService.handle` without running the body.
 *
 * The inbox makes the handler run once per message: a second delivery (a relay republish, a broker
 * redelivery) is a `duplicate` and starts nothing. The saga is started in its own transaction from
 * within the handler, so it runs here at once, in the consumer's trace (a saga started inside the
 * inbox transaction would be picked up later by the recovery loop, outside that trace). Its
 * idempotency key, the order id, covers the window between the two commits: if the inbox commit
 * fails after the saga started, the redelivery finds the same saga and starts no second one.
 *
 * A class made per endpoint because the pattern is a decorator argument.
 */
export function orderConfirmedController(endpoint: OrderConfirmedEndpoint): Type<unknown> {
  @Controller()
  class OrderConfirmedController {
    constructor(
      private readonly inbox: InboxService,
      private readonly sagas: SagaService,
    ) {}

    @EventPattern(endpoint.destination)
    async onOrderEvent(@Payload() payload: unknown, @Ctx() ctx: SageBrokerContext): Promise<void> {
      // Other events on the topic are not this handler's business.
      if (ctx.getDeliveredMessage().type !== 'order.confirmed') return;
      await this.inbox.handle(endpoint.consumer, ctx, async () => {
        const event = payload as OrderConfirmedV2;
        const input: ShipmentInput = { orderId: event.orderId, customerId: event.customer.id };
        await this.sagas.start<ShipmentInput>(SHIPMENT_SAGA, input, {
          idempotencyKey: event.orderId,
        });
      });
    }
  }
  return OrderConfirmedController;
}
