/** The HTTP load run's options: parsed, checked and defaulted in one place. */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from '../chaos/processes';

export const LOAD_BROKERS = ['rabbitmq', 'kafka', 'nats'] as const;
export type LoadBroker = (typeof LOAD_BROKERS)[number];

export interface HttpLoadOptions {
  broker: LoadBroker;
  /** How long autocannon sends `POST /orders`, seconds. */
  durationS: number;
  /** Concurrent HTTP connections (each one request at a time: no pipelining). */
  connections: number;
  /** Requests per second over all connections; null: as fast as the connections go (closed loop). */
  rate: number | null;
  /** Hard cap on the requests sent, whatever the duration. */
  maxRequests: number;
  /** Every N-th order is paid with a card payment-service declines (its saga compensates). */
  declineEvery: number;
  /** After the load: how long every saga (order and shipment) has to reach its terminal state. */
  drainTimeoutS: number;
  /** autocannon's per-request timeout, seconds (a timeout is an error). */
  requestTimeoutS: number;
  /** The services' pino level (`info` logs a line per request). */
  logLevel: string;
  quick: boolean;
  /** Results file; the docs section is rebuilt from every `http-load-*.json` beside it. */
  out: string;
  /** The doc whose HTTP load section is regenerated; null: none. */
  docs: string | null;
  docsOnly: boolean;
  /** Start a private PostgreSQL and broker for the run (servers.ts) instead of the environment's. */
  privateServers: boolean;
  /** Keep the run's databases (dropped by default) for a look afterwards. */
  keepDatabases: boolean;
  /** The arguments as given, for the reproduction command in the results. */
  argv: string[];
}

export const USAGE = `npm run load:http -- [options]

HTTP load of the sample stack: order-service, payment-service and shipping-service started as
separate Node processes (as their main.ts runs them), each on a database of its own created for the
run on the PostgreSQL of PGHOST/PGPORT (scripts/services.sh), over a real broker; autocannon sends
POST /orders to order-service on 127.0.0.1; then every order saga must reach the terminal state its
request implies (confirmed, or cancelled for a declined card) and every confirmed order's shipment
saga must complete. Exits 1 on any non-2xx, HTTP error or timeout, or saga failed, stuck or wrong.

  --broker B             rabbitmq (default), kafka or nats (SAGE_RABBITMQ_URL, SAGE_KAFKA_BROKERS,
                         SAGE_NATS_URL: scripts/services.sh env)
  --duration-s S         seconds of load (default 60; --quick: 15)
  --connections N        concurrent connections (default 16; --quick: 8)
  --rate R               requests/s over all connections (default: unlimited, closed loop)
  --max-requests N       stop after N requests whatever the duration (default 100000)
  --decline-every N      every N-th order uses a declined card (default 10)
  --drain-timeout-s S    after the load, time for every saga to finish (default 90)
  --request-timeout-s S  per-request timeout (default 10)
  --log-level L          the services' LOG_LEVEL (default warn)
  --quick                the CI size: 15 s of load over 8 connections (plus the services' startup)
  --out FILE             results (default benchmarks/results/http-load-<broker>.json)
  --docs FILE            regenerate its HTTP load section (default docs/benchmarks.md)
  --no-docs              leave the docs alone
  --docs-only            only regenerate the docs section from the results directory
  --private-servers      a PostgreSQL and broker of the run's own (scripts/services.sh on a private
                         directory and ports, deleted afterwards) instead of the environment's:
                         other work on a shared server (its load, its locks) stays out of
                         the run
  --keep-databases       do not drop the run's databases (nor the private servers' data)
  --help`;

function positive(name: string, raw: string | undefined, integer: boolean): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)))
    throw new Error(
      `--${name} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(raw)}`,
    );
  return n;
}

/** The options from `argv`; undefined when `--help` was asked for (USAGE printed by the caller). */
export function parseHttpLoadOptions(argv: string[]): HttpLoadOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      broker: { type: 'string', default: 'rabbitmq' },
      'duration-s': { type: 'string' },
      connections: { type: 'string' },
      rate: { type: 'string' },
      'max-requests': { type: 'string' },
      'decline-every': { type: 'string' },
      'drain-timeout-s': { type: 'string' },
      'request-timeout-s': { type: 'string' },
      'log-level': { type: 'string', default: 'warn' },
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      docs: { type: 'string' },
      'no-docs': { type: 'boolean', default: false },
      'docs-only': { type: 'boolean', default: false },
      'keep-databases': { type: 'boolean', default: false },
      'private-servers': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return undefined;
  const broker = values.broker as LoadBroker;
  if (!LOAD_BROKERS.includes(broker))
    throw new Error(
      `--broker must be one of ${LOAD_BROKERS.join(', ')}, got ${JSON.stringify(values.broker)}`,
    );
  const quick = values.quick;
  const connections = positive('connections', values.connections, true) ?? (quick ? 8 : 16);
  const maxRequests = positive('max-requests', values['max-requests'], true) ?? 100_000;
  if (maxRequests < connections)
    throw new Error(
      `--max-requests (${maxRequests}) must be at least --connections (${connections})`,
    );
  return {
    broker,
    durationS: positive('duration-s', values['duration-s'], true) ?? (quick ? 15 : 60),
    connections,
    rate: positive('rate', values.rate, true) ?? null,
    maxRequests,
    declineEvery: positive('decline-every', values['decline-every'], true) ?? 10,
    drainTimeoutS: positive('drain-timeout-s', values['drain-timeout-s'], true) ?? 90,
    requestTimeoutS: positive('request-timeout-s', values['request-timeout-s'], true) ?? 10,
    logLevel: values['log-level'],
    quick,
    out: path.resolve(
      values.out ?? path.join(ROOT, 'benchmarks', 'results', `http-load-${broker}.json`),
    ),
    docs: values['no-docs']
      ? null
      : path.resolve(values.docs ?? path.join(ROOT, 'docs', 'benchmarks.md')),
    docsOnly: values['docs-only'],
    keepDatabases: values['keep-databases'],
    privateServers: values['private-servers'],
    argv,
  };
}
