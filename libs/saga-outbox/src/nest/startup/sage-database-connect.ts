import type { DataSource } from 'typeorm';
import { InvalidOptionsError } from '../../core/errors';
import type { SageLogger } from '../../core/ports/logger';
import { scrubSecrets, urlAddress, urlSecrets } from '../../core/startup/connection-url';
import { retryAtStartup } from '../../core/startup/startup-retry';
import { SageDatabaseUnavailableError } from '../../core/startup/startup-errors';
import {
  connectFailureReason,
  permanentConnectFix,
} from '../../persistence/postgres/connect-failure';

/** Where Sage connects, as messages may name it: never the password. */
export interface DatabaseTarget {
  /** `host:port/database`. */
  readonly address: string;
  /** The option that set it: `postgres.url`, `postgres.host`, `dataSource`, `embedded`. */
  readonly option: string;
  /** Scrubbed from every driver message before it is shown. */
  readonly secrets: readonly string[];
}

/** The connection settings the target is read from (Sage's `postgres` option, a DataSource's options). */
export interface ConnectionFields {
  url?: string;
  host?: string;
  port?: number;
  database?: string;
  password?: unknown;
}

/**
 * The target of `fields`, set by `option` (`postgres`, `dataSource`). A URL that does not parse
 * fails here, at once, with InvalidOptionsError (never echoing it: it may hold a password).
 */
export function databaseTarget(fields: ConnectionFields, option: string): DatabaseTarget {
  const password = typeof fields.password === 'string' ? fields.password : undefined;
  if (fields.url !== undefined) {
    const at = option === 'dataSource' ? 'dataSource (its url)' : `${option}.url`;
    const address = urlAddress(fields.url, 5432, true);
    if (address === undefined)
      throw new InvalidOptionsError(
        at,
        'is not a valid URL (expected postgres://user:password@host:5432/database); the value is not shown, as it may hold a password',
      );
    return { address, option: at, secrets: urlSecrets(fields.url, password) };
  }
  const database = fields.database ? `/${fields.database}` : '';
  return {
    address: `${fields.host ?? 'localhost'}:${fields.port ?? 5432}${database}`,
    option: option === 'dataSource' ? option : `${option}.host`,
    secrets: password && password.length >= 8 ? [password] : [],
  };
}

export interface ConnectRetry {
  /** `retryAttempts`: attempts after the first. */
  retries: number;
  /** `retryDelay`, ms. */
  delayMs: number;
}

/**
 * `dataSource.initialize()`, retried like `@nestjs/typeorm` does: each failed attempt logs one
 * WARN line naming the address, the option and the cause; a refusal no retry fixes (wrong
 * password, unknown role or database) fails at once. Throws SageDatabaseUnavailableError.
 */
export async function connectSageDatabase(
  dataSource: DataSource,
  target: DatabaseTarget,
  retry: ConnectRetry,
  logger: SageLogger,
): Promise<void> {
  const reason = (error: unknown): string =>
    scrubSecrets(connectFailureReason(error), target.secrets);
  await retryAtStartup(() => dataSource.initialize(), {
    retries: retry.retries,
    delayMs: retry.delayMs,
    isPermanent: (error) => permanentConnectFix(error, target.option) !== undefined,
    onRetry: ({ error, attempt, attempts, delayMs }) =>
      logger.warn(
        `Sage cannot connect to PostgreSQL at ${target.address} (option ${target.option}): ${reason(error)}; attempt ${attempt}/${attempts}, retrying in ${delayMs} ms`,
        { event: 'sage.database.connect_retry', attempt, attempts },
      ),
    giveUp: ({ error, attempt }) =>
      new SageDatabaseUnavailableError(
        {
          address: target.address,
          option: target.option,
          attempts: attempt,
          reason: reason(error),
          fix:
            permanentConnectFix(error, target.option) ??
            `Check that PostgreSQL is running and reachable there, and ${target.option}; ` +
              `startup tried ${attempt} time(s), ${retry.delayMs} ms apart (options retryAttempts, retryDelay).`,
        },
        // The driver's error, for debugging: its message names no password (pg never echoes it).
        { cause: error },
      ),
  });
}
