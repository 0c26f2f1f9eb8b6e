/**
 * Card data never enters order-service: a request carrying a card number, under any field, is
 * refused with 400 before anything is stored; the saga's own validator refuses one from any other
 * caller; and after orders have run (confirmed, declined), no row of either service's database
 * holds anything shaped like a card number: saga input, steps, outbox, inbox, business tables.
 */
import { InMemoryBroker, SagaInputInvalidError, SagaService } from '@sage/saga-outbox';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { allRows } from './database-dump';
import { databaseUrl, DECLINED_CARD, orderBody, SampleApps, VISA } from './sample-apps';

/** Test card numbers (the providers' published test PANs), as a careless client would send them. */
const PAN = '4242424242424242';
const SPACED_PAN = '4000 0000 0000 0002';

/** 13 to 19 digits, run together or grouped by spaces or dashes: what a card number looks like. */
const PAN_LIKE = /(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)/;
/** Every card number a request of this spec carries, as sent and as bare digits. */
const SENT_PANS = [PAN, SPACED_PAN, SPACED_PAN.replace(/ /g, '')];
const UUID_TEXT = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const SEALED_BASE64 = /"(?:iv|ct|wrapped)": "[A-Za-z0-9+/=]*"/g;
const AUTHORIZATION_ID = /auth-[A-Za-z0-9-]+/g;
/** SHA-256 digests and other hex strings (input fingerprints, audit hashes): 13 digits in a row are common in them. */
const HEX_DIGEST = /(?<![0-9A-Za-z])[0-9a-f]{32,}(?![0-9A-Za-z])/g;

describe('order-service: card data never stored', () => {
  const apps = new SampleApps({
    label: 'card',
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

  /**
   * Rows of either database that contain a card number this spec sent, or anything else shaped like
   * one, once what is made of digits by construction is taken out: UUIDs (saga and message ids, whose
   * hex groups can be all digits), hex digests (the saga's input fingerprint), the base64 of encrypted
   * values and the sample's `auth-…` ids.
   */
  const panLikeRows = async (): Promise<string[]> => {
    const found: string[] = [];
    for (const ds of [apps.orderData, paymentData])
      for (const [table, rows] of await allRows(ds))
        for (const row of rows) {
          const text = row
            .replace(UUID_TEXT, '<uuid>')
            .replace(SEALED_BASE64, '"<base64>"')
            .replace(AUTHORIZATION_ID, '<auth>')
            .replace(HEX_DIGEST, '<hex>');
          if (SENT_PANS.some((pan) => row.includes(pan)) || PAN_LIKE.test(text))
            found.push(`${table}: ${row}`);
        }
    return found;
  };

  const counts = async (): Promise<number[]> => {
    const count = async (ds: DataSource, table: string) =>
      ((await ds.query(`SELECT count(*)::int AS n FROM ${table}`)) as [{ n: number }])[0].n;
    return [
      await count(apps.orderData, 'sage.saga_instance'),
      await count(apps.orderData, 'sage.outbox_message'),
      await count(apps.orderData, 'orders.customer_order'),
      await count(paymentData, 'payment_sage.inbox_message'),
      await count(paymentData, 'payments.card_authorization'),
    ];
  };

  const withCard: [label: string, body: Record<string, unknown>, message: RegExp][] = [
    [
      'a card number beside the token',
      orderBody({ card: PAN }),
      /^card: card numbers are not accepted/,
    ],
    [
      'a card number instead of the token',
      orderBody({ cardNumber: PAN, paymentMethod: undefined }),
      /^cardNumber: card numbers are not accepted/,
    ],
    ['a pan field', orderBody({ pan: PAN }), /^pan: card numbers are not accepted/],
    [
      'the card number inside paymentMethod',
      orderBody({ paymentMethod: { number: PAN, last4: '4242', cvc: '123' } }),
      /^paymentMethod\.number: card numbers are not accepted/,
    ],
    [
      'a card number as the token',
      orderBody({ paymentMethod: { token: `tok_${PAN}`, last4: '4242' } }),
      /^paymentMethod\.token: card numbers are not accepted/,
    ],
    [
      'a spaced card number in the customer name',
      orderBody({ customer: { id: 'cus-x', name: SPACED_PAN, email: 'x@example.com' } }),
      /^customer\.name: card numbers are not accepted/,
    ],
    [
      'a card number in the email',
      orderBody({ customer: { id: 'cus-x', name: 'X', email: `${PAN}@example.com` } }),
      /^customer\.email: card numbers are not accepted/,
    ],
    ['a card number as the sku', orderBody({ sku: PAN }), /^sku: card numbers are not accepted/],
  ];

  it.each(withCard)(
    'POST /orders with %s: 400 naming the field, nothing echoed, nothing stored',
    async (_label, body, message) => {
      const before = await counts();
      const res = await apps.placeOrder(body, `card-${randomUUID()}`);
      expect(res.status).toBe(400);
      const answer = (await res.json()) as { message: string[] };
      expect(answer.message).toEqual(expect.arrayContaining([expect.stringMatching(message)]));
      expect(JSON.stringify(answer)).not.toMatch(PAN_LIKE);
      expect(await counts()).toEqual(before);
    },
  );

  it("the saga's validator refuses a card number from any caller, naming the field, not the value", async () => {
    const sagas = apps.order.get(SagaService);
    const before = await counts();
    const input = {
      orderId: `ord-${randomUUID()}`,
      customer: { id: 'cus-x', name: `card ${PAN}`, email: 'x@example.com' },
      sku: 'widget',
      quantity: 1,
      amountCents: 100,
      currency: 'EUR',
      paymentMethod: VISA,
    };
    const refused = await sagas.start('order-placement', input).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(SagaInputInvalidError);
    expect((refused as Error).message).toMatch(/customer\.name contains a card number/);
    expect((refused as Error).message).not.toMatch(PAN_LIKE);
    expect(await counts()).toEqual(before);
  });

  it('after orders ran (confirmed and declined), no row of either database holds a card number', async () => {
    const placed: string[] = [];
    for (const [key, paymentMethod] of [
      [`ok-${randomUUID()}`, VISA],
      [`declined-${randomUUID()}`, DECLINED_CARD],
    ] as const) {
      const res = await apps.placeOrder(orderBody({ paymentMethod }), key);
      expect(res.status).toBe(202);
      placed.push(((await res.json()) as { orderId: string }).orderId);
    }
    const [confirmed, declined] = await Promise.all(placed.map((id) => apps.settled(id)));
    expect(confirmed!.order.status).toBe('confirmed');
    expect(declined!.order.status).toBe('cancelled');
    // The relay has published order.confirmed and the commands: the outbox rows are all there.
    const [{ n }] = (await apps.orderData.query(
      `SELECT count(*)::int AS n FROM sage.outbox_message WHERE type = 'order.confirmed' AND payload->>'orderId' = $1`,
      [placed[0]],
    )) as [{ n: number }];
    expect(n).toBe(1);

    // The scan sees what it looks for: the last four digits are stored in clear (the card token
    // is encrypted, test/e2e/data-protection.e2e-spec.ts)...
    const orderRows = [...(await allRows(apps.orderData)).values()].flat().join('\n');
    expect(orderRows).toContain('"last4": "4242"');
    expect(orderRows).toContain('"sage:enc": "v1"');
    // ...and nothing shaped like a card number, in any table of either service.
    expect(await panLikeRows()).toEqual([]);
  }, 30_000);
});
