import { SagaOutboxError } from '../errors';

/** Why Sage could not connect to its PostgreSQL database, as SageDatabaseUnavailableError says it. */
export interface DatabaseConnectFailure {
  /** `host:port/database`: never the user or the password. */
  readonly address: string;
  /** The option that names the database: `postgres.url`, `postgres.host`, `dataSource`... */
  readonly option: string;
  /** Attempts made (1 when the failure was permanent). */
  readonly attempts: number;
  /** What failed: the driver's message, credentials scrubbed, with its SQLSTATE when it has one. */
  readonly reason: string;
  /** What to do about it. */
  readonly fix: string;
}

/**
 * Sage could not connect to PostgreSQL at startup (code `SAGE_DATABASE_UNAVAILABLE`): the server is
 * down or unreachable after `retryAttempts` retries, or it refused Sage for a reason no retry fixes
 * (wrong password, unknown role or database), then at the first attempt. The message names the
 * address and the option, never the password.
 */
export class SageDatabaseUnavailableError extends SagaOutboxError {
  readonly address: string;
  readonly option: string;

  constructor(failure: DatabaseConnectFailure, options?: { cause?: unknown }) {
    super(
      'SAGE_DATABASE_UNAVAILABLE',
      `Sage cannot connect to PostgreSQL at ${failure.address} (option ${failure.option})` +
        `${failure.attempts > 1 ? ` after ${failure.attempts} attempts` : ''}: ${failure.reason}. ${failure.fix}`,
      options,
    );
    this.address = failure.address;
    this.option = failure.option;
  }
}

/** What is missing from Sage's schema, as SageSchemaError says it. */
export interface SageSchemaProblem {
  readonly schema: string;
  /** `host:port/database`, for the message. */
  readonly address: string;
  /** Sage's tables that do not exist in `schema`. */
  readonly missingTables: readonly string[];
  /** Sage's migrations not recorded as run. */
  readonly pendingMigrations: readonly string[];
  /** None of Sage's migrations is recorded: the message does not list them all. */
  readonly neverMigrated?: boolean;
  /** What to run or set. */
  readonly fix: string;
}

/**
 * Sage's tables are missing or some of its migrations have not run (code
 * `SAGE_SCHEMA_OUT_OF_DATE`), found at startup before anything used them. The message names the
 * schema, what is missing, and the fix: `npx sage migrate`, `sagaOutboxMigrations()` in the app's
 * DataSource, or `runMigrations: true`.
 */
export class SageSchemaError extends SagaOutboxError {
  readonly schema: string;
  readonly missingTables: readonly string[];
  readonly pendingMigrations: readonly string[];

  constructor(problem: SageSchemaProblem) {
    const { schema, address, missingTables, pendingMigrations } = problem;
    const pending = `${pendingMigrations.length} Sage migration(s) pending (${pendingMigrations.join(', ')})`;
    super(
      'SAGE_SCHEMA_OUT_OF_DATE',
      missingTables.length
        ? `Sage's tables are missing in schema "${schema}" of ${address} (${missingTables.join(', ')}): ` +
            `${
              !pendingMigrations.length
                ? 'their migrations are recorded as run, so the tables were dropped since or the schema name is wrong'
                : problem.neverMigrated
                  ? "Sage's migrations have not run on this database"
                  : pending
            }. ${problem.fix}`
        : `Sage's schema "${schema}" of ${address} is out of date: ${pending}. ${problem.fix}`,
    );
    this.schema = schema;
    this.missingTables = missingTables;
    this.pendingMigrations = pendingMigrations;
  }
}
