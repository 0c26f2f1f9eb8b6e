import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DataSource } from 'typeorm';
import { OrderServiceModule } from '../../apps/order-service/src/order-service.module';
import { createTestDatabase, type TestDatabase } from '../support/pg';

interface SagaView {
  status: string;
  error: string | null;
  steps: { name: string; status: string }[];
}

describe('order-service over HTTP on real PostgreSQL', () => {
  let db: TestDatabase;
  let app: INestApplication;
  let base: string;
  let ds: DataSource;

  beforeAll(async () => {
    // An empty database: the app's own migrations (Sage's + its business tables) create the schema.
    db = await createTestDatabase({ migrated: false });
    const c = db.connection;
    app = await NestFactory.create(
      OrderServiceModule.register({
        databaseUrl: `postgres://${c.user}:${c.password}@${c.host}:${c.port}/${c.database}`,
        saga: { recoveryIntervalMs: 100 },
      }),
      { logger: false },
    );
    await app.listen(0, '127.0.0.1');
    base = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    ds = app.get(DataSource);
    await ds.query(`INSERT INTO orders.stock (sku, available) VALUES ('widget', 5), ('gadget', 0)`);
  });

  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  const post = (body: unknown, key?: string) =>
    fetch(`${base}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
      body: JSON.stringify(body),
    });

  async function settled(orderId: string): Promise<{ order: { status: string }; saga: SagaView }> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const res = await fetch(`${base}/orders/${orderId}`);
      if (res.status === 200) {
        const view = (await res.json()) as { order: { status: string }; saga: SagaView };
        if (['completed', 'compensated', 'failed'].includes(view.saga.status)) return view;
      }
      if (Date.now() > deadline) throw new Error(`order ${orderId} did not settle`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('places an order: the saga completes and the order is confirmed', async () => {
    const res = await post(
      {
        customer: 'alice',
        sku: 'widget',
        quantity: 2,
        amountCents: 2400,
        card: '4242424242424242',
      },
      'e2e-1',
    );
    expect(res.status).toBe(202);
    const { orderId, sagaId, created } = (await res.json()) as {
      orderId: string;
      sagaId: string;
      created: boolean;
    };
    expect(created).toBe(true);
    const view = await settled(orderId);
    expect(view.saga.status).toBe('completed');
    expect(view.order.status).toBe('confirmed');
    expect(view.saga.steps.map((s) => s.status)).toEqual([
      'completed',
      'completed',
      'completed',
      'completed',
      'completed',
    ]);

    // The same request again (client retry) starts nothing new.
    const again = (await (
      await post(
        {
          customer: 'alice',
          sku: 'widget',
          quantity: 2,
          amountCents: 2400,
          card: '4242424242424242',
        },
        'e2e-1',
      )
    ).json()) as {
      sagaId: string;
      created: boolean;
    };
    expect(again).toMatchObject({ sagaId, created: false });
    const [{ available }] = (await ds.query(
      `SELECT available FROM orders.stock WHERE sku = 'widget'`,
    )) as [{ available: number }];
    expect(available).toBe(3);
  });

  it('a declined card compensates: stock released, order cancelled', async () => {
    const res = await post(
      { customer: 'erin', sku: 'widget', quantity: 1, amountCents: 1200, card: '4000000000000002' },
      'e2e-2',
    );
    const { orderId } = (await res.json()) as { orderId: string };
    const view = await settled(orderId);
    expect(view.saga.status).toBe('compensated');
    expect(view.saga.error).toMatch(/authorize-payment.*declined/);
    expect(view.order.status).toBe('cancelled');
    const effects = (await ds.query(
      `SELECT effect FROM orders.effect_log WHERE order_id = $1 ORDER BY id`,
      [orderId],
    )) as { effect: string }[];
    const list = effects.map((e) => e.effect);
    expect(list).toEqual(expect.arrayContaining(['order-created', 'order-cancelled']));
    if (list.includes('stock-reserved')) expect(list).toContain('stock-released');
    const [{ available }] = (await ds.query(
      `SELECT available FROM orders.stock WHERE sku = 'widget'`,
    )) as [{ available: number }];
    expect(available).toBe(3);
  });

  it('rejects invalid input with 400 and writes nothing', async () => {
    const [{ n: before }] = (await ds.query(
      `SELECT count(*)::int AS n FROM sage.saga_instance`,
    )) as [{ n: number }];
    const res = await post({
      customer: 'bob',
      sku: 'widget',
      quantity: 0,
      amountCents: 100,
      card: '4242424242424242',
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toMatch(
      /quantity must be a positive integer/,
    );
    const [{ n: after }] = (await ds.query(
      `SELECT count(*)::int AS n FROM sage.saga_instance`,
    )) as [{ n: number }];
    expect(after).toBe(before);
  });

  it('answers 404 for an unknown order', async () => {
    expect((await fetch(`${base}/orders/ord-nope`)).status).toBe(404);
  });
});
