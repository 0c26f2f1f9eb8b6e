import type { NatsSecurityOptions } from '../brokers/nats/nats-security-options';
import { InvalidOptionsError } from '../core/errors';
import { defaultRunMigrations } from '../core/startup/production-mode';
import {
  readRelayNatsSecurity,
  readRelayPostgresSecurity,
  type RelayPostgresSecurity,
} from './relay-security-config';
import { readRelayKafkaSecurity, readRelayRabbitMqSecurity } from './relay-broker-security';
import type { KafkaUrlSecurity } from '../nest/relay/kafka-url';
import type { RabbitMqTlsOptions } from '../brokers/rabbitmq/rabbitmq-tls';

/** The standalone relay's configuration, from the environment. */
export interface RelayConfig {
  /** DATABASE_URL (required): the PostgreSQL database holding the outbox. */
  databaseUrl: string;
  /** SAGE_SCHEMA: schema of Sage's tables. Default `sage`. */
  schema: string | undefined;
  /** SAGE_BROKER_URL (required): where messages go: kafka://, amqp[s]://, nats:// (memory:// for tests). */
  brokerUrl: string;
  /**
   * SAGE_RUN_MIGRATIONS=false: leave the schema to `sage migrate` (a role without DDL rights).
   * Default true, except with NODE_ENV=production: false.
   */
  runMigrations: boolean;
  /** SAGE_RELAY_SHUTDOWN_TIMEOUT_MS: graceful-stop bound of the relay. Default 10000. */
  shutdownTimeoutMs: number;
  /** SAGE_RELAY_MODE: `polling` (default) or `wal` (the WAL-streaming relay, docs/outbox.md). */
  mode: 'polling' | 'wal';
  /** SAGE_RELAY_WAL_SLOT: the WAL relay's replication slot. Default `sage_outbox[_<schema>]`. */
  walSlot: string | undefined;
  /**
   * SAGE_RELAY_WAL_MAX_WINDOW: the WAL relay's unconfirmed window (`outbox.relay.wal.maxWindow`):
   * messages held unconfirmed before it stops reading the stream; bounds its memory and the
   * duplicates a crash can cause. Default: the relay's own (10000).
   */
  walMaxWindow: number | undefined;
  /** SAGE_DB_RETRY_ATTEMPTS: connection attempts at start after the first fails (transient errors). Default 9. */
  dbRetryAttempts: number;
  /** SAGE_DB_RETRY_DELAY_MS: milliseconds between those attempts. Default 3000. */
  dbRetryDelayMs: number;
  /** SAGE_DB_SSL(_CA/_CERT/_KEY) and SAGE_DB_PASSWORD (each with `_FILE`): see readRelayPostgresSecurity. */
  postgres: RelayPostgresSecurity;
  /** SAGE_NATS_* (TLS and credentials): see readRelayNatsSecurity. */
  nats: NatsSecurityOptions | undefined;
  /** SAGE_KAFKA_SSL* and SAGE_KAFKA_SASL_* (secrets with `_FILE`): see readRelayKafkaSecurity. */
  kafka: KafkaUrlSecurity | undefined;
  /** SAGE_RABBITMQ_TLS_CA / _CERT / _KEY (each with `_FILE`): see readRelayRabbitMqSecurity. */
  rabbitmq: { tls: RabbitMqTlsOptions } | undefined;
}

export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;
export const DEFAULT_DB_RETRY_ATTEMPTS = 9;
export const DEFAULT_DB_RETRY_DELAY_MS = 3000;

/** Reads and checks the environment; InvalidOptionsError naming the variable on bad input. */
export function readRelayConfig(env: NodeJS.ProcessEnv): RelayConfig {
  const databaseUrl = env.DATABASE_URL?.trim();
  if (!databaseUrl) {
    throw new InvalidOptionsError(
      'DATABASE_URL',
      'is required: the PostgreSQL database holding the outbox, e.g. postgres://user:password@host:5432/app',
    );
  }
  const brokerUrl = env.SAGE_BROKER_URL?.trim();
  if (!brokerUrl) {
    // No default: a relay "publishing" to memory in its own process would mark every message sent
    // while nobody receives it.
    throw new InvalidOptionsError(
      'SAGE_BROKER_URL',
      'is required: where the relay publishes, e.g. kafka://host:9092, amqp://user:pass@host:5672 or nats://host:4222',
    );
  }
  const runMigrations =
    env.SAGE_RUN_MIGRATIONS?.trim().toLowerCase() ?? String(defaultRunMigrations(env));
  if (runMigrations !== 'true' && runMigrations !== 'false')
    throw new InvalidOptionsError('SAGE_RUN_MIGRATIONS', 'must be true or false');
  const mode = env.SAGE_RELAY_MODE?.trim().toLowerCase() || 'polling';
  if (mode !== 'polling' && mode !== 'wal')
    throw new InvalidOptionsError('SAGE_RELAY_MODE', `must be polling or wal, got "${mode}"`);
  return {
    databaseUrl,
    mode,
    walSlot: env.SAGE_RELAY_WAL_SLOT?.trim() || undefined,
    walMaxWindow: env.SAGE_RELAY_WAL_MAX_WINDOW?.trim()
      ? envInteger(env, 'SAGE_RELAY_WAL_MAX_WINDOW', 0, 'messages', Number.MAX_SAFE_INTEGER, 1)
      : undefined,
    schema: env.SAGE_SCHEMA?.trim() || undefined,
    brokerUrl,
    runMigrations: runMigrations === 'true',
    shutdownTimeoutMs: envInteger(
      env,
      'SAGE_RELAY_SHUTDOWN_TIMEOUT_MS',
      DEFAULT_SHUTDOWN_TIMEOUT_MS,
      'milliseconds',
    ),
    dbRetryAttempts: envInteger(
      env,
      'SAGE_DB_RETRY_ATTEMPTS',
      DEFAULT_DB_RETRY_ATTEMPTS,
      'attempts',
      1000,
    ),
    dbRetryDelayMs: envInteger(
      env,
      'SAGE_DB_RETRY_DELAY_MS',
      DEFAULT_DB_RETRY_DELAY_MS,
      'milliseconds',
      600_000,
    ),
    postgres: readRelayPostgresSecurity(env),
    nats: readRelayNatsSecurity(env, brokerUrl),
    kafka: readRelayKafkaSecurity(env, brokerUrl),
    rabbitmq: readRelayRabbitMqSecurity(env, brokerUrl),
  };
}

/** An integer >= `min` (at most `max`) from `env[name]`, or `fallback` when unset or blank. */
function envInteger(
  env: NodeJS.ProcessEnv,
  name: string,
  fallback: number,
  unit: string,
  max = Number.MAX_SAFE_INTEGER,
  min = 0,
): number {
  const text = env[name]?.trim();
  const value = text ? Number(text) : fallback;
  if (!Number.isInteger(value) || value < min || value > max)
    throw new InvalidOptionsError(
      name,
      `must be an integer number of ${unit} >= ${min}${max < Number.MAX_SAFE_INTEGER ? ` and <= ${max}` : ''}, got "${text}"`,
    );
  return value;
}
