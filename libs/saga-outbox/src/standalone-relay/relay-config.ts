import { InvalidOptionsError } from '../core/errors';

/** The standalone relay's configuration, from the environment. */
export interface RelayConfig {
  /** DATABASE_URL (required): the PostgreSQL database holding the outbox. */
  databaseUrl: string;
  /** SAGE_SCHEMA: schema of Sage's tables. Default `sage`. */
  schema: string | undefined;
  /** SAGE_BROKER_URL (required): where messages go: kafka://, amqp[s]://, nats:// (memory:// for tests). */
  brokerUrl: string;
  /** SAGE_RUN_MIGRATIONS=false: leave the schema to the services (e.g. a role without DDL rights). Default true. */
  runMigrations: boolean;
  /** SAGE_RELAY_SHUTDOWN_TIMEOUT_MS: graceful-stop bound of the relay. Default 10000. */
  shutdownTimeoutMs: number;
}

export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

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
  const runMigrations = env.SAGE_RUN_MIGRATIONS?.trim().toLowerCase() ?? 'true';
  if (runMigrations !== 'true' && runMigrations !== 'false')
    throw new InvalidOptionsError('SAGE_RUN_MIGRATIONS', 'must be true or false');
  const timeout = env.SAGE_RELAY_SHUTDOWN_TIMEOUT_MS?.trim();
  const shutdownTimeoutMs = timeout ? Number(timeout) : DEFAULT_SHUTDOWN_TIMEOUT_MS;
  if (!Number.isInteger(shutdownTimeoutMs) || shutdownTimeoutMs < 0)
    throw new InvalidOptionsError(
      'SAGE_RELAY_SHUTDOWN_TIMEOUT_MS',
      `must be an integer number of milliseconds >= 0, got "${timeout}"`,
    );
  return {
    databaseUrl,
    schema: env.SAGE_SCHEMA?.trim() || undefined,
    brokerUrl,
    runMigrations: runMigrations === 'true',
    shutdownTimeoutMs,
  };
}
