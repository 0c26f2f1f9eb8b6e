/**
 * What became of the orders, read from the services' databases after the load: every
 * order-placement saga (order-service) and shipment saga (shipping-service), waited for until all
 * are terminal or the drain time is up, and the dead letters of every outbox and inbox.
 *
 * Saga completion is measured by PostgreSQL itself, on one clock: `saga_instance.created_at` is
 * `now()` of the transaction `POST /orders` starts the saga in, `updated_at` the `clock_timestamp()`
 * of the saga's last status change, which for a terminal saga is the one that made it terminal
 * (terminal rows are not updated again). So completion = updated_at − created_at, with neither the
 * HTTP answer nor any polling interval in it; the shipment's end to end is its saga's updated_at
 * minus the order saga's created_at (the same server, so the same clock).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { round, summarise, type LatencySummary } from '../harness/stats';
import { expectedStatusOf, type ExpectedSagaStatus } from './load';
import type { SampleStack, ServiceName } from './stack';

const TERMINAL = new Set(['completed', 'compensated', 'failed']);
/** Each service's Sage schema (as its module configures it). */
const SAGE_SCHEMAS: Record<ServiceName, string> = {
  'order-service': 'sage',
  'payment-service': 'payment_sage',
  'shipping-service': 'shipping_sage',
};

export interface SagaRow {
  key: string;
  status: string;
  created_ms: number;
  updated_ms: number;
}

export interface SagaOutcomes {
  orders: {
    /** order-placement sagas in order-service's database (all of this run's). */
    total: number;
    byStatus: Record<string, number>;
    /** Terminal in the status their request implies (confirmed / declined). */
    asExpected: number;
    /** Terminal, but not in the status their request implies (a few ids). */
    wrongOutcome: string[];
    wrongOutcomeCount: number;
    /** Still running or compensating when the drain time was up. */
    notTerminal: number;
    /** Answered 202 but absent from the database. */
    missing: number;
    /** In the database but never answered (in flight when the load stopped): checked all the same. */
    unanswered: number;
    /** POST's transaction → terminal status, ms; `confirmed` and `declined` apart too. */
    completionMs: LatencySummary;
    confirmedMs: LatencySummary;
    declinedMs: LatencySummary;
    /** Terminal order sagas per second, from the first saga's start to the last one's end. */
    perSec: number;
    spanS: number;
  };
  shipments: {
    /** One per confirmed order. */
    expected: number;
    total: number;
    byStatus: Record<string, number>;
    completed: number;
    /** Confirmed orders without a completed shipment when the drain time was up. */
    notCompleted: number;
    /** Shipments of orders that were not confirmed. */
    unexpected: number;
    /** Order POST's transaction → shipment saga completed, ms. */
    endToEndMs: LatencySummary;
  };
  /** Outbox and inbox rows given up on (dead_letter), per service. */
  deadLetters: Record<ServiceName, number>;
  drainMs: number;
  drained: boolean;
}

async function sagaRows(client: pg.Client, schema: string, name: string): Promise<SagaRow[]> {
  const { rows } = await client.query<SagaRow>(
    `SELECT idempotency_key AS key, status,
            extract(epoch FROM created_at)::float8 * 1000 AS created_ms,
            extract(epoch FROM updated_at)::float8 * 1000 AS updated_ms
     FROM ${schema}.saga_instance WHERE name = $1`,
    [name],
  );
  return rows;
}

async function deadLetters(client: pg.Client, schema: string): Promise<number> {
  const { rows } = await client.query<{ n: number }>(
    `SELECT (SELECT count(*) FROM ${schema}.outbox_message WHERE status = 'dead_letter')::int
          + (SELECT count(*) FROM ${schema}.inbox_message WHERE status = 'dead_letter')::int AS n`,
  );
  return rows[0]?.n ?? 0;
}

function countBy(rows: readonly SagaRow[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rows) out[r.status] = (out[r.status] ?? 0) + 1;
  return out;
}

function latencies(values: number[]): LatencySummary {
  return summarise(Float64Array.from(values));
}

/** Whether every order saga and every confirmed order's shipment saga is terminal. */
function settled(orders: readonly SagaRow[], shipments: readonly SagaRow[]): boolean {
  if (orders.some((o) => !TERMINAL.has(o.status))) return false;
  const confirmed = orders.filter((o) => o.status === 'completed').length;
  return shipments.filter((s) => TERMINAL.has(s.status)).length >= confirmed;
}

/**
 * Waits (polling once a second) until every saga of the run is terminal or `drainTimeoutMs` has
 * passed, then reads the outcomes against what the requests expected.
 */
export async function collectOutcomes(
  stack: SampleStack,
  accepted: ReadonlyMap<string, ExpectedSagaStatus>,
  drainTimeoutMs: number,
  say: (line: string) => void,
): Promise<SagaOutcomes> {
  const read = async (): Promise<{ orders: SagaRow[]; shipments: SagaRow[] }> => ({
    orders: await stack.onDatabase('order-service', (c) =>
      sagaRows(c, SAGE_SCHEMAS['order-service'], 'order-placement'),
    ),
    shipments: await stack.onDatabase('shipping-service', (c) =>
      sagaRows(c, SAGE_SCHEMAS['shipping-service'], 'shipment'),
    ),
  });
  const started = Date.now();
  let state = await read();
  let lastSay = started;
  while (!settled(state.orders, state.shipments) && Date.now() - started < drainTimeoutMs) {
    if (Date.now() - lastSay >= 10_000) {
      lastSay = Date.now();
      say(
        `drain: ${state.orders.filter((o) => !TERMINAL.has(o.status)).length} order sagas still running, ${state.shipments.length} shipments`,
      );
    }
    await sleep(1_000);
    state = await read();
  }
  const drainMs = Date.now() - started;
  const drained = settled(state.orders, state.shipments);
  const dead = {} as Record<ServiceName, number>;
  for (const service of Object.keys(SAGE_SCHEMAS) as ServiceName[])
    dead[service] = await stack.onDatabase(service, (c) => deadLetters(c, SAGE_SCHEMAS[service]));
  return { ...judge(state.orders, state.shipments, accepted), deadLetters: dead, drainMs, drained };
}

/** The outcomes of `orders` and `shipments` against what the accepted requests expected. */
export function judge(
  orders: readonly SagaRow[],
  shipments: readonly SagaRow[],
  accepted: ReadonlyMap<string, ExpectedSagaStatus>,
): Pick<SagaOutcomes, 'orders' | 'shipments'> {
  const byKey = new Map(orders.map((o) => [o.key, o]));
  const wrong: string[] = [];
  let asExpected = 0;
  let notTerminal = 0;
  const completion: number[] = [];
  const confirmed: number[] = [];
  const declined: number[] = [];
  let first = Infinity;
  let last = -Infinity;
  for (const o of orders) {
    if (!TERMINAL.has(o.status)) {
      notTerminal++;
      continue;
    }
    if (o.status === expectedStatusOf(o.key)) asExpected++;
    else wrong.push(`${o.key}: ${o.status}`);
    const ms = o.updated_ms - o.created_ms;
    completion.push(ms);
    (o.status === 'completed' ? confirmed : declined).push(ms);
    first = Math.min(first, o.created_ms);
    last = Math.max(last, o.updated_ms);
  }
  let missing = 0;
  for (const key of accepted.keys()) if (!byKey.has(key)) missing++;
  const spanS = completion.length ? (last - first) / 1000 : 0;

  const confirmedOrders = orders.filter((o) => o.status === 'completed');
  const shipmentByKey = new Map(shipments.map((s) => [s.key, s]));
  const endToEnd: number[] = [];
  let notCompleted = 0;
  for (const o of confirmedOrders) {
    const s = shipmentByKey.get(o.key);
    if (s?.status === 'completed') endToEnd.push(s.updated_ms - o.created_ms);
    else notCompleted++;
  }
  const confirmedKeys = new Set(confirmedOrders.map((o) => o.key));
  return {
    orders: {
      total: orders.length,
      byStatus: countBy(orders),
      asExpected,
      wrongOutcome: wrong.slice(0, 10),
      wrongOutcomeCount: wrong.length,
      notTerminal,
      missing,
      unanswered: orders.filter((o) => !accepted.has(o.key)).length,
      completionMs: latencies(completion),
      confirmedMs: latencies(confirmed),
      declinedMs: latencies(declined),
      perSec: spanS > 0 ? round(completion.length / spanS, 1) : 0,
      spanS: round(spanS, 1),
    },
    shipments: {
      expected: confirmedOrders.length,
      total: shipments.length,
      byStatus: countBy(shipments),
      completed: endToEnd.length,
      notCompleted,
      unexpected: shipments.filter((s) => !confirmedKeys.has(s.key)).length,
      endToEndMs: latencies(endToEnd),
    },
  };
}
