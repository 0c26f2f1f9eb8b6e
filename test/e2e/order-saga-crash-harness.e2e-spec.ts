/**
 * The sample order saga (apps/order-service) under the crash harness: killed at every step
 * boundary (forward, and through compensation), recovered by a fresh worker, with the order
 * service's own invariants checked after each run. Embedded PGlite, no servers.
 *
 * `authorize-payment` is a remote step: the harness plays payment-service, answering
 * `payment.authorize` and `payment.void` as it would (by the command's idempotency key; a void
 * makes a later authorize fail), so the real saga class runs unchanged.
 */
import type { SagaStatus } from '@sage/saga-outbox';
import {
  sagaCrashHarness,
  StepFault,
  type CrashHarnessCheck,
  type SagaCrashHarness,
} from '@sage/saga-outbox/testing';
import type { EntityManager } from 'typeorm';
import { OrderTables1764230500000 } from '../../apps/order-service/src/migrations/1764230500000-order-tables';
import {
  orderPlacementSaga,
  type VoidPaymentCommand,
} from '../../apps/order-service/src/orders/order-placement.saga';
import {
  OutOfStockError,
  type PlaceOrderInput,
} from '../../apps/order-service/src/orders/order.types';

const OrderPlacementSaga = orderPlacementSaga({
  orderEvents: 'orders.events',
  payment: {
    destination: 'payments.commands',
    // Short, for the fault test where the first authorization gets no reply.
    replyTimeoutMs: 250,
    maxAttempts: 3,
    voidMaxAttempts: 5,
  },
});

const INITIAL_STOCK = 5;
const input: PlaceOrderInput = {
  orderId: 'order-1',
  customer: { id: 'cus-alice', name: 'Alice', email: 'alice@example.com' },
  sku: 'widget',
  quantity: 2,
  amountCents: 2400,
  currency: 'EUR',
  paymentMethod: { token: 'tok_visa', last4: '4242' },
};

/** payment-service, as far as this saga can tell: authorizations by the command's idempotency key. */
const authorizations = new Map<string, 'authorized' | 'voided'>();

async function orderState(manager: EntityManager) {
  const [row] = (await manager.query(
    `SELECT (SELECT status FROM orders.customer_order WHERE id = $1) AS "order",
            (SELECT available FROM orders.stock WHERE sku = $2) AS available,
            (SELECT count(*)::int FROM orders.payment WHERE order_id = $1) AS payments`,
    [input.orderId, input.sku],
  )) as [{ order: string | null; available: number; payments: number }];
  const effects: Record<string, number> = {};
  for (const e of (await manager.query(
    `SELECT effect, count(*)::int AS n FROM orders.effect_log WHERE order_id = $1 GROUP BY effect`,
    [input.orderId],
  )) as { effect: string; n: number }[])
    effects[e.effect] = e.n;
  return { ...row, effects };
}

/** What must hold however the saga was interrupted: each effect once, nothing left when undone. */
async function orderInvariants({
  manager,
  saga,
  messages,
}: CrashHarnessCheck<PlaceOrderInput>): Promise<void> {
  const state = await orderState(manager);
  const confirmed = messages.filter((m) => m.type === 'order.confirmed');
  const live = [...authorizations.values()].filter((s) => s === 'authorized');
  if (saga.status === 'completed') {
    expect(state).toEqual({
      order: 'confirmed',
      available: INITIAL_STOCK - input.quantity,
      payments: 1,
      effects: {
        'order-created': 1,
        'stock-reserved': 1,
        'order-confirmed': 1,
        'confirmation-recorded': 1,
      },
    });
    expect(confirmed).toHaveLength(1);
    expect(live).toHaveLength(1);
    return;
  }
  expect(saga.status).toBe('compensated');
  // Nothing kept: no stock held, no payment row, no confirmation, no live authorization.
  expect({
    available: state.available,
    payments: state.payments,
    confirmed: confirmed.length,
    live: live.length,
  }).toEqual({ available: INITIAL_STOCK, payments: 0, confirmed: 0, live: 0 });
  // Each effect once, each undone once: an order created is cancelled, stock reserved is released.
  const created = state.effects['order-created'] ?? 0;
  const reserved = state.effects['stock-reserved'] ?? 0;
  expect(created).toBeLessThanOrEqual(1);
  expect(reserved).toBeLessThanOrEqual(1);
  expect(state.effects['order-cancelled'] ?? 0).toBe(created);
  expect(state.effects['stock-released'] ?? 0).toBe(reserved);
  expect(state.order).toBe(created ? 'cancelled' : null);
}

const harness: SagaCrashHarness = sagaCrashHarness<PlaceOrderInput>({
  saga: OrderPlacementSaga,
  input,
  migrations: [OrderTables1764230500000],
  tables: ['orders.customer_order', 'orders.stock', 'orders.payment', 'orders.effect_log'],
  seed: async (manager) => {
    authorizations.clear();
    await manager.query(`INSERT INTO orders.stock (sku, available) VALUES ($1, $2)`, [
      input.sku,
      INITIAL_STOCK,
    ]);
  },
  remote: {
    'authorize-payment': {
      forward: (command) => {
        if (authorizations.get(command.idempotencyKey) === 'voided')
          return { ok: false, error: 'the authorization was voided' };
        authorizations.set(command.idempotencyKey, 'authorized');
        return { ok: true, result: { authorization: `auth-${command.idempotencyKey}` } };
      },
      compensate: (command) => {
        const { authorizationKey } = command.payload as unknown as VoidPaymentCommand;
        authorizations.set(authorizationKey, 'voided');
        return { ok: true, result: null };
      },
    },
  },
  invariants: orderInvariants,
});

describe('the sample order saga under the crash harness (embedded PGlite)', () => {
  const began = Date.now();
  beforeAll(() => harness.start(), 60_000);
  afterAll(async () => {
    await harness.close();
    console.log(
      `order saga crash harness: ${harness.boundaries().length} boundaries and the fault tests in ${Date.now() - began} ms`,
    );
  });

  it('has 24 boundaries: 10 forward, 14 through failures and compensations', () => {
    const boundaries = harness.boundaries();
    expect(boundaries).toHaveLength(24);
    expect(boundaries.filter((b) => b.failingStep === undefined)).toHaveLength(10);
  });

  it.each(harness.boundaries())('$name', (boundary) => harness.run(boundary), 30_000);

  describe('fault injection', () => {
    const statusAndRuns = (
      report: Awaited<ReturnType<SagaCrashHarness['runScenario']>>,
      step: string,
    ): { status: SagaStatus | 'not started'; ran: number; committed: number } => ({
      status: report.status,
      ...report.steps[step]!.forward,
    });

    it('out of stock (a non-retryable error for reserve-stock): compensated, payment voided', async () => {
      const report = await harness.runScenario([
        StepFault.throwOnce('reserve-stock', {
          at: 'start',
          error: new OutOfStockError(input.sku, input.quantity),
        }),
      ]);
      expect(statusAndRuns(report, 'reserve-stock')).toEqual({
        status: 'compensated',
        ran: 1,
        committed: 0,
      });
      expect(report.commands.map((c) => c.type)).toEqual(['payment.authorize', 'payment.void']);
    });

    it('a transient failure of reserve-stock: retried, the order completes', async () => {
      const report = await harness.runScenario([StepFault.throwOnce('reserve-stock')]);
      expect(statusAndRuns(report, 'reserve-stock')).toEqual({
        status: 'completed',
        ran: 2,
        committed: 1,
      });
    });

    it('payment-service silent on the first authorize: resent with the same key, the order completes', async () => {
      const report = await harness.runScenario([StepFault.timeout('authorize-payment')]);
      expect(report.status).toBe('completed');
      const authorizes = report.commands.filter((c) => c.type === 'payment.authorize');
      expect(authorizes.map((c) => c.attempt)).toEqual([1, 2]);
      expect(new Set(authorizes.map((c) => c.idempotencyKey)).size).toBe(1);
      expect(report.steps['authorize-payment']!.forward).toEqual({ ran: 2, committed: 2 });
    });

    it('confirm-order (the pivot) failing for good: everything before it undone, dependants first', async () => {
      const report = await harness.runScenario([StepFault.failForGood('confirm-order')]);
      expect(report.status).toBe('compensated');
      const undone = report.commits.filter((c) => c.phase === 'compensate').map((c) => c.step);
      // authorize-payment and reserve-stock are independent: either may be undone first.
      expect(undone).toHaveLength(3);
      expect(undone[2]).toBe('create-order');
      expect(report.steps['authorize-payment']!.compensate.committed).toBe(1);
    });
  });
});
