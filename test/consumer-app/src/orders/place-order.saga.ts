import {
  Compensate,
  Saga,
  SagaStep,
  type SagaCompensationContext,
  type SagaStepContext,
} from '@sage/saga-outbox';

export interface PlaceOrder {
  orderId: string;
  customer: string;
  amountCents: number;
}

export class CardDeclinedError extends Error {}

/**
 * create-order → charge-card → confirm-order. A declined card compensates in reverse order:
 * the order is cancelled. Each step's writes, its result and the message it emits commit in one
 * transaction (ctx.manager).
 */
@Saga('place-order', {
  validate: (input: PlaceOrder) => input.amountCents > 0 || 'amountCents must be positive',
})
export class PlaceOrderSaga {
  @SagaStep('create-order')
  async createOrder(ctx: SagaStepContext<PlaceOrder>) {
    const { orderId, customer, amountCents } = ctx.input;
    await ctx.manager.query(
      `INSERT INTO orders (id, customer, amount_cents, status, saga_id) VALUES ($1, $2, $3, 'pending', $4)`,
      [orderId, customer, amountCents, ctx.sagaId],
    );
  }

  @Compensate('create-order')
  async cancelOrder(ctx: SagaCompensationContext<PlaceOrder>) {
    await ctx.manager.query(`UPDATE orders SET status = 'cancelled' WHERE id = $1`, [
      ctx.input.orderId,
    ]);
  }

  @SagaStep('charge-card', {
    dependsOn: ['create-order'],
    retry: { maxAttempts: 3, retryable: (error) => !(error instanceof CardDeclinedError) },
  })
  async chargeCard(ctx: SagaStepContext<PlaceOrder>) {
    if (ctx.input.amountCents > 100_000) throw new CardDeclinedError('over the card limit');
    return { chargeId: `ch-${ctx.input.orderId}` };
  }

  @Compensate('charge-card')
  async refund() {
    // Nothing was charged in this example; a real app refunds here.
  }

  // The pivot: once the order is confirmed (and the event sent) it is never undone.
  @SagaStep('confirm-order', { dependsOn: ['charge-card'], pivot: true })
  async confirmOrder(ctx: SagaStepContext<PlaceOrder>) {
    await ctx.manager.query(`UPDATE orders SET status = 'confirmed' WHERE id = $1`, [
      ctx.input.orderId,
    ]);
    // Written to the outbox in this step's transaction; the relay publishes it after commit.
    await ctx.emit({
      destination: 'orders.events',
      type: 'order.confirmed',
      key: ctx.input.orderId,
      payload: { orderId: ctx.input.orderId },
    });
  }
}
