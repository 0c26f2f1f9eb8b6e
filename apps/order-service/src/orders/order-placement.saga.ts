import {
  Compensate,
  Saga,
  SagaStep,
  type SagaCompensationContext,
  type SagaStepContext,
} from '@sage/saga-outbox';
import {
  OutOfStockError,
  PaymentDeclinedError,
  validatePlaceOrder,
  type PlaceOrderInput,
} from './order.types';
import { PaymentGateway } from './payment-gateway';

const notRetryable = (e: unknown): boolean =>
  !(e instanceof OutOfStockError || e instanceof PaymentDeclinedError);

/**
 * Order placement:
 *
 *   create-order ─┬─ reserve-stock ─────┬─ confirm-order (pivot) ── record-confirmation
 *                 └─ authorize-payment ─┘
 *
 * Stock and payment run in parallel. A failure before the pivot undoes what completed, in reverse
 * order; after the pivot the confirmation is retried forward.
 */
@Saga('order-placement', {
  failureStrategy: 'WAIT_ALL',
  timeoutMs: 60_000,
  validate: validatePlaceOrder,
})
export class OrderPlacementSaga {
  constructor(private readonly gateway: PaymentGateway) {}

  @SagaStep('create-order')
  async createOrder(ctx: SagaStepContext<PlaceOrderInput>) {
    const { orderId, customer, sku, quantity, amountCents } = ctx.input;
    await ctx.manager.query(
      `INSERT INTO orders.customer_order (id, customer, sku, quantity, amount_cents, status, saga_id)
       VALUES ($1, $2, $3, $4, $5, 'pending', $6)`,
      [orderId, customer, sku, quantity, amountCents, ctx.sagaId],
    );
    await logEffect(ctx, 'order-created');
    return { orderId };
  }

  @Compensate('create-order')
  async cancelOrder(ctx: SagaCompensationContext<PlaceOrderInput>) {
    await ctx.manager.query(
      `UPDATE orders.customer_order SET status = 'cancelled', updated_at = now() WHERE id = $1`,
      [ctx.input.orderId],
    );
    await logEffect(ctx, 'order-cancelled');
  }

  @SagaStep('reserve-stock', {
    dependsOn: ['create-order'],
    retry: { maxAttempts: 3, retryable: notRetryable },
  })
  async reserveStock(ctx: SagaStepContext<PlaceOrderInput>) {
    // A CTE so the driver returns the updated rows (a bare UPDATE ... RETURNING yields [rows, count]).
    const rows: unknown[] = await ctx.manager.query(
      `WITH reserved AS (UPDATE orders.stock SET available = available - $2 WHERE sku = $1 AND available >= $2 RETURNING available)
       SELECT available FROM reserved`,
      [ctx.input.sku, ctx.input.quantity],
    );
    if (rows.length === 0) throw new OutOfStockError(ctx.input.sku, ctx.input.quantity);
    await logEffect(ctx, 'stock-reserved');
    return { reserved: ctx.input.quantity };
  }

  @Compensate('reserve-stock')
  async releaseStock(ctx: SagaCompensationContext<PlaceOrderInput>) {
    await ctx.manager.query(`UPDATE orders.stock SET available = available + $2 WHERE sku = $1`, [
      ctx.input.sku,
      ctx.input.quantity,
    ]);
    await logEffect(ctx, 'stock-released');
  }

  @SagaStep('authorize-payment', {
    dependsOn: ['create-order'],
    retry: { maxAttempts: 3, retryable: notRetryable },
    timeoutMs: 30_000,
  })
  async authorizePayment(ctx: SagaStepContext<PlaceOrderInput>) {
    const { authorization } = await this.gateway.authorize({
      orderId: ctx.input.orderId,
      amountCents: ctx.input.amountCents,
      card: ctx.input.card,
      idempotencyKey: ctx.idempotencyKey,
      signal: ctx.signal,
    });
    await ctx.manager.query(
      `INSERT INTO orders.payment (order_id, amount_cents, status) VALUES ($1, $2, 'authorized')`,
      [ctx.input.orderId, ctx.input.amountCents],
    );
    await logEffect(ctx, 'payment-authorized');
    return { authorization };
  }

  @Compensate('authorize-payment')
  async voidPayment(ctx: SagaCompensationContext<PlaceOrderInput>) {
    await ctx.manager.query(`UPDATE orders.payment SET status = 'voided' WHERE order_id = $1`, [
      ctx.input.orderId,
    ]);
    await logEffect(ctx, 'payment-voided');
  }

  @SagaStep('confirm-order', { dependsOn: ['reserve-stock', 'authorize-payment'], pivot: true })
  async confirmOrder(ctx: SagaStepContext<PlaceOrderInput>) {
    await ctx.manager.query(
      `UPDATE orders.customer_order SET status = 'confirmed', updated_at = now() WHERE id = $1`,
      [ctx.input.orderId],
    );
    await logEffect(ctx, 'order-confirmed');
    // Written to the outbox in this step's transaction: published if and only if the order is confirmed.
    await ctx.emit({
      destination: 'orders',
      type: 'order.confirmed',
      key: ctx.input.orderId,
      payload: {
        orderId: ctx.input.orderId,
        customer: ctx.input.customer,
        amountCents: ctx.input.amountCents,
      },
    });
  }

  @SagaStep('record-confirmation', { dependsOn: ['confirm-order'] })
  async recordConfirmation(ctx: SagaStepContext<PlaceOrderInput>) {
    await logEffect(ctx, 'confirmation-recorded');
  }
}

async function logEffect(ctx: SagaStepContext<PlaceOrderInput>, effect: string): Promise<void> {
  await ctx.manager.query(`INSERT INTO orders.effect_log (order_id, effect) VALUES ($1, $2)`, [
    ctx.input.orderId,
    effect,
  ]);
}
