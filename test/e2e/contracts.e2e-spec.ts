/**
 * Message contracts across the two sample services (apps/shared/contracts): order-service writes
 * `order.confirmed` checked against its contract, payment-service's receipts consumer accepts
 * versions 1 and 2 and always handles version 2 (version 1 upcast); what does not match is refused
 * at publish (nothing written) or dead-lettered at the consumer on its first delivery. One
 * in-memory broker shared by the two apps, real PostgreSQL.
 */
import {
  ContractViolationError,
  dataschemaOf,
  InMemoryBroker,
  OutboxRepository,
  type BrokerMessage,
} from '@sage/saga-outbox';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import type { OrderConfirmedV1 } from '../../apps/shared/contracts';
import { databaseUrl, orderBody, SampleApps } from './sample-apps';

interface InboxRow {
  status: string;
  attempts: number;
  last_error: string | null;
}

describe('message contracts between order-service and payment-service', () => {
  const broker = new InMemoryBroker();
  const apps = new SampleApps({
    label: 'contracts',
    broker,
    payment: { replyTimeoutMs: 10_000, maxAttempts: 2 },
  });
  let paymentData: DataSource;

  beforeAll(async () => {
    await apps.start();
    await apps.orderData.query(`INSERT INTO orders.stock (sku, available) VALUES ('widget', 10)`);
    paymentData = new DataSource({ type: 'postgres', url: databaseUrl(apps.paymentDb) });
    await paymentData.initialize();
  }, 60_000);

  afterAll(async () => {
    await paymentData?.destroy();
    await apps.stop();
  }, 30_000);

  const until = async <T>(what: string, probe: () => Promise<T | undefined>): Promise<T> => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const value = await probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const receipt = async (orderId: string) =>
    (
      (await paymentData.query(
        `SELECT order_id, customer_id, authorization_id, amount_minor, currency, card_last4
           FROM payments.order_receipt WHERE order_id = $1`,
        [orderId],
      )) as Record<string, unknown>[]
    )[0];

  const receiptsInbox = async (messageId: string): Promise<InboxRow | undefined> =>
    (
      (await paymentData.query(
        `SELECT status, attempts, last_error FROM payment_sage.inbox_message
          WHERE consumer = $1 AND message_id = $2`,
        [apps.topology.paymentReceiptsConsumer, messageId],
      )) as InboxRow[]
    )[0];

  const published = (type: string, orderId: string): BrokerMessage | undefined =>
    broker.published.find(
      (m) => m.type === type && (m.payload as { orderId?: unknown }).orderId === orderId,
    );

  /** Places an order and waits for its receipt at payment-service. */
  const confirmedOrder = async (amountCents: number) => {
    const res = await apps.placeOrder(orderBody({ amountCents }), `contracts-${randomUUID()}`);
    expect(res.status).toBe(202);
    const { orderId } = (await res.json()) as { orderId: string };
    expect((await apps.settled(orderId)).saga.status).toBe('completed');
    return { orderId, receipt: await until('the receipt', () => receipt(orderId)) };
  };

  it('order.confirmed is written as version 2 and payment-service records its receipt', async () => {
    const { orderId, receipt: row } = await confirmedOrder(1_250);
    const [auth] = await apps.authorizations(orderId);
    expect(row).toEqual({
      order_id: orderId,
      customer_id: 'cus-alice',
      authorization_id: auth!.authorization_id,
      amount_minor: 1_250,
      currency: 'EUR',
      card_last4: '4242',
    });
    // On the wire: version 2 named by ce-dataschema, the v2 shape (name and e-mail encrypted).
    const event = published('order.confirmed', orderId)!;
    expect(event.headers['ce-dataschema']).toBe(dataschemaOf('order.confirmed', 2));
    expect(event.payload).toMatchObject({ total: { amountMinor: 1_250, currency: 'EUR' } });
    expect(event.payload).not.toHaveProperty('amountCents');
    expect(JSON.stringify(event.payload)).not.toContain('alice@example.com');
    // The saga's commands carry their contract version too.
    expect(published('payment.authorize', orderId)!.headers['ce-dataschema']).toBe(
      dataschemaOf('payment.authorize', 1),
    );
  });

  it('an invalid order.confirmed from order-service is refused at publish: nothing is written', async () => {
    const outbox = apps.order.get(OutboxRepository);
    const count = async (): Promise<number> =>
      (
        (await apps.orderData.query(
          `SELECT count(*)::int AS n FROM sage.outbox_message WHERE type = 'order.confirmed'`,
        )) as { n: number }[]
      )[0]!.n;
    const before = await count();
    // A version 1 payload written without naming version 1: checked against version 2, the newest.
    const v1: OrderConfirmedV1 = {
      orderId: 'ord-not-written',
      customer: { id: 'cus-alice', name: 'Alice', email: 'alice@example.com' },
      amountCents: 500,
      currency: 'EUR',
      last4: '4242',
      authorization: 'auth-1',
    };
    const attempt = apps.orderData.transaction(async (manager) => {
      await manager.query(`UPDATE orders.stock SET available = available - 1 WHERE sku = 'widget'`);
      await outbox.publish(
        { destination: apps.topology.orderEvents, type: 'order.confirmed', payload: { ...v1 } },
        { manager },
      );
    });
    await expect(attempt).rejects.toThrow(ContractViolationError);
    await expect(attempt).rejects.toThrow(
      /^Outbox message #0 of type "order.confirmed" does not match its contract \(version 2\): payload .*must have required property 'total'.*Nothing was written/,
    );
    // The message names paths, never values.
    await expect(attempt).rejects.not.toThrow(/alice@example\.com/);
    expect(await count()).toBe(before);
    // The caller's transaction rolled back with it.
    const [{ available }] = (await apps.orderData.query(
      `SELECT available FROM orders.stock WHERE sku = 'widget'`,
    )) as [{ available: number }];
    expect(available).toBe(9);
  });

  it('an invalid order.confirmed put on the broker directly is dead-lettered on its first delivery, never handled', async () => {
    const orderId = `ord-raw-${randomUUID()}`;
    const raw = (
      id: string,
      version: number,
      payload: BrokerMessage['payload'],
    ): BrokerMessage => ({
      id,
      destination: apps.topology.orderEvents,
      key: orderId,
      type: 'order.confirmed',
      payload,
      headers: {
        'ce-source': 'urn:test:rogue-producer',
        'ce-dataschema': dataschemaOf('order.confirmed', version),
      },
      time: new Date(),
    });
    const invalidId = randomUUID();
    const unknownVersionId = randomUUID();
    await broker.publish([
      raw(invalidId, 2, {
        orderId,
        customer: { id: 'cus-alice', name: 'Alice', email: 'not-an-email' },
        total: { amountMinor: -5, currency: 'EUR' },
        last4: '4242',
        authorization: 'auth-1',
      }),
      // A version this consumer was never given a contract for.
      raw(unknownVersionId, 3, { orderId }),
    ]);

    const invalid = await until('the invalid message dead-lettered', () =>
      receiptsInbox(invalidId),
    );
    expect(invalid.status).toBe('dead_letter');
    expect(invalid.attempts).toBe(1);
    expect(invalid.last_error).toMatch(
      /^contract-invalid: "order\.confirmed" does not match its contract \(version 2\): /,
    );
    expect(invalid.last_error).toContain('/customer/email must match format "email"');
    expect(invalid.last_error).toContain('/total/amountMinor must be >= 0');
    expect(invalid.last_error).not.toContain('not-an-email');

    const unknown = await until('the unknown version dead-lettered', () =>
      receiptsInbox(unknownVersionId),
    );
    expect(unknown.status).toBe('dead_letter');
    expect(unknown.attempts).toBe(1);
    expect(unknown.last_error).toMatch(
      /^contract-version-unknown: "order\.confirmed" version 3 is not among the versions this consumer accepts \(v1, v2\)/,
    );
    // The handler never ran for either.
    expect(await receipt(orderId)).toBeUndefined();
  });

  // Last: order-service is redeployed writing version 1.
  it('a version 1 order.confirmed (a producer not yet upgraded) is upcast: the consumer handles version 2', async () => {
    await apps.restartOrder({ orderConfirmedVersion: 1 });
    const { orderId, receipt: row } = await confirmedOrder(777);
    const event = published('order.confirmed', orderId)!;
    expect(event.headers['ce-dataschema']).toBe(dataschemaOf('order.confirmed', 1));
    expect(event.payload).toMatchObject({ amountCents: 777, currency: 'EUR' });
    expect(event.payload).not.toHaveProperty('total');
    // The handler reads `total.amountMinor` (version 2): a receipt with the amount proves the upcast.
    expect(row).toMatchObject({ order_id: orderId, amount_minor: 777, currency: 'EUR' });
    const inbox = await receiptsInbox(event.id);
    expect(inbox).toMatchObject({ status: 'processed', attempts: 1, last_error: null });
  });
});
