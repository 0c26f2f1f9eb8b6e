/**
 * `npm run demo`: order-service and payment-service in one process, each on its own embedded
 * PGlite database (and its own schemas), sharing one in-memory broker (no servers). The
 * order-placement saga authorizes payments remotely: a `payment.authorize` command through
 * order-service's outbox, payment-service handles it once (its inbox) and replies through its own
 * outbox. Several orders complete, two fail and are compensated (a `payment.void` command undoes a
 * remote authorization), and one is interrupted by a kill -9 of the worker running it and resumed by
 * another worker. Prints a per-saga trace and a summary.
 */
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import {
  encryptionKeys,
  InMemoryBroker,
  SagaService,
  type SagaEvent,
  type SagaRecord,
} from '@sage/saga-outbox';
import { startEmbeddedPostgres } from '@sage/saga-outbox/embedded';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { PaymentServiceModule } from '../../../payment-service/src/payment-service.module';
import { OrderServiceModule } from '../order-service.module';
import type { PlaceOrderInput } from '../orders/order.types';
import { DEMO_ORDER_SERVICE, DEMO_WORKER_LEASE_MS } from './demo-settings';

const c = process.stdout.isTTY
  ? {
      dim: '\x1b[2m',
      bold: '\x1b[1m',
      green: '\x1b[32m',
      yellow: '\x1b[33m',
      red: '\x1b[31m',
      cyan: '\x1b[36m',
      reset: '\x1b[0m',
    }
  : { dim: '', bold: '', green: '', yellow: '', red: '', cyan: '', reset: '' };

const orders: (PlaceOrderInput & { story: string })[] = [
  {
    orderId: 'ord-1001',
    customer: { id: 'cus-alice', name: 'Alice', email: 'alice@example.com' },
    sku: 'widget',
    quantity: 2,
    amountCents: 2_400,
    currency: 'EUR',
    paymentMethod: { token: 'tok_visa', last4: '4242' },
    story: 'happy path',
  },
  {
    orderId: 'ord-1002',
    customer: { id: 'cus-bob', name: 'Bob', email: 'bob@example.com' },
    sku: 'widget',
    quantity: 1,
    amountCents: 1_200,
    currency: 'EUR',
    paymentMethod: { token: 'tok_mastercard', last4: '4444' },
    story: 'happy path',
  },
  {
    orderId: 'ord-1003',
    customer: { id: 'cus-carol', name: 'Carol', email: 'carol@example.com' },
    sku: 'gadget',
    quantity: 1,
    amountCents: 9_900,
    currency: 'EUR',
    paymentMethod: { token: 'tok_visa', last4: '4242' },
    story: 'takes the last gadget',
  },
  {
    orderId: 'ord-1004',
    customer: { id: 'cus-dave', name: 'Dave', email: 'dave@example.com' },
    sku: 'gadget',
    quantity: 1,
    amountCents: 9_900,
    currency: 'EUR',
    paymentMethod: { token: 'tok_visa', last4: '4242' },
    story: 'gadget out of stock → compensate',
  },
  {
    orderId: 'ord-1005',
    customer: { id: 'cus-erin', name: 'Erin', email: 'erin@example.com' },
    sku: 'widget',
    quantity: 1,
    amountCents: 1_200,
    currency: 'EUR',
    paymentMethod: { token: 'tok_declined_insufficient_funds', last4: '0002' },
    story: 'card declined → compensate',
  },
  {
    orderId: 'ord-1006',
    customer: { id: 'cus-frank', name: 'Frank', email: 'frank@example.com' },
    sku: 'widget',
    quantity: 3,
    amountCents: 3_600,
    currency: 'EUR',
    paymentMethod: { token: 'tok_visa', last4: '4242' },
    story: 'happy path',
  },
];
const crashed: PlaceOrderInput & { story: string } = {
  orderId: 'ord-1007',
  customer: { id: 'cus-grace', name: 'Grace', email: 'grace@example.com' },
  sku: 'widget',
  quantity: 1,
  amountCents: 1_200,
  currency: 'EUR',
  paymentMethod: { token: 'tok_visa', last4: '4242' },
  story: 'worker killed -9 mid-saga → resumed by another worker',
};

async function main(): Promise<void> {
  const t0 = Date.now();
  console.log(
    `${c.bold}Sage demo${c.reset}: order-service + payment-service on embedded PGlite and an in-memory broker\n`,
  );
  console.log(
    `${c.dim}  create-order ─┬─ reserve-stock ────────────────┬─ confirm-order (pivot) ── record-confirmation`,
  );
  console.log(
    `                └─ authorize-payment (remote) ───┘   ⇄ payment.authorize / payment.void → payment-service${c.reset}\n`,
  );

  // One embedded database per service, as deployed (each also in its own schemas).
  const db = await startEmbeddedPostgres({ maxConnections: 16 });
  const paymentDb = await startEmbeddedPostgres({ maxConnections: 12 });
  // Personal data (names, e-mails, card tokens) is encrypted per customer in the saga input, the
  // outbox and on the broker. An ephemeral master key, shared by the three workers (crash-worker.ts
  // gets it through SAGE_ENCRYPTION_KEYS); data-subject keys live in order-service's database,
  // which payment-service reads too.
  const masterKey = randomBytes(32);
  const encryption = { keys: encryptionKeys({ active: 'demo', keys: { demo: masterKey } }) };
  console.log(
    `${c.dim}personal data encrypted per customer with an ephemeral key (gone when the demo ends)${c.reset}\n`,
  );
  // Both services' relays publish here (commands, replies, order.confirmed); the demo also
  // subscribes to order.confirmed like a downstream service would.
  const broker = new InMemoryBroker();
  const delivered = new Map<string, string>();
  await broker.subscribe('orders', (m) => {
    delivered.set(m.id, (m.payload as { orderId: string }).orderId);
    return Promise.resolve();
  });
  // payment-service: Sage tables in payment_sage, business tables in payments.
  const payments = await NestFactory.createApplicationContext(
    PaymentServiceModule.register({
      broker,
      databaseUrl: paymentDb.url,
      outbox: DEMO_ORDER_SERVICE.outbox,
      encryption: { ...encryption, subjectKeysDatabaseUrl: db.url },
    }),
    { logger: ['error'] },
  );
  // order-service worker B: Sage tables in sage, business tables in orders.
  const app = await NestFactory.createApplicationContext(
    OrderServiceModule.register({
      ...DEMO_ORDER_SERVICE,
      broker,
      databaseUrl: db.url,
      http: false,
      saga: { leaseMs: DEMO_WORKER_LEASE_MS, recoveryIntervalMs: 200, ownerId: 'demo-worker-B' },
      encryption,
    }),
    { logger: ['error'] },
  );
  const sagas = app.get(SagaService);
  const ds = app.get(DataSource);
  const events = new Map<string, SagaEvent[]>();
  sagas.onEvent((e) => events.set(e.sagaId, [...(events.get(e.sagaId) ?? []), e]));

  await ds.query(`INSERT INTO orders.stock (sku, available) VALUES ('widget', 10), ('gadget', 1)`);
  console.log(`${c.dim}stock: widget=10 gadget=1${c.reset}\n`);

  const results: { order: (typeof orders)[number]; saga: SagaRecord }[] = [];
  for (const order of orders) {
    const { story: _story, ...input } = order;
    const { sagaId } = await sagas.start('order-placement', input, {
      idempotencyKey: order.orderId,
    });
    const saga = await sagas.waitFor(sagaId, { timeoutMs: 30_000 });
    results.push({ order, saga });
    printTrace(order, saga, events.get(sagaId) ?? []);
  }

  // Worker A (a child process) starts ord-1007 and freezes as reserve-stock starts; we kill -9 it.
  const { story: _story, ...crashInput } = crashed;
  const child = spawn(
    process.execPath,
    [...process.execArgv, join(__dirname, 'crash-worker.ts'), db.url, JSON.stringify(crashInput)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, SAGE_ENCRYPTION_KEYS: `demo=${masterKey.toString('base64')}` },
    },
  );
  const sagaId = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`crash worker exited early (${code})`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const msg = JSON.parse(line) as { stepStarted?: string; sagaId?: string };
        if (msg.stepStarted && msg.sagaId) resolve(msg.sagaId);
      } catch {
        /* not ours */
      }
    });
  });
  child.removeAllListeners('exit');
  child.kill('SIGKILL');
  console.log(
    `${c.yellow}⚡ worker A (pid ${child.pid}) was running ord-1007 (reserve-stock under way): kill -9${c.reset}`,
  );
  const before = await sagas.get(sagaId);
  console.log(
    `${c.dim}   saga ${sagaId} left ${before.status}, owner ${before.owner}, steps: ${before.steps.map((s) => `${s.name}=${s.status}`).join(' ')}${c.reset}`,
  );
  console.log(`${c.dim}   worker B claims it once the lease expires...${c.reset}`);
  const resumed = await sagas.waitFor(sagaId, { timeoutMs: 30_000 });
  results.push({ order: crashed, saga: resumed });
  printTrace(crashed, resumed, events.get(sagaId) ?? []);

  // Summary, and the proof that every local effect happened exactly once.
  const effects: { effect: string; n: string }[] = await ds.query(
    `SELECT effect, count(*) AS n FROM orders.effect_log GROUP BY effect ORDER BY effect`,
  );
  const perOrder: { order_id: string; effect: string; n: string }[] = await ds.query(
    `SELECT order_id, effect, count(*) AS n FROM orders.effect_log GROUP BY order_id, effect HAVING count(*) > 1`,
  );
  const stock: { sku: string; available: number }[] = await ds.query(
    `SELECT sku, available FROM orders.stock ORDER BY sku`,
  );
  // payment-service's side: one authorization per authorize command (idempotency key), whatever
  // the resends; completed orders authorized, compensated ones declined or voided.
  const authorizations: { order_id: string; status: string; n: string }[] = await payments
    .get(DataSource)
    .query(
      `SELECT order_id, status, count(*) AS n FROM payments.card_authorization GROUP BY order_id, status ORDER BY order_id`,
    );
  const paymentsOk = results.every((r) => {
    const rows = authorizations.filter((a) => a.order_id === r.order.orderId);
    const expected =
      r.saga.status === 'completed' ? ['authorized'] : ['declined', 'voided', 'tombstone'];
    return rows.length === 1 && rows[0]!.n === '1' && expected.includes(rows[0]!.status);
  });
  const byStatus = new Map<string, number>();
  for (const r of results) byStatus.set(r.saga.status, (byStatus.get(r.saga.status) ?? 0) + 1);

  console.log(
    `\n${c.bold}Summary${c.reset} (${results.length} sagas in ${((Date.now() - t0) / 1000).toFixed(1)} s)`,
  );
  for (const [status, n] of byStatus)
    console.log(`  ${colour(status)}${status.padEnd(12)}${c.reset} ${n}`);
  console.log(`  effects:     ${effects.map((e) => `${e.effect}×${e.n}`).join(', ')}`);
  console.log(
    `  payments:    ${authorizations.map((a) => `${a.order_id}=${a.status}`).join(' ')}  (payment-service)`,
  );
  console.log(
    `  stock now:   ${stock.map((s) => `${s.sku}=${s.available}`).join(' ')}  (widget: 10 − 2 − 1 − 3 − 1 = 3; gadget: 1 − 1 = 0)`,
  );
  // The relay polls on PGlite (NOTIFY does not cross its socket): give it a moment to drain.
  const expectedEvents = results.filter((r) => r.saga.status === 'completed').length;
  for (let i = 0; i < 100 && delivered.size < expectedEvents; i++)
    await new Promise((r) => setTimeout(r, 50));
  console.log(
    `  outbox:      ${delivered.size} order.confirmed events relayed to the broker (${[...delivered.values()].join(', ')})`,
  );
  const ok =
    delivered.size === expectedEvents &&
    perOrder.length === 0 &&
    paymentsOk &&
    results.every((r) => ['completed', 'compensated'].includes(r.saga.status));
  console.log(
    ok
      ? `  ${c.green}✓ every saga terminal, every local effect exactly once, one authorization per order${c.reset}`
      : `  ${c.red}✗ duplicated effects: ${JSON.stringify(perOrder)}; payments as expected: ${paymentsOk}; events ${delivered.size}/${expectedEvents}${c.reset}`,
  );

  await app.close();
  await payments.close();
  await paymentDb.stop();
  await db.stop();
  process.exitCode = ok ? 0 : 1;
}

function printTrace(
  order: { orderId: string; customer: { id: string }; story: string },
  saga: SagaRecord,
  events: SagaEvent[],
): void {
  const ms = (saga.updatedAt.getTime() - saga.createdAt.getTime()).toFixed(0);
  console.log(
    `${c.bold}${order.orderId}${c.reset} ${c.dim}(${order.customer.id}: ${order.story})${c.reset}  saga ${c.dim}${saga.id}${c.reset}  ${colour(saga.status)}${saga.status.toUpperCase()}${c.reset} ${c.dim}${ms} ms${c.reset}`,
  );
  const t0 = saga.createdAt.getTime();
  let awaiting = false;
  for (const e of events) {
    const at = `${c.dim}+${String(Math.max(0, e.at - t0)).padStart(5)} ms${c.reset}`;
    switch (e.type) {
      case 'saga.resumed':
        console.log(
          awaiting
            ? `   ${at}  ${c.cyan}←${c.reset} payment-service replied: saga resumed`
            : `   ${at}  ${c.yellow}↻ resumed by this worker (completed steps are not re-run)${c.reset}`,
        );
        awaiting = false;
        break;
      case 'saga.waiting':
        awaiting = true;
        break;
      case 'step.completed':
        console.log(
          `   ${at}  ${c.green}✓${c.reset} ${e.step} ${c.dim}(attempt ${e.attempt}, ${e.durationMs} ms)${c.reset}`,
        );
        break;
      case 'step.retrying':
        console.log(
          `   ${at}  ${c.yellow}↻${c.reset} ${e.step} attempt ${e.attempt} failed: ${e.error}; retry in ${e.delayMs} ms`,
        );
        break;
      case 'step.waiting':
        console.log(
          `   ${at}  ${c.cyan}→${c.reset} ${e.step}${e.phase === 'compensate' ? ' (undo)' : ''}: command sent to payment-service, awaiting its reply`,
        );
        break;
      case 'step.failed':
        console.log(`   ${at}  ${c.red}✗${c.reset} ${e.step} failed: ${e.error}`);
        break;
      case 'saga.compensating':
        console.log(`   ${at}  ${c.yellow}⟲ compensating${c.reset}`);
        break;
      case 'compensation.completed':
        console.log(`   ${at}  ${c.cyan}⟲${c.reset} undo ${e.step}`);
        break;
      case 'compensation.failed':
        console.log(`   ${at}  ${c.red}✗ undo ${e.step} failed: ${e.error}${c.reset}`);
        break;
      default:
        break;
    }
  }
  if (saga.error) console.log(`   ${c.dim}reason: ${saga.error}${c.reset}`);
  console.log('');
}

function colour(status: string): string {
  return status === 'completed' ? c.green : status === 'compensated' ? c.yellow : c.red;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
