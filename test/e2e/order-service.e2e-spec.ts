/**
 * order-service's HTTP API on real PostgreSQL, with payment-service beside it on its own database
 * and an in-memory broker shared by the two (the broker-specific runs are in
 * order-payment-brokers.e2e-spec.ts).
 */
import { InMemoryBroker, SAGA_HEADERS, type DeliveredMessage } from '@sage/saga-outbox';
import { randomUUID } from 'node:crypto';
import { DECLINED_CARD, orderBody, SampleApps, stepOf } from './sample-apps';

describe('order-service over HTTP on real PostgreSQL', () => {
  const broker = new InMemoryBroker();
  const apps = new SampleApps({
    label: 'memory',
    broker,
    payment: { replyTimeoutMs: 10_000, maxAttempts: 2 },
  });

  beforeAll(async () => {
    await apps.start();
    await apps.orderData.query(
      `INSERT INTO orders.stock (sku, available) VALUES ('widget', 5), ('gadget', 0)`,
    );
  }, 60_000);

  afterAll(() => apps.stop(), 30_000);

  const widgets = async (): Promise<number> => {
    const [{ available }] = (await apps.orderData.query(
      `SELECT available FROM orders.stock WHERE sku = 'widget'`,
    )) as [{ available: number }];
    return available;
  };

  it('places an order: the saga completes and the order is confirmed', async () => {
    const body = orderBody({ quantity: 2, amountCents: 2400 });
    const res = await apps.placeOrder(body, 'e2e-1');
    expect(res.status).toBe(202);
    const { orderId, sagaId, created } = (await res.json()) as {
      orderId: string;
      sagaId: string;
      created: boolean;
    };
    expect(created).toBe(true);
    const view = await apps.settled(orderId);
    expect(view.saga.status).toBe('completed');
    expect(view.order.status).toBe('confirmed');
    // GET /orders/:id answers the OrderView: exactly its documented fields, nothing internal.
    const answer = await apps.orderView(orderId);
    expect(answer.status).toBe(200);
    expect(Object.keys(answer.body as object)).toEqual([
      'orderId',
      'status',
      'amountCents',
      'currency',
      'last4',
      'placedAt',
      'updatedAt',
      'failureReason',
    ]);
    expect(answer.body).toEqual({
      orderId,
      status: 'confirmed',
      amountCents: 2400,
      currency: 'EUR',
      last4: '4242',
      placedAt: view.saga.createdAt.toISOString(),
      updatedAt: view.saga.updatedAt.toISOString(),
      failureReason: null,
    });
    expect(view.saga.steps.map((s) => [s.name, s.status])).toEqual([
      ['create-order', 'completed'],
      ['reserve-stock', 'completed'],
      ['authorize-payment', 'completed'],
      ['confirm-order', 'completed'],
      ['record-confirmation', 'completed'],
    ]);
    const auths = await apps.authorizations(orderId);
    expect(auths).toHaveLength(1);
    expect(stepOf(view, 'authorize-payment').result).toEqual({
      authorization: auths[0]!.authorization_id,
    });

    // The same request again (client retry) starts nothing new.
    const again = (await (await apps.placeOrder(body, 'e2e-1')).json()) as {
      sagaId: string;
      created: boolean;
    };
    expect(again).toMatchObject({ sagaId, created: false });
    expect(await widgets()).toBe(3);
  }, 30_000);

  it('a declined card compensates: stock released, order cancelled', async () => {
    const res = await apps.placeOrder(
      orderBody({ amountCents: 1200, paymentMethod: DECLINED_CARD }),
      'e2e-2',
    );
    const { orderId } = (await res.json()) as { orderId: string };
    const view = await apps.settled(orderId);
    expect(view.saga.status).toBe('compensated');
    expect(view.saga.error).toMatch(/authorize-payment.*declined/);
    expect(view.order).toMatchObject({
      status: 'cancelled',
      last4: '0002',
      failureReason: 'The payment was declined.',
    });
    const effects = (await apps.orderData.query(
      `SELECT effect FROM orders.effect_log WHERE order_id = $1 ORDER BY id`,
      [orderId],
    )) as { effect: string }[];
    const list = effects.map((e) => e.effect);
    expect(list).toEqual(expect.arrayContaining(['order-created', 'order-cancelled']));
    if (list.includes('stock-reserved')) expect(list).toContain('stock-released');
    expect(await widgets()).toBe(3);
    expect((await apps.authorizations(orderId)).map((a) => a.status)).toEqual(['declined']);
  }, 30_000);

  it('out of stock compensates: the payment authorized in parallel is voided', async () => {
    const res = await apps.placeOrder(orderBody({ sku: 'gadget', amountCents: 9900 }), 'e2e-3');
    const { orderId } = (await res.json()) as { orderId: string };
    const view = await apps.settled(orderId);
    expect(view.saga.status).toBe('compensated');
    expect(view.saga.error).toMatch(/reserve-stock.*not enough stock/);
    expect(view.order).toMatchObject({
      status: 'cancelled',
      failureReason: 'The item is out of stock.',
    });
    // Whether the authorize or the void reached payment-service first, nothing stays authorized.
    const auths = await apps.authorizations(orderId);
    expect(auths).toHaveLength(1);
    expect(['voided', 'tombstone']).toContain(auths[0]!.status);
  }, 30_000);

  it('payment-service: a resend gets the same authorization; a void before the authorize refuses it', async () => {
    // Commands as order-service's saga would send them, straight onto the broker.
    const replyTo = `${apps.topology.orderReplies}.probe-${randomUUID()}`;
    const replies: DeliveredMessage[] = [];
    const sub = await broker.subscribe(replyTo, (m) => {
      replies.push(m);
      return Promise.resolve();
    });
    const command = (sagaId: string, type: string, phase: string, payload: object) => ({
      id: randomUUID(),
      destination: apps.topology.paymentCommands,
      key: sagaId,
      type,
      payload: payload as never,
      time: new Date(),
      headers: {
        [SAGA_HEADERS.sagaId]: sagaId,
        [SAGA_HEADERS.saga]: 'order-placement',
        [SAGA_HEADERS.step]: 'authorize-payment',
        [SAGA_HEADERS.phase]: phase,
        [SAGA_HEADERS.attempt]: '1',
        [SAGA_HEADERS.idempotencyKey]: `${sagaId}:authorize-payment${phase === 'compensate' ? ':compensate' : ''}`,
        [SAGA_HEADERS.replyTo]: replyTo,
      },
    });
    const authorize = (sagaId: string, orderId: string) =>
      // As order-service sends it: payment-service checks it against its contract first.
      command(sagaId, 'payment.authorize', 'forward', {
        orderId,
        customerId: 'cus-probe',
        amountCents: 500,
        currency: 'EUR',
        paymentMethod: { token: 'tok_visa', last4: '4242' },
      });
    const replyCount = async (n: number) => {
      const deadline = Date.now() + 10_000;
      while (replies.length < n) {
        if (Date.now() > deadline) throw new Error(`${replies.length} of ${n} replies`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      // The same authorize twice (a resend: new message id, same idempotency key): one authorization.
      const first = randomUUID();
      await broker.publish([authorize(first, 'ord-probe-resend')]);
      await replyCount(1);
      await broker.publish([authorize(first, 'ord-probe-resend')]);
      await replyCount(2);
      const [a, b] = replies.splice(0, 2);
      expect(a!.headers[SAGA_HEADERS.outcome]).toBe('success');
      expect(b!.payload).toEqual(a!.payload);
      const resent = await apps.authorizations('ord-probe-resend');
      expect(resent).toHaveLength(1);
      expect(a!.payload).toEqual({ result: { authorization: resent[0]!.authorization_id } });

      // Void first (the authorize is late): a tombstone; then the authorize is refused.
      const sagaId = randomUUID();
      await broker.publish([
        command(sagaId, 'payment.void', 'compensate', {
          orderId: 'ord-probe-late',
          authorizationKey: `${sagaId}:authorize-payment`,
        }),
      ]);
      await replyCount(1);
      await broker.publish([authorize(sagaId, 'ord-probe-late')]);
      await replyCount(2);
      expect(replies.map((r) => r.headers[SAGA_HEADERS.outcome])).toEqual(['success', 'failure']);
      expect(replies[1]!.payload).toEqual({ error: expect.stringMatching(/voided/) as unknown });
      expect((await apps.authorizations('ord-probe-late')).map((a) => a.status)).toEqual([
        'tombstone',
      ]);
    } finally {
      await sub.unsubscribe();
    }
  }, 30_000);

  it("payment-service's own refund saga still runs (in its payment_sage schema)", async () => {
    const res = await fetch(`${apps.paymentUrl}/refunds`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refundId: 'rf-1', account: 'alice', amountCents: 700 }),
    });
    expect(res.status).toBe(202);
    const { sagaId } = (await res.json()) as { sagaId: string };
    const deadline = Date.now() + 10_000;
    let status = '';
    while (status !== 'completed' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      const view = await fetch(`${apps.paymentUrl}/refunds/sagas/${sagaId}`);
      status = ((await view.json()) as { status: string }).status;
    }
    expect(status).toBe('completed');
  }, 30_000);

  it('rejects invalid input with 400 and writes nothing', async () => {
    const count = async (): Promise<number> => {
      const [{ n }] = (await apps.orderData.query(
        `SELECT count(*)::int AS n FROM sage.saga_instance`,
      )) as [{ n: number }];
      return n;
    };
    const before = await count();
    const res = await apps.placeOrder(orderBody({ quantity: 0, amountCents: 100 }));
    expect(res.status).toBe(400);
    // The ValidationPipe's answer (PlaceOrderDto); sample-input-validation.e2e-spec.ts has the rest.
    expect(String(((await res.json()) as { message: string[] }).message)).toMatch(
      /quantity must not be less than 1/,
    );
    expect(await count()).toBe(before);
  });

  it('answers 400 for a body nested 5,000 levels deep (no stack overflow, nothing written)', async () => {
    const deep = '['.repeat(5_000) + ']'.repeat(5_000);
    const body = `{"customer":{"id":"cus-bob","name":"Bob","email":"bob@example.com"},"sku":"widget","quantity":1,"amountCents":100,"currency":"EUR","note":${deep}}`;
    const res = await fetch(`${apps.orderUrl}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toMatch(/nested deeper than 8/);
  });

  it('answers 409 when an Idempotency-Key is reused with a different body, 202 with the same one', async () => {
    const key = `idem-${randomUUID()}`;
    const body = orderBody({ amountCents: 100 });
    const first = await apps.placeOrder(body, key);
    expect(first.status).toBe(202);
    const again = await apps.placeOrder(body, key);
    expect(again.status).toBe(202);
    expect(((await again.json()) as { created: boolean }).created).toBe(false);
    const other = await apps.placeOrder({ ...body, quantity: 2 }, key);
    expect(other.status).toBe(409);
    expect(((await other.json()) as { message: string }).message).toMatch(/different input/);
  });

  it('answers 404 for an unknown order', async () => {
    expect((await fetch(`${apps.orderUrl}/orders/ord-nope`)).status).toBe(404);
  });
});
