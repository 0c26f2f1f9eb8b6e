import { isIP } from 'node:net';
import { InvalidOptionsError, SagaOutboxError } from '../../core/errors';
import { isProductionMode } from '../../core/startup/production-mode';

/** Environment variable that lets the embedded database start with `NODE_ENV=production`. */
export const EMBEDDED_IN_PRODUCTION_ENV = 'SAGE_EMBEDDED_IN_PRODUCTION';

/**
 * The embedded database was asked for with `NODE_ENV=production` (code `EMBEDDED_IN_PRODUCTION`).
 * PGlite is one in-process session that accepts any password: a demo and development tool. The
 * usual cause is a production deploy that lost its database settings and would otherwise run
 * silently on an in-memory database.
 */
export class EmbeddedDatabaseInProductionError extends SagaOutboxError {
  constructor() {
    super(
      'EMBEDDED_IN_PRODUCTION',
      'The embedded database (PGlite) does not start with NODE_ENV=production: it accepts any password and keeps one in-process session, for demos and development. ' +
        'Give Sage a PostgreSQL server (SagaOutboxModule `postgres` or `dataSource`; DATABASE_URL for the samples), ' +
        `or, to run embedded in production anyway, set \`embedded: { allowInProduction: true }\` (startEmbeddedPostgres({ allowInProduction: true })) or ${EMBEDDED_IN_PRODUCTION_ENV}=1.`,
    );
  }
}

/** Throws EmbeddedDatabaseInProductionError in production unless explicitly allowed. */
export function assertEmbeddedAllowed(
  options: { allowInProduction?: boolean },
  env: NodeJS.ProcessEnv = process.env,
): void {
  if (!isProductionMode(env)) return;
  if (options.allowInProduction === true) return;
  const flag = env[EMBEDDED_IN_PRODUCTION_ENV]?.trim().toLowerCase();
  if (flag === '1' || flag === 'true') return;
  throw new EmbeddedDatabaseInProductionError();
}

/**
 * The embedded database accepts any password, so it listens on a loopback interface only:
 * `localhost`, `127.x.x.x` or `::1`. Anything else is an InvalidOptionsError naming `host`.
 */
export function assertLoopbackHost(host: string): void {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  const loopback =
    h === 'localhost' ||
    h === '::1' ||
    (isIP(h) === 4 && h.startsWith('127.')) ||
    /^::ffff:127\.\d+\.\d+\.\d+$/.test(h);
  if (!loopback)
    throw new InvalidOptionsError(
      'host',
      `must be a loopback address (127.0.0.1, ::1 or localhost), got "${host}": the embedded database accepts any password, so it never listens where other machines can reach it; use a PostgreSQL server for that`,
    );
}
