/**
 * The load itself: autocannon sending `POST /orders` to order-service, one request at a time per
 * connection, each with a body and an Idempotency-Key of its own. Every `declineEvery`-th order is
 * paid with a card payment-service declines, so its saga compensates (the order is cancelled); the
 * outcome a request expects is written in its key (`…-c` confirmed, `…-d` declined), so the saga
 * checks can tell what each order should have become from its id alone, even for a request whose
 * answer autocannon dropped when the time was up.
 */
import autocannon from 'autocannon';

export type ExpectedSagaStatus = 'completed' | 'compensated';

export interface LoadPlan {
  /** order-service's base URL (http://127.0.0.1:port). */
  url: string;
  /** Unique per run: the order ids start with it. */
  runId: string;
  durationS: number;
  connections: number;
  rate: number | null;
  maxRequests: number;
  declineEvery: number;
  requestTimeoutS: number;
}

export interface HttpSummary {
  /** Requests autocannon sent (answered or not). */
  sent: number;
  /** Answered with a 2xx (202: the saga was started). */
  ok: number;
  non2xx: number;
  /** Connection errors, timeouts included. */
  errors: number;
  timeouts: number;
  /** Answers by status code. */
  statusCodes: Record<string, number>;
  /** autocannon's latency histogram, ms (from send to the whole response). */
  latencyMs: { mean: number; p50: number; p90: number; p99: number; max: number };
  /** Answered requests per second over the load. */
  requestsPerSec: number;
  durationS: number;
  /** A few non-2xx answers (status and the start of the body), to see why. */
  rejectedSamples: string[];
}

export interface LoadRun {
  http: HttpSummary;
  /** The orders answered with 202, each with the saga status its request implies. */
  accepted: Map<string, ExpectedSagaStatus>;
  startedAt: number;
  finishedAt: number;
}

/** A card payment-service accepts, and one it declines (sample convention: `tok_declined…`). */
const CARDS = {
  c: { token: 'tok_visa', last4: '4242' },
  d: { token: 'tok_declined_insufficient_funds', last4: '0002' },
} as const;

/** The saga status the order with this id must end in (from the suffix its key was given). */
export function expectedStatusOf(orderId: string): ExpectedSagaStatus | undefined {
  if (orderId.endsWith('-c')) return 'completed';
  if (orderId.endsWith('-d')) return 'compensated';
  return undefined;
}

/** The n-th request's Idempotency-Key and body. */
export function orderRequest(
  runId: string,
  n: number,
  declineEvery: number,
): { key: string; body: Record<string, unknown> } {
  const outcome = n % declineEvery === declineEvery - 1 ? 'd' : 'c';
  return {
    key: `load-${runId}-${n}-${outcome}`,
    body: {
      // A few dozen customers (the data-subject keys are per customer), none `cus-unreachable…`.
      customer: { id: `cus-load-${n % 40}`, name: 'Load Tester', email: 'load@example.com' },
      sku: 'widget',
      quantity: 1,
      amountCents: 1_000 + (n % 100),
      currency: 'EUR',
      paymentMethod: CARDS[outcome],
    },
  };
}

export async function runLoad(plan: LoadPlan, say: (line: string) => void): Promise<LoadRun> {
  let n = 0;
  const accepted = new Map<string, ExpectedSagaStatus>();
  const rejectedSamples: string[] = [];
  const startedAt = Date.now();
  let settle: (error: unknown, result?: autocannon.Result) => void = () => undefined;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    settle = (error, result) => (error || !result ? reject(error as Error) : resolve(result));
  });
  const instance = autocannon(
    {
      url: plan.url,
      connections: plan.connections,
      pipelining: 1,
      duration: plan.durationS,
      maxOverallRequests: plan.maxRequests,
      ...(plan.rate === null ? {} : { overallRate: plan.rate }),
      timeout: plan.requestTimeoutS,
      requests: [
        {
          method: 'POST',
          path: '/orders',
          setupRequest: (request) => {
            const { key, body } = orderRequest(plan.runId, n++, plan.declineEvery);
            return {
              ...request,
              headers: { 'content-type': 'application/json', 'idempotency-key': key },
              body: JSON.stringify(body),
            };
          },
          onResponse: (status, body) => {
            if (status === 202) {
              const { orderId } = JSON.parse(body) as { orderId: string };
              const expected = expectedStatusOf(orderId);
              if (expected) accepted.set(orderId, expected);
            } else if (rejectedSamples.length < 5) {
              rejectedSamples.push(`${status} ${body.slice(0, 200)}`);
            }
          },
        },
      ],
    },
    (error, result) => settle(error, result),
  );
  let ticks = 0;
  instance.on('tick', () => {
    if (++ticks % 10 === 0) say(`load: ${ticks} s, ${accepted.size} orders accepted`);
  });
  const result = await done;
  const finishedAt = Date.now();
  const codes: Record<string, number> = {};
  for (const [code, { count }] of Object.entries(result.statusCodeStats ?? {}))
    codes[code] = count ?? 0;
  return {
    accepted,
    startedAt,
    finishedAt,
    http: {
      sent: result.requests.sent,
      ok: result['2xx'],
      non2xx: result.non2xx,
      errors: result.errors,
      timeouts: result.timeouts,
      statusCodes: codes,
      latencyMs: {
        mean: result.latency.mean,
        p50: result.latency.p50,
        p90: result.latency.p90,
        p99: result.latency.p99,
        max: result.latency.max,
      },
      requestsPerSec: result.duration > 0 ? (result['2xx'] + result.non2xx) / result.duration : 0,
      durationS: result.duration,
      rejectedSamples,
    },
  };
}
