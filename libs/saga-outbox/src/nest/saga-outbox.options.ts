import {
  validateDataProtection,
  type DataProtectionOptions,
} from '../core/protection/data-protection-options';
import { InvalidOptionsError } from '../core/errors';
import {
  choiceOption,
  integerOption,
  optionalName,
  optionalPositiveInteger,
  optionalPositiveNumber,
  requiredName,
} from '../core/options';
import { resolveOptimisticSettings } from '../core/outbox/optimistic-sender';
import {
  IDEMPOTENCY_CONFLICT_POLICIES,
  type IdempotencyConflictPolicy,
} from '../core/saga/input-fingerprint';
import type { SagaDefinition } from '../core/saga/saga-definition';
import type { DataSource, EntityManager } from 'typeorm';
import type { Broker } from '../core/ports/broker';
import { validateRelayMode } from './outbox/wal-relay.options';
import type { SageTracer } from '../core/ports/tracer';
import {
  validateSigningOptions,
  type MessageSigningOptions,
} from '../core/signing/signing-options';
import type { OutboxModuleOptions } from './outbox/outbox.options';
import type { InboxModuleOptions } from './inbox/inbox.options';
import { validateRetentionOptions, type SagaRetentionModuleOptions } from './retention-options';
import { validateAuditOptions, type AuditModuleOptions } from './audit/audit.options';
import {
  validateContractsOptions,
  type SagaOutboxContractsOptions,
} from './contracts/contracts.options';
import {
  checkPostgresPassword,
  pgSslOptions,
  type PostgresPassword,
  type PostgresSslOptions,
} from '../persistence/postgres/postgres-ssl';

export interface SagaOutboxPostgresOptions {
  /** `postgres://user:pass@host:port/db`; or the separate fields below. */
  url?: string;
  host?: string;
  port?: number;
  user?: string;
  /**
   * The password, or a function called for each new connection (rotation without a restart:
   * return the current one, e.g. read from a mounted secret or a vault).
   */
  password?: PostgresPassword;
  database?: string;
  /**
   * TLS: `true` (verified against the system CAs) or an object with `ca`, `cert`, `key`,
   * `rejectUnauthorized` and `servername`, as node-postgres takes them; `rejectUnauthorized` defaults to true. An
   * `sslmode=` in `url` is applied as node-postgres does. Default: no TLS.
   */
  ssl?: boolean | PostgresSslOptions;
  /** Connections in Sage's own pool. Default 10. */
  poolSize?: number;
}

export interface SagaOutboxEmbeddedOptions {
  /** Where PGlite keeps its files; omitted → in memory (gone when the process exits). */
  dataDir?: string;
  /** Connections the PGlite socket server accepts at once (it serialises their transactions). Default 8. */
  maxConnections?: number;
  /**
   * Start the embedded database even when `NODE_ENV=production` (default false: startup fails with
   * EmbeddedDatabaseInProductionError; `SAGE_EMBEDDED_IN_PRODUCTION=1` does the same as true).
   * It accepts any password and listens on loopback only: give production a PostgreSQL server.
   */
  allowInProduction?: boolean;
}

export interface SagaEngineTuning {
  /** Lease on a running saga, renewed every third of it (database clock). Default 30000. */
  leaseMs?: number;
  /** How often orphaned sagas are looked for. Default 2000. */
  recoveryIntervalMs?: number;
  /** Sagas driven at once by this process. Default 64. */
  maxConcurrentSagas?: number;
  /** Graceful shutdown bound for running sagas. Default 10000. */
  shutdownTimeoutMs?: number;
  /** Worker identity stored as the saga owner. Default: a fresh UUIDv7 per process. */
  ownerId?: string;
  /**
   * Remote steps: the topic / queue / subject participants reply to (this service consumes it).
   * Required when a saga has a `kind: 'remote'` step.
   */
  replyTo?: string;
  /** Inbox consumer name and broker consumer group for the replies. Default `sage.saga-replies`. */
  replyConsumer?: string;
  /**
   * `start()` with an idempotency key that already started a saga but a different input:
   * `'reject'` (default) throws SagaIdempotencyConflictError, writing nothing; `'return-existing'`
   * returns the first saga whatever the input (as 0.2 did).
   */
  idempotencyConflict?: IdempotencyConflictPolicy;
  /**
   * Leader-only deletion of terminal sagas (completed, compensated, failed) with their steps, 30 days
   * after their last transition by default; `enabled: false` keeps them (or leaves it to another
   * deployment). Running, waiting and compensating sagas are never deleted. See docs/retention.md.
   */
  retention?: SagaRetentionModuleOptions;
}

/**
 * Where the saga state lives, in order of precedence:
 * 1. `dataSource`: your app's TypeORM DataSource (add `sagaOutboxMigrations()` to its migrations);
 * 2. `postgres`: Sage opens its own pool;
 * 3. neither: embedded PGlite (no server needed: demos, local development).
 */
export interface SagaOutboxModuleOptions {
  dataSource?: DataSource;
  postgres?: SagaOutboxPostgresOptions;
  embedded?: SagaOutboxEmbeddedOptions;
  /** PostgreSQL schema of Sage's tables. Default `sage`. */
  schema?: string;
  /**
   * Run Sage's migrations at startup. Default: true when Sage opens the database (`postgres`,
   * embedded), false with `dataSource`, and false with `postgres` when `NODE_ENV=production`
   * (migrate as the migrator role at deploy time: `sage migrate`; docs/security.md).
   */
  runMigrations?: boolean;
  /**
   * Connecting to PostgreSQL at startup (Sage's own pool, `postgres`, or a `dataSource` not yet
   * initialised, which Sage initialises): how many more attempts after the first fails with a
   * transient error (refused, timed out, restarting), as in `@nestjs/typeorm`; each failed attempt
   * logs one WARN, the last throws SageDatabaseUnavailableError. A wrong password, an unknown role
   * or database fails at once. Default 9. With `brokerStartup: 'wait'`, also the attempts to reach
   * the broker.
   */
  retryAttempts?: number;
  /** Milliseconds between those attempts. Default 3000. */
  retryDelay?: number;
  /**
   * A broker that cannot be reached at startup:
   * - `'degraded'` (default): the app starts, one WARN names the broker and the cause; the outbox
   *   keeps messages and the relay and the subscriptions retry until the broker is back;
   * - `'wait'`: startup retries (`retryAttempts` × `retryDelay`), then fails with
   *   BrokerUnavailableError.
   */
  brokerStartup?: BrokerStartupPolicy;
  saga?: SagaEngineTuning;
  /** Sagas declared with `defineSaga()` instead of decorators. */
  sagas?: SagaDefinition<never, EntityManager>[];
  /**
   * Start the background work on application bootstrap: saga recovery and leases, the outbox relay,
   * optimistic sending and retention, the inbox subscriptions (`@IdempotentHandler`,
   * `@SagaCommandHandler`, saga replies) and inbox retention. Default true. With false nothing of
   * it starts on its own (committed outbox rows stay pending): `SagaEngine.startBackground()`,
   * `OutboxRelayService.relay?.start()`, `.optimistic?.setRollout({ enabled: true })`,
   * `.retention?.start()` and `IdempotentHandlerExplorer.subscribeAll()` start their part.
   */
  autoStart?: boolean;
  /**
   * Where the relay publishes outbox messages (and `@IdempotentHandler`s consume from): a Broker
   * instance, or a URL — `kafka://h:9092`, `amqp://user:pass@h:5672`, `nats://h:4222`, `memory://`
   * (see brokerFromUrl). Default: an in-process InMemoryBroker with the
   * embedded database; none with PostgreSQL (messages stay in the outbox until a relay with a
   * broker runs, e.g. the standalone relay).
   */
  broker?: Broker | string;
  /** Consumer inbox: `@IdempotentHandler` subscriptions and poison-message attempts. */
  inbox?: InboxModuleOptions;
  /** Outbox limits, relay and retention tuning. */
  outbox?: OutboxModuleOptions;
  /**
   * Opt-in saga lifecycle events through the outbox: `sage.saga.started`, `.step-completed`,
   * `.completed`, `.compensated`, `.failed` (key = saga id), each written in the transaction of
   * the state change it describes. Off by default.
   */
  sagaEvents?: { destination: string };
  /**
   * Spans for sagas, steps, outbox writes, publishes and inbox handling:
   * `openTelemetryTracing()` from `@sage/saga-outbox/tracing`. Default: none (nothing of
   * OpenTelemetry is loaded).
   */
  tracing?: SageTracer;
  /**
   * Message signing: `{ keys: signingKeys({ active, keys }) | signingKeysFromEnv(), require? }`.
   * Every message this service writes to its outbox is signed (HMAC-SHA256, key id in
   * `sage-signature-key`); with `require: true`, saga replies and `@SagaCommandHandler` commands
   * that are unsigned or badly signed are dead-lettered at once, never handled. See docs/security.md.
   */
  signing?: MessageSigningOptions;
  /**
   * Envelope encryption (AES-256-GCM) of declared fields of saga inputs, step results and message
   * payloads, in the database and on the wire; consumers through the inbox decrypt transparently.
   * `{ keys: encryptionKeys({ active, keys }) | encryptionKeysFromEnv(), sagas?, messages?, subjectKeys? }`.
   * Data-subject keys default to the `subject_key` table of this database. See docs/data-protection.md.
   */
  dataProtection?: DataProtectionOptions;
  /**
   * The tamper-evident audit log's sealer (`enabled`, `sealIntervalMs`, `batchSize`, `retentionMs`,
   * `hmacKeys`): on by default, it seals the entries the triggers record into the hash chain.
   * See docs/audit-log.md.
   */
  audit?: AuditModuleOptions;
  /**
   * Message contracts (`defineContract`: type, version, JSON Schema): `publishes` (what this
   * service writes: validated before the outbox write, ContractViolationError and nothing written)
   * and `consumes` (what it accepts: the versions it accepts and their upcasters; a delivery that
   * does not match is dead-lettered at once, never handled). Needs the optional peers `ajv` and
   * `ajv-formats`. See docs/contracts.md.
   */
  contracts?: SagaOutboxContractsOptions;
}

/** What startup does when the broker cannot be reached: see `SagaOutboxModuleOptions.brokerStartup`. */
export type BrokerStartupPolicy = 'degraded' | 'wait';
export const BROKER_STARTUP_POLICIES: readonly BrokerStartupPolicy[] = ['degraded', 'wait'];

const KNOWN_KEYS = new Set([
  'dataSource',
  'postgres',
  'embedded',
  'schema',
  'runMigrations',
  'retryAttempts',
  'retryDelay',
  'brokerStartup',
  'saga',
  'sagas',
  'autoStart',
  'broker',
  'outbox',
  'sagaEvents',
  'inbox',
  'tracing',
  'signing',
  'dataProtection',
  'audit',
  'contracts',
]);

/** Checks options once, at the module boundary, so a typo fails startup with a message that says what to fix. */
export function validateModuleOptions(
  options: SagaOutboxModuleOptions | undefined,
): SagaOutboxModuleOptions {
  const o = options ?? {};
  if (typeof o !== 'object') throw new InvalidOptionsError('options', 'must be an object');
  for (const key of Object.keys(o)) {
    if (!KNOWN_KEYS.has(key))
      throw new InvalidOptionsError(
        key,
        `unknown option; known options: ${[...KNOWN_KEYS].join(', ')}`,
      );
  }
  if (
    o.dataSource !== undefined &&
    (typeof o.dataSource !== 'object' || typeof o.dataSource.transaction !== 'function')
  ) {
    throw new InvalidOptionsError('dataSource', 'must be a TypeORM DataSource');
  }
  if (o.postgres !== undefined) {
    const p = o.postgres;
    if (typeof p !== 'object' || p === null)
      throw new InvalidOptionsError('postgres', 'must be an object');
    if (p.url !== undefined && !/^postgres(ql)?:\/\//.test(p.url)) {
      throw new InvalidOptionsError('postgres.url', 'must start with postgres:// or postgresql://');
    }
    optionalPositiveInteger('postgres.port', p.port, 65535);
    optionalPositiveInteger('postgres.poolSize', p.poolSize);
    pgSslOptions(p.ssl, 'postgres.ssl');
    checkPostgresPassword(p.password, 'postgres.password');
  }
  optionalPositiveInteger('embedded.maxConnections', o.embedded?.maxConnections);
  const allowEmbedded: unknown = o.embedded?.allowInProduction;
  if (allowEmbedded !== undefined && typeof allowEmbedded !== 'boolean')
    throw new InvalidOptionsError(
      'embedded.allowInProduction',
      `must be true or false, got ${JSON.stringify(allowEmbedded)}`,
    );
  integerOption('retryAttempts', o.retryAttempts, { fallback: 9, min: 0, max: 1000 });
  integerOption('retryDelay', o.retryDelay, { fallback: 3000, min: 0, max: 600_000 });
  choiceOption('brokerStartup', o.brokerStartup, BROKER_STARTUP_POLICIES, 'degraded');
  if (
    o.schema !== undefined &&
    (typeof o.schema !== 'string' || !/^[a-z_][a-z0-9_]{0,62}$/.test(o.schema))
  ) {
    throw new InvalidOptionsError(
      'schema',
      `must match ^[a-z_][a-z0-9_]{0,62}$, got ${JSON.stringify(o.schema)}`,
    );
  }
  const tuning = o.saga ?? {};
  for (const key of [
    'leaseMs',
    'recoveryIntervalMs',
    'maxConcurrentSagas',
    'shutdownTimeoutMs',
  ] as const)
    optionalPositiveNumber(`saga.${key}`, tuning[key]);
  for (const key of ['replyTo', 'replyConsumer'] as const)
    optionalName(`saga.${key}`, tuning[key], { maxLength: 255 });
  choiceOption(
    'saga.idempotencyConflict',
    tuning.idempotencyConflict,
    IDEMPOTENCY_CONFLICT_POLICIES,
    'reject',
  );
  if (
    o.broker !== undefined &&
    typeof o.broker !== 'string' &&
    (typeof o.broker !== 'object' || o.broker === null || typeof o.broker.publish !== 'function')
  ) {
    throw new InvalidOptionsError(
      'broker',
      'must be a broker URL or implement the Broker port (publish, subscribe, health, close)',
    );
  }
  optionalPositiveInteger('outbox.maxMessageBytes', o.outbox?.maxMessageBytes);
  if (o.outbox?.optimistic !== undefined) {
    if (typeof o.outbox.optimistic !== 'object' || o.outbox.optimistic === null)
      throw new InvalidOptionsError('outbox.optimistic', 'must be an object');
    resolveOptimisticSettings(o.outbox.optimistic); // throws InvalidOptionsError naming the option
  }
  validateRelayMode(o);
  validateTracer(o.tracing);
  validateSigningOptions(o.signing);
  validateDataProtection(o.dataProtection);
  validateAuditOptions(o.audit);
  validateContractsOptions(o.contracts);
  if (o.sagaEvents !== undefined) {
    if (typeof o.sagaEvents !== 'object' || o.sagaEvents === null)
      throw new InvalidOptionsError(
        'sagaEvents',
        'must be { destination: string } (the topic / exchange / subject the events go to)',
      );
    requiredName({ option: 'sagaEvents', field: 'destination' }, o.sagaEvents.destination);
  }
  optionalPositiveInteger('inbox.maxAttempts', o.inbox?.maxAttempts);
  validateRetentionOptions('saga.retention', tuning.retention);
  validateRetentionOptions('outbox.retention', o.outbox?.retention, ['deadLetterTtlMs', 'archive']);
  validateRetentionOptions('inbox.retention', o.inbox?.retention, ['deadLetterTtlMs']);
  if (o.sagas !== undefined && !Array.isArray(o.sagas))
    throw new InvalidOptionsError('sagas', 'must be an array of defineSaga(...).build() results');
  return o;
}

/** `tracing` must implement the SageTracer port (what `openTelemetryTracing()` returns). */
export function validateTracer(tracing: unknown): void {
  if (tracing === undefined) return;
  const hooks: readonly (keyof SageTracer)[] = [
    'onSagaEvent',
    'outboxWriter',
    'broker',
    'inboxHandling',
  ];
  const valid =
    typeof tracing === 'object' &&
    tracing !== null &&
    hooks.every((h) => typeof (tracing as Record<string, unknown>)[h] === 'function');
  if (!valid)
    throw new InvalidOptionsError(
      'tracing',
      "must implement SageTracer: use openTelemetryTracing() from '@sage/saga-outbox/tracing'",
    );
}
