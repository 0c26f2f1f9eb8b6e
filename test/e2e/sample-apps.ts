/**
 * The two sample services booted as Nest apps in the test process, each on its own test database,
 * HTTP on an ephemeral port, with short timeouts and a fast relay. Shared by the e2e specs.
 */
import 'reflect-metadata';
import type { INestApplication, NestApplicationOptions } from '@nestjs/common';
import {
  encryptionKeys,
  SagaService,
  type Broker,
  type KeyProvider,
  type SagaRecord,
} from '@sage/saga-outbox';
import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { OrderServiceModule } from '../../apps/order-service/src/order-service.module';
import type { OrderView } from '../../apps/order-service/src/orders/order-view';
import { PaymentServiceModule } from '../../apps/payment-service/src/payment-service.module';
import { createSampleApp } from '../../apps/shared/sample-http';
import { sampleTopology, type SampleTopology } from '../../apps/shared/sample-topology';
import { createTestDatabase, type TestDatabase } from '../support/pg';

/**
 * An order as a test sees it: what `GET /orders/:id` answers (the public OrderView), and the saga
 * behind it, read in-process through SagaService (its steps, attempts and errors are not public).
 */
export interface OrderState {
  order: OrderView;
  saga: SagaRecord;
}

export interface AuthorizationView {
  idempotency_key: string;
  authorization_id: string | null;
  status: string;
}

export const databaseUrl = (db: TestDatabase): string => {
  const c = db.connection;
  return `postgres://${encodeURIComponent(c.user)}:${encodeURIComponent(c.password)}@${c.host}:${c.port}/${c.database}`;
};

/** A topology of names no other run uses (topics, queues, subjects, consumer groups). */
export function uniqueTopology(label: string): SampleTopology {
  return sampleTopology(`e2e-${label}-${process.pid}-${randomBytes(3).toString('hex')}`);
}

/** Listens on an ephemeral port; an app that fails to start is closed (its loops would outlive the test). */
async function listen(app: INestApplication): Promise<string> {
  try {
    await app.listen(0, '127.0.0.1');
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }
  return (await app.getUrl()).replace('[::1]', '127.0.0.1');
}

// The apps log JSON through nestjs-pino (a line per HTTP request at info): keep test output to problems.
process.env.LOG_LEVEL ??= process.env.SAGE_TEST_NEST_LOGS ? 'info' : 'warn';
const quiet: NestApplicationOptions = {
  logger: process.env.SAGE_TEST_NEST_LOGS ? ['error', 'warn'] : false,
};

export interface SampleAppsOptions {
  label: string;
  /** Broker URL (each app opens and closes its own client) or one instance both apps share. */
  broker: string | Broker;
  /** Reply timeout of one `payment.authorize` attempt and the attempts. */
  payment: { replyTimeoutMs: number; maxAttempts: number };
  /** How long the services keep an unwrapped data-subject key in memory (ms; default 30 s). */
  subjectKeyCacheMs?: number;
  /** The `order.confirmed` version order-service writes (default its own: 2). */
  orderConfirmedVersion?: 1 | 2;
}

/** order-service and payment-service; payment-service can be stopped and started again. */
export class SampleApps {
  readonly topology: SampleTopology;
  orderDb!: TestDatabase;
  paymentDb!: TestDatabase;
  order!: INestApplication;
  orderUrl!: string;
  payment: INestApplication | undefined;
  paymentUrl: string | undefined;
  /**
   * The master keys both services encrypt personal data with (a random key per run); their
   * data-subject keys live in order-service's database, which payment-service reads too.
   */
  readonly encryptionKeys: KeyProvider = encryptionKeys({
    active: 'e2e',
    keys: { e2e: randomBytes(32) },
  });

  constructor(private readonly options: SampleAppsOptions) {
    this.topology = uniqueTopology(options.label);
  }

  async start(): Promise<void> {
    // Empty databases: each app's own migrations (Sage's + its business tables) create its schemas.
    [this.orderDb, this.paymentDb] = await Promise.all([
      createTestDatabase({ migrated: false }),
      createTestDatabase({ migrated: false }),
    ]);
    await this.startPayment();
    await this.startOrder();
  }

  /** order-service on its database (again, after `restartOrder`). */
  private async startOrder(): Promise<void> {
    // As main.ts creates them (createSampleApp): no X-Powered-By, bounded bodies.
    this.order = await createSampleApp(
      OrderServiceModule.register({
        databaseUrl: databaseUrl(this.orderDb),
        broker: this.options.broker,
        topology: this.topology,
        payment: this.options.payment,
        saga: { recoveryIntervalMs: 100 },
        outbox: { relay: { pollIntervalMs: 50 } },
        encryption: {
          keys: this.encryptionKeys,
          subjectKeyCacheMs: this.options.subjectKeyCacheMs,
        },
        orderConfirmedVersion: this.options.orderConfirmedVersion,
      }),
      quiet,
    );
    this.orderUrl = await listen(this.order);
  }

  /** Stops order-service and starts it again on the same database, with `changes` (a redeploy). */
  async restartOrder(changes: Pick<SampleAppsOptions, 'orderConfirmedVersion'>): Promise<void> {
    await this.order.close();
    Object.assign(this.options, changes);
    await this.startOrder();
  }

  async startPayment(): Promise<void> {
    if (this.payment) return;
    const app = await createSampleApp(
      PaymentServiceModule.register({
        databaseUrl: databaseUrl(this.paymentDb),
        broker: this.options.broker,
        topology: this.topology,
        outbox: { relay: { pollIntervalMs: 50 } },
        encryption: {
          keys: this.encryptionKeys,
          subjectKeyCacheMs: this.options.subjectKeyCacheMs,
          subjectKeysDatabaseUrl: databaseUrl(this.orderDb),
        },
      }),
      quiet,
    );
    this.paymentUrl = await listen(app);
    this.payment = app;
  }

  async stopPayment(): Promise<void> {
    const app = this.payment;
    this.payment = undefined;
    this.paymentUrl = undefined;
    await app?.close();
  }

  async stop(): Promise<void> {
    await this.order?.close();
    await this.stopPayment();
    await Promise.all([this.orderDb?.drop(), this.paymentDb?.drop()]);
  }

  get orderData(): DataSource {
    return this.order.get(DataSource);
  }

  placeOrder(body: unknown, key?: string): Promise<Response> {
    return fetch(`${this.orderUrl}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
      body: JSON.stringify(body),
    });
  }

  /** `GET /orders/:id`: its status and its body (the OrderView, or the error). */
  async orderView(orderId: string): Promise<{ status: number; body: unknown }> {
    const res = await fetch(`${this.orderUrl}/orders/${orderId}`);
    return { status: res.status, body: await res.json() };
  }

  /** The order's saga (read first) and then its view, so the view is never older than the saga. */
  async view(orderId: string): Promise<OrderState | undefined> {
    const saga = await this.order.get(SagaService).findByKey('order-placement', orderId);
    if (!saga) return undefined;
    const { status, body } = await this.orderView(orderId);
    return status === 200 ? { order: body as OrderView, saga } : undefined;
  }

  /** Polls the order until `done` holds (or `timeoutMs` passes: the last state is in the error). */
  async until(
    orderId: string,
    done: (view: OrderState) => boolean,
    timeoutMs = 20_000,
  ): Promise<OrderState> {
    const deadline = Date.now() + timeoutMs;
    let last: OrderState | undefined;
    for (;;) {
      last = await this.view(orderId);
      if (last && done(last)) return last;
      if (Date.now() > deadline)
        throw new Error(
          `order ${orderId}: condition not met in ${timeoutMs} ms; last view ${JSON.stringify(last)}`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  settled(orderId: string, timeoutMs?: number): Promise<OrderState> {
    return this.until(
      orderId,
      (v) => ['completed', 'compensated', 'failed'].includes(v.saga.status),
      timeoutMs,
    );
  }

  /** payment-service's authorization rows of an order (read from its database directly: it may be down). */
  async authorizations(orderId: string): Promise<AuthorizationView[]> {
    const ds = new DataSource({ type: 'postgres', url: databaseUrl(this.paymentDb) });
    await ds.initialize();
    try {
      return (await ds.query(
        `SELECT idempotency_key, authorization_id, status FROM payments.card_authorization WHERE order_id = $1 ORDER BY created_at`,
        [orderId],
      )) as AuthorizationView[];
    } finally {
      await ds.destroy();
    }
  }

  /** Commands payment-service took from the broker (its inbox), for its consumer. */
  async paymentCommandsReceived(): Promise<number> {
    const ds = new DataSource({ type: 'postgres', url: databaseUrl(this.paymentDb) });
    await ds.initialize();
    try {
      const [row] = (await ds.query(
        `SELECT count(*)::int AS n FROM payment_sage.inbox_message WHERE consumer = $1`,
        [this.topology.paymentConsumer],
      )) as { n: number }[];
      return row?.n ?? 0;
    } finally {
      await ds.destroy();
    }
  }
}

export function stepOf(view: OrderState, name: string): SagaRecord['steps'][number] {
  const step = view.saga.steps.find((s) => s.name === name);
  if (!step) throw new Error(`step ${name} missing in ${JSON.stringify(view.saga)}`);
  return step;
}

/** A card as the payment provider's client-side tokenisation returns it (accepted by payment-service). */
export const VISA = { token: 'tok_visa', last4: '4242' };
/** A token payment-service declines (sample convention: `tok_declined...`). */
export const DECLINED_CARD = { token: 'tok_declined_insufficient_funds', last4: '0002' };

/** A valid `POST /orders` body: a widget, paid by VISA, with `fields` replacing the defaults. */
export function orderBody(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    customer: { id: 'cus-alice', name: 'Alice', email: 'alice@example.com' },
    sku: 'widget',
    quantity: 1,
    amountCents: 1_000,
    currency: 'EUR',
    paymentMethod: VISA,
    ...fields,
  };
}
