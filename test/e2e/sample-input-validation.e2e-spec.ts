/**
 * The sample services' HTTP input, as a reviewer would probe it: every bad body or header is
 * answered 4xx (never 500), names what is wrong without echoing it, and writes nothing; an
 * Idempotency-Key or refundId reused with another body is a 409; no response says X-Powered-By.
 */
import { InMemoryBroker } from '@sage/saga-outbox';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { databaseUrl, orderBody, SampleApps } from './sample-apps';

const order = orderBody({ amountCents: 500 });

describe('sample services: input validation and hardening', () => {
  const apps = new SampleApps({
    label: 'input',
    broker: new InMemoryBroker(),
    payment: { replyTimeoutMs: 10_000, maxAttempts: 2 },
  });
  let paymentData: DataSource;

  beforeAll(async () => {
    await apps.start();
    await apps.orderData.query(`INSERT INTO orders.stock (sku, available) VALUES ('widget', 100)`);
    paymentData = new DataSource({ type: 'postgres', url: databaseUrl(apps.paymentDb) });
    await paymentData.initialize();
  }, 60_000);

  afterAll(async () => {
    await paymentData?.destroy();
    await apps.stop();
  }, 30_000);

  /** Rows a request could have written, in both services. */
  const written = async (): Promise<number[]> => {
    const count = async (ds: DataSource, table: string) =>
      ((await ds.query(`SELECT count(*)::int AS n FROM ${table}`)) as [{ n: number }])[0].n;
    return [
      await count(apps.orderData, 'sage.saga_instance'),
      await count(apps.orderData, 'orders.customer_order'),
      await count(apps.orderData, 'sage.outbox_message'),
      await count(paymentData, 'payment_sage.saga_instance'),
      await count(paymentData, 'payments.refund'),
    ];
  };

  const post = (url: string, body: string, headers: Record<string, string> = {}) =>
    fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });

  const badOrders: [label: string, status: number, body: string, message: RegExp][] = [
    [
      'an unknown field',
      400,
      JSON.stringify({ ...order, isAdmin: true }),
      /property isAdmin should not exist/,
    ],
    [
      'a number sent as a string',
      400,
      JSON.stringify({ ...order, quantity: '2' }),
      /quantity must be an integer/,
    ],
    [
      'a missing field',
      400,
      JSON.stringify({ ...order, paymentMethod: undefined }),
      /paymentMethod should not be null or undefined/,
    ],
    [
      'a string too long',
      400,
      JSON.stringify({ ...order, customer: { id: 'c-1', name: 'x'.repeat(101), email: 'a@b.co' } }),
      /customer.name must be shorter than or equal to 100 characters/,
    ],
    [
      'an unknown nested field',
      400,
      JSON.stringify({ ...order, customer: { id: 'c-1', name: 'X', email: 'a@b.co', vip: true } }),
      /customer.property vip should not exist/,
    ],
    [
      'a card token of the wrong shape',
      400,
      JSON.stringify({ ...order, paymentMethod: { token: 'card-xxxxxxxxxx', last4: '4242' } }),
      /paymentMethod.token must be a card token/,
    ],
    [
      'a quantity out of bounds',
      400,
      JSON.stringify({ ...order, quantity: 0 }),
      /quantity must not be less than 1/,
    ],
    ['an array body', 400, JSON.stringify([order]), /must be/],
    ['a JSON string body', 400, JSON.stringify('order'), /./],
    ['malformed JSON', 400, '{"customer":', /./],
    [
      'an object nested 9 levels deep',
      400,
      JSON.stringify({ ...order, sku: JSON.parse('{"a":'.repeat(8) + '1' + '}'.repeat(8)) }),
      /nested deeper than 8 levels/,
    ],
    [
      'an array nested 5,000 levels deep',
      400,
      `{"customer":${'['.repeat(5000)}${']'.repeat(5000)}}`,
      /nested deeper than 8 levels/,
    ],
    ['a body over 16 kB', 413, JSON.stringify({ ...order, sku: 'x'.repeat(20_000) }), /too large/i],
  ];

  it.each(badOrders)(
    'POST /orders with %s: %d, and nothing written',
    async (_label, status, body, message) => {
      const before = await written();
      const res = await post(`${apps.orderUrl}/orders`, body, { 'idempotency-key': randomUUID() });
      expect(res.status).toBe(status);
      const answer = (await res.json()) as { message: string | string[] };
      expect(String(answer.message)).toMatch(message);
      // The offending value is not echoed back.
      expect(JSON.stringify(answer)).not.toContain('xxxxxxxxxx');
      expect(await written()).toEqual(before);
    },
  );

  it.each([
    ['129 characters', 'k'.repeat(129)],
    ['a slash', 'a/b'],
    ['a space', 'a b'],
  ])(
    'POST /orders with an Idempotency-Key of %s: 400, and nothing written',
    async (_label, key) => {
      const before = await written();
      const res = await post(`${apps.orderUrl}/orders`, JSON.stringify(order), {
        'idempotency-key': key,
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { message: string }).message).toMatch(
        /Idempotency-Key header must be 1 to 128 characters/,
      );
      expect(await written()).toEqual(before);
    },
  );

  it('POST /orders with an Idempotency-Key reused with another body: 409, and only the first order written', async () => {
    const key = `reuse-${randomUUID()}`;
    const before = await written();
    const first = await post(`${apps.orderUrl}/orders`, JSON.stringify(order), {
      'idempotency-key': key,
    });
    expect(first.status).toBe(202);
    const { orderId } = (await first.json()) as { orderId: string };
    await apps.settled(orderId);
    const afterFirst = await written();
    const other = await post(`${apps.orderUrl}/orders`, JSON.stringify({ ...order, quantity: 3 }), {
      'idempotency-key': key,
    });
    expect(other.status).toBe(409);
    expect(await other.json()).toMatchObject({ code: 'SAGA_IDEMPOTENCY_CONFLICT' });
    expect(await written()).toEqual(afterFirst);
    expect(afterFirst[0]).toBe(before[0]! + 1);
  }, 30_000);

  const refund = { refundId: 'rf-valid', account: 'alice', amountCents: 300 };
  const badRefunds: [label: string, body: object, message: RegExp][] = [
    ['no refundId', { account: 'alice', amountCents: 300 }, /refundId must be 1 to 64 characters/],
    [
      'an unknown field',
      { ...refund, refundId: 'rf-x', currency: 'EUR' },
      /property currency should not exist/,
    ],
    ['a refundId too long', { ...refund, refundId: 'r'.repeat(65) }, /refundId must be 1 to 64/],
    [
      'a negative amount',
      { ...refund, refundId: 'rf-y', amountCents: -5 },
      /amountCents must not be less than 1/,
    ],
    [
      'an amount as a string',
      { ...refund, refundId: 'rf-z', amountCents: '300' },
      /amountCents must be an integer/,
    ],
  ];

  it.each(badRefunds)(
    'POST /refunds with %s: 400, and nothing written',
    async (_label, body, message) => {
      const before = await written();
      const res = await post(`${apps.paymentUrl}/refunds`, JSON.stringify(body));
      expect(res.status).toBe(400);
      expect(String(((await res.json()) as { message: string[] }).message)).toMatch(message);
      expect(await written()).toEqual(before);
    },
  );

  it('POST /refunds with a refundId reused with another amount: 409', async () => {
    const refundId = `rf-${randomUUID()}`;
    const first = await post(`${apps.paymentUrl}/refunds`, JSON.stringify({ ...refund, refundId }));
    expect(first.status).toBe(202);
    const again = await post(
      `${apps.paymentUrl}/refunds`,
      JSON.stringify({ ...refund, refundId, amountCents: 99_999 }),
    );
    expect(again.status).toBe(409);
    expect(await again.json()).toMatchObject({ code: 'SAGA_IDEMPOTENCY_CONFLICT' });
  });

  it('says X-Powered-By on no response: success, client error, not found, health', async () => {
    const responses = await Promise.all([
      post(`${apps.orderUrl}/orders`, JSON.stringify(order), { 'idempotency-key': randomUUID() }),
      post(`${apps.orderUrl}/orders`, '{}'),
      fetch(`${apps.orderUrl}/orders/ord-nope`),
      fetch(`${apps.orderUrl}/health/live`),
      fetch(`${apps.orderUrl}/metrics`),
      fetch(`${apps.paymentUrl}/authorizations/ord-nope`),
      post(`${apps.paymentUrl}/refunds`, '[]'),
    ]);
    expect(responses.map((r) => r.status)).toEqual([202, 400, 404, 200, 200, 200, 400]);
    for (const res of responses) expect(res.headers.get('x-powered-by')).toBeNull();
  });
});
