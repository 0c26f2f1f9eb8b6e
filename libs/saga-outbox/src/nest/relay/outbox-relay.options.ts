import type { DataSource } from 'typeorm';
import { InvalidOptionsError } from '../../core/errors';
import type { Broker } from '../../core/ports/broker';
import type { SageTracer } from '../../core/ports/tracer';
import type { OutboxModuleOptions } from '../outbox/outbox.options';
import { validateModuleOptions, type SagaOutboxPostgresOptions } from '../saga-outbox.options';

/**
 * A relay deployment: where the outbox table is and where its messages go. No saga engine, no
 * embedded database (a relay in its own process cannot reach another process's PGlite).
 */
export interface OutboxRelayModuleOptions {
  /** An initialised (or initialisable) TypeORM DataSource of the database holding the outbox. */
  dataSource?: DataSource;
  /** Or: Sage opens its own pool. */
  postgres?: SagaOutboxPostgresOptions;
  /** PostgreSQL schema of Sage's tables. Default `sage`. */
  schema?: string;
  /**
   * Run Sage's migrations at startup. Default: true with `postgres` (false when
   * `NODE_ENV=production`), false with `dataSource`.
   */
  runMigrations?: boolean;
  /**
   * Connecting to PostgreSQL at startup: attempts after the first fails with a transient error, as
   * in SagaOutboxModule. Default 9.
   */
  retryAttempts?: number;
  /** Milliseconds between those attempts. Default 3000. */
  retryDelay?: number;
  /** Where the relay publishes. The module owns it from now on: it is closed on shutdown. */
  broker: Broker;
  /** Relay and retention tuning, size limit. `relay.enabled: false` makes no sense here. */
  outbox?: OutboxModuleOptions;
  /** Publish spans: `openTelemetryTracing()` from `@sage/saga-outbox/tracing`. Default: none. */
  tracing?: SageTracer;
}

const KNOWN_KEYS = new Set([
  'dataSource',
  'postgres',
  'schema',
  'runMigrations',
  'retryAttempts',
  'retryDelay',
  'broker',
  'outbox',
  'tracing',
]);

/** Checks options once, at the module boundary, before anything is opened. */
export function validateRelayModuleOptions(
  options: OutboxRelayModuleOptions | undefined,
): OutboxRelayModuleOptions {
  if (typeof options !== 'object' || options === null)
    throw new InvalidOptionsError('options', 'must be an object with a database and a broker');
  for (const key of Object.keys(options)) {
    if (!KNOWN_KEYS.has(key))
      throw new InvalidOptionsError(
        key,
        `unknown option of OutboxRelayModule; known options: ${[...KNOWN_KEYS].join(', ')}`,
      );
  }
  if (options.dataSource === undefined && options.postgres === undefined) {
    throw new InvalidOptionsError(
      'postgres',
      'the standalone relay needs the database that holds the outbox: pass `postgres` (e.g. { url }) or `dataSource`',
    );
  }
  if (options.broker === undefined || options.broker === null) {
    throw new InvalidOptionsError(
      'broker',
      'the standalone relay needs a broker to publish to (an adapter implementing the Broker port)',
    );
  }
  if (options.outbox?.relay?.enabled === false) {
    throw new InvalidOptionsError(
      'outbox.relay.enabled',
      'OutboxRelayModule exists to run the relay; leave `enabled` unset',
    );
  }
  // The shared fields (dataSource, postgres, schema, broker, outbox) are checked as in SagaOutboxModule.
  validateModuleOptions(options);
  return options;
}
