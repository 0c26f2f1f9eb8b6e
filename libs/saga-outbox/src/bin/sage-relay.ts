#!/usr/bin/env node
/**
 * `sage-relay`: the standalone outbox relay: publishes the outbox of one database, nothing else (no sagas). Its
 * only HTTP is health and metrics. Run as many replicas as the outbox lag needs; they share the
 * work safely.
 *
 *   DATABASE_URL                     required  postgres://user:password@host:5432/app
 *   SAGE_BROKER_URL                  required  kafka://…, amqp[s]://…, nats://… (or memory:// for tests)
 *   SAGE_SCHEMA                      optional  schema of Sage's tables (default sage)
 *   SAGE_RUN_MIGRATIONS              optional  false: never run DDL (default true)
 *   SAGE_RELAY_SHUTDOWN_TIMEOUT_MS   optional  graceful-stop bound (default 10000)
 *   SAGE_RELAY_MODE                  optional  polling (default) or wal (WAL-streaming relay)
 *   SAGE_RELAY_WAL_SLOT              optional  the WAL relay's slot (default sage_outbox)
 *   SAGE_RELAY_WAL_MAX_WINDOW        optional  the WAL relay's unconfirmed window (default 10000)
 *   SAGE_DB_RETRY_ATTEMPTS           optional  PostgreSQL connection retries at start (default 9)
 *   SAGE_DB_RETRY_DELAY_MS           optional  wait between them (default 3000)
 *   HEALTH_PORT (or PORT)            optional  serve /health/live, /health/ready, /metrics (default: no HTTP)
 *
 * SIGTERM / SIGINT: stop claiming, let in-flight publishes finish and record them, hand unstarted
 * claims back, close the broker and the pool, exit 0. If that ever takes longer than the bound
 * (plus a margin), the process exits 1 instead of hanging; leases then expire and another relay
 * takes over.
 */
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { loadOptionalPeer } from '../optional-peer';
import type * as StandaloneRelay from '../standalone-relay/run-standalone-relay';
import { errorText } from '../core/error-text';

/** What the relay's HTTP server, metrics and JSON logs are built on (optional peers of the package). */
const RELAY_PEERS = [
  '@nestjs/platform-express',
  '@nestjs/terminus',
  '@willsoto/nestjs-prometheus',
  'prom-client',
  'nestjs-pino',
  'pino',
  'pino-http',
];

const logger = new Logger('sage-relay');
try {
  const { runStandaloneRelay } = loadOptionalPeer('sage-relay', RELAY_PEERS, () => {
    for (const name of RELAY_PEERS) require.resolve(name);
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- after the peers are known to be there
    return require('../standalone-relay/run-standalone-relay') as typeof StandaloneRelay;
  });
  runStandaloneRelay(logger).catch(fail);
} catch (error) {
  fail(error);
}

function fail(error: unknown): void {
  logger.error(errorText(error));
  process.exit(1);
}
