import {
  Compensate,
  dataschemaOf,
  DATASCHEMA_HEADER,
  Saga,
  SagaStep,
  type SagaCommand,
  type SagaCompensationContext,
  type SagaStepContext,
} from '@sage/saga-outbox';
import {
  OutOfStockError,
  validatePlaceOrder,
  type CardToken,
  type PlaceOrderInput,
} from './order.types';
import type {
  OrderConfirmedV1,
  OrderConfirmedV2,
} from '../../../shared/contracts/order-confirmed.contract';

/** How the saga reaches payment-service (see apps/payment-service). */
export interface PaymentStepSettings {
  /** Where `payment.authorize` and `payment.void` go. */
  destination: string;
  /** Reply timeout of one attempt; on timeout the command is resent with the same idempotency key. */
  replyTimeoutMs: number;
  /** Attempts (sends) before the step is `timed_out` and the order compensated. */
  maxAttempts: number;
  /** Sends of `payment.void` before the compensation fails (the saga then parks as `failed`). */
  voidMaxAttempts: number;
}

export interface OrderPlacementSettings {
  payment: PaymentStepSettings;
  /** Where `order.confirmed` is published. */
  orderEvents: string;
  /**
   * The `order.confirmed` version written (apps/shared/contracts): 2, the newest (default), or 1
   * while a consumer that accepts only version 1 is still deployed (a producer upgrades last when
   * its consumers cannot upcast).
   */
  orderConfirmedVersion?: 1 | 2;
}

/** What payment-service answers to `payment.authorize` (the step's result). */
export interface PaymentAuthorization {
  authorization: string;
}

/**
 * The `payment.authorize` command's payload: the card token the payment provider issued, never a
 * card number (order-service never sees one). Sample: tokens starting `tok_declined` are declined.
 */
export interface AuthorizePaymentCommand {
  orderId: string;
  /**
   * Whose card it is: the data subject the token is encrypted for (its key is the customer's), so
   * erasing the customer makes every copy of the command unreadable.
   */
  customerId: string;
  amountCents: number;
  currency: string;
  paymentMethod: CardToken;
}

/** The `payment.void` command's payload. */
export interface VoidPaymentCommand {
  orderId: string;
  /** Idempotency key of the `payment.authorize` command this voids (`sagaId:authorize-payment`). */
  authorizationKey: string;
}

/**
 * The order-placement saga class `orderPlacementSaga()` made for this module's configuration, under
 * a token: the controller injects it to start the saga by class, typed by its steps' input
 * (`sagas.start(orderPlacement, input)`). An app whose saga class is fixed imports the class and
 * passes it directly: `sagas.start(OrderPlacementSaga, input)`.
 */
export const ORDER_PLACEMENT_SAGA = Symbol('OrderPlacementSaga');

/** The class `orderPlacementSaga()` returns: its steps take a `PlaceOrderInput`. */
export type OrderPlacementSagaClass = ReturnType<typeof orderPlacementSaga>;

/**
 * Order placement:
 *
 *   create-order ─┬─ reserve-stock ─────────────────┬─ confirm-order (pivot) ── record-confirmation
 *                 └─ authorize-payment (remote) ────┘
 *
 * Stock and payment run in parallel. Payment is a remote step: the saga sends `payment.authorize`
 * to payment-service through the outbox and waits (parked, no worker held) for the reply. A failure
 * before the pivot undoes what completed (or timed out), in reverse order, the payment with a
 * `payment.void` command; after the pivot the confirmation is retried forward.
 *
 * A class made per configuration because step options (destination, reply timeout) are decorator
 * arguments; the step graph, and so the definition version, is the same for every configuration.
 */
export function orderPlacementSaga({
  payment,
  orderEvents,
  orderConfirmedVersion = 2,
}: OrderPlacementSettings) {
  const notOutOfStock = (e: unknown): boolean => !(e instanceof OutOfStockError);

  @Saga('order-placement', {
    failureStrategy: 'WAIT_ALL',
    timeoutMs: 60_000,
    validate: validatePlaceOrder,
  })
  class OrderPlacementSaga {
    @SagaStep('create-order')
    async createOrder(ctx: SagaStepContext<PlaceOrderInput>) {
      const { orderId, customer, sku, quantity, amountCents } = ctx.input;
      // The order row keeps the customer's id only; name and email stay in the saga input.
      await ctx.manager.query(
        `INSERT INTO orders.customer_order (id, customer, sku, quantity, amount_cents, status, saga_id)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6)`,
        [orderId, customer.id, sku, quantity, amountCents, ctx.sagaId],
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
      retry: { maxAttempts: 3, retryable: notOutOfStock },
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

    /** Remote: the command commits with this step's transaction; payment-service's reply is the result. */
    @SagaStep('authorize-payment', {
      kind: 'remote',
      dependsOn: ['create-order'],
      timeoutMs: payment.replyTimeoutMs,
      retry: { maxAttempts: payment.maxAttempts },
      // The void is resent for longer: an order must not be left with a live authorization.
      compensationRetry: { maxAttempts: payment.voidMaxAttempts },
    })
    authorizePayment(ctx: SagaStepContext<PlaceOrderInput>): SagaCommand {
      const command: AuthorizePaymentCommand = {
        orderId: ctx.input.orderId,
        customerId: ctx.input.customer.id,
        amountCents: ctx.input.amountCents,
        currency: ctx.input.currency,
        paymentMethod: {
          token: ctx.input.paymentMethod.token,
          last4: ctx.input.paymentMethod.last4,
        },
      };
      return {
        destination: payment.destination,
        type: 'payment.authorize',
        payload: { ...command },
      };
    }

    /**
     * Also runs when the authorization timed out (its outcome is unknown): payment-service voids it
     * if it happened, and otherwise makes sure a late `payment.authorize` is refused.
     */
    @Compensate('authorize-payment')
    voidPayment(ctx: SagaCompensationContext<PlaceOrderInput>): SagaCommand {
      const command: VoidPaymentCommand = {
        orderId: ctx.input.orderId,
        // The forward step's idempotency key, which payment-service stored the authorization under.
        authorizationKey: ctx.forwardIdempotencyKey,
      };
      return { destination: payment.destination, type: 'payment.void', payload: { ...command } };
    }

    @SagaStep('confirm-order', { dependsOn: ['reserve-stock', 'authorize-payment'], pivot: true })
    async confirmOrder(ctx: SagaStepContext<PlaceOrderInput>) {
      const { authorization } = ctx.results['authorize-payment'] as unknown as PaymentAuthorization;
      await ctx.manager.query(
        `UPDATE orders.customer_order SET status = 'confirmed', updated_at = now() WHERE id = $1`,
        [ctx.input.orderId],
      );
      await ctx.manager.query(
        `INSERT INTO orders.payment (order_id, amount_cents, status) VALUES ($1, $2, 'authorized')`,
        [ctx.input.orderId, ctx.input.amountCents],
      );
      await logEffect(ctx, 'order-confirmed');
      const { orderId, customer, amountCents, currency, paymentMethod } = ctx.input;
      // The customer's name and e-mail are for whoever writes to the customer; the card appears only
      // as its last four digits. Checked against its contract (apps/shared/contracts) as written.
      const event: OrderConfirmedV2 = {
        orderId,
        customer: { id: customer.id, name: customer.name, email: customer.email },
        total: { amountMinor: amountCents, currency },
        last4: paymentMethod.last4,
        authorization,
      };
      // Written to the outbox in this step's transaction: published if and only if the order is confirmed.
      await ctx.emit({
        destination: orderEvents,
        type: 'order.confirmed',
        key: orderId,
        ...(orderConfirmedVersion === 1
          ? {
              // An older version is written by naming it: checked against that version's schema.
              payload: { ...toOrderConfirmedV1(event) },
              headers: { [DATASCHEMA_HEADER]: dataschemaOf('order.confirmed', 1) },
            }
          : { payload: { ...event } }),
      });
    }

    @SagaStep('record-confirmation', { dependsOn: ['confirm-order'] })
    async recordConfirmation(ctx: SagaStepContext<PlaceOrderInput>) {
      await logEffect(ctx, 'confirmation-recorded');
    }
  }
  return OrderPlacementSaga;
}

async function logEffect(ctx: SagaStepContext<PlaceOrderInput>, effect: string): Promise<void> {
  await ctx.manager.query(`INSERT INTO orders.effect_log (order_id, effect) VALUES ($1, $2)`, [
    ctx.input.orderId,
    effect,
  ]);
}

/** Version 2 → 1, for a deployment still writing version 1 (`orderConfirmedVersion: 1`). */
function toOrderConfirmedV1(event: OrderConfirmedV2): OrderConfirmedV1 {
  const { orderId, customer, total, last4, authorization } = event;
  return {
    orderId,
    customer,
    amountCents: total.amountMinor,
    currency: total.currency,
    last4,
    authorization,
  };
}
