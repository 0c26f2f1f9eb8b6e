/**
 * TLS to PostgreSQL: Sage's `postgres.ssl` option checked once and handed to node-postgres, which
 * takes Node's TLS options. Certificates and keys never appear in an error.
 */
import type { TlsOptions } from 'node:tls';
import { InvalidOptionsError } from '../../core/errors';

/** TLS settings for PostgreSQL, as node-postgres takes them. */
export interface PostgresSslOptions {
  /** CA certificate(s) (PEM) the server's certificate must chain to. Default: the system CAs. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Client certificate (PEM), for `hostssl … cert` or `clientcert=verify-full`. */
  cert?: string | Buffer;
  /** The client certificate's private key (PEM). */
  key?: string | Buffer;
  /**
   * Verify the server's certificate and host name. Default true; false encrypts without knowing
   * who answers (`sslmode=require` in libpq terms): for tests only.
   */
  rejectUnauthorized?: boolean;
  /** Host name the certificate must be for, when it differs from the host connected to. */
  servername?: string;
}

const KEYS = ['ca', 'cert', 'key', 'rejectUnauthorized', 'servername'];

const isPem = (v: unknown): boolean => typeof v === 'string' || Buffer.isBuffer(v);

/**
 * node-postgres' `ssl` for `ssl` (option name `option`, e.g. `postgres.ssl`): `true` → TLS
 * verified against the system CAs; an object → those settings, `rejectUnauthorized` true unless
 * set false. InvalidOptionsError on anything else.
 */
export function pgSslOptions(
  ssl: boolean | PostgresSslOptions | undefined,
  option = 'postgres.ssl',
): boolean | (TlsOptions & { servername?: string }) | undefined {
  if (ssl === undefined || typeof ssl === 'boolean') return ssl;
  if (typeof ssl !== 'object' || ssl === null || Array.isArray(ssl))
    throw new InvalidOptionsError(
      option,
      'must be true or an object { ca, cert, key, rejectUnauthorized, servername }',
    );
  for (const key of Object.keys(ssl))
    if (!KEYS.includes(key))
      throw new InvalidOptionsError(
        `${option}.${key}`,
        `unknown option; known: ${KEYS.join(', ')}`,
      );
  if (ssl.ca !== undefined && !(Array.isArray(ssl.ca) ? ssl.ca.every(isPem) : isPem(ssl.ca)))
    throw new InvalidOptionsError(
      `${option}.ca`,
      'must be a PEM string or Buffer (or an array of them)',
    );
  for (const field of ['cert', 'key'] as const)
    if (ssl[field] !== undefined && !isPem(ssl[field]))
      throw new InvalidOptionsError(
        `${option}.${field}`,
        'must be a PEM string or Buffer (the value is not shown)',
      );
  if ((ssl.cert === undefined) !== (ssl.key === undefined))
    throw new InvalidOptionsError(
      `${option}.${ssl.cert === undefined ? 'cert' : 'key'}`,
      'a client certificate and its private key go together: give both cert and key',
    );
  if (ssl.rejectUnauthorized !== undefined && typeof ssl.rejectUnauthorized !== 'boolean')
    throw new InvalidOptionsError(`${option}.rejectUnauthorized`, 'must be true or false');
  if (ssl.servername !== undefined && (typeof ssl.servername !== 'string' || !ssl.servername))
    throw new InvalidOptionsError(`${option}.servername`, 'must be a host name');
  return {
    ...(ssl.ca !== undefined ? { ca: ssl.ca } : {}),
    ...(ssl.cert !== undefined ? { cert: ssl.cert, key: ssl.key } : {}),
    ...(ssl.servername !== undefined ? { servername: ssl.servername } : {}),
    rejectUnauthorized: ssl.rejectUnauthorized ?? true,
  };
}

/** A password, or a function giving one for each new connection (rotation without a restart). */
export type PostgresPassword = string | (() => string | Promise<string>);

/** Checks `password` (option name `option`); never shows it. */
export function checkPostgresPassword(password: unknown, option = 'postgres.password'): void {
  if (password !== undefined && typeof password !== 'string' && typeof password !== 'function')
    throw new InvalidOptionsError(
      option,
      'must be a string or a function returning one (or a Promise of one)',
    );
}
