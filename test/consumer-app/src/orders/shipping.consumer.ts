import { Controller } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { InboxService } from '@sage/saga-outbox';
import type { SageBrokerContext } from '@sage/saga-outbox/microservices';

/**
 * Consumes `order.confirmed` with a Nest @EventPattern. The inbox records the message id in the
 * same transaction as the handler's writes, so a redelivered message changes nothing.
 */
@Controller()
export class ShippingConsumer {
  constructor(private readonly inbox: InboxService) {}

  @EventPattern('orders.events')
  async onOrderConfirmed(@Payload() event: { orderId: string }, @Ctx() ctx: SageBrokerContext) {
    await this.inbox.handle('shipping.order-confirmed', ctx, async ({ manager, messageId }) => {
      await manager.query('INSERT INTO shipments (order_id, message_id) VALUES ($1, $2)', [
        event.orderId,
        messageId,
      ]);
    });
  }
}
