/**
 * TLS and credentials of the standalone relay, from the environment (PostgreSQL and NATS): each
 * secret has a `*_FILE` variant for mounted secrets. Values are never logged nor put in errors.
 */
import type { NatsSecurityOptions } from '../brokers/nats/nats-security-options';
import { InvalidOptionsError } from '../core/errors';
import type { PostgresPassword, PostgresSslOptions } from '../persistence/postgres/postgres-ssl';
import { envRotatingSecret, envSecret } from './env-secret';

export interface RelayPostgresSecurity {
  /** SAGE_DB_SSL_CA / _CERT / _KEY (each or its `_FILE`); SAGE_DB_SSL=true alone: the system CAs. */
  ssl: true | PostgresSslOptions | undefined;
  /** SAGE_DB_PASSWORD, or SAGE_DB_PASSWORD_FILE re-read for each new connection (rotation). */
  password: PostgresPassword | undefined;
}

/** PostgreSQL's TLS and password from the environment. */
export function readRelayPostgresSecurity(env: NodeJS.ProcessEnv): RelayPostgresSecurity {
  const ca = envSecret(env, 'SAGE_DB_SSL_CA');
  const cert = envSecret(env, 'SAGE_DB_SSL_CERT');
  const key = envSecret(env, 'SAGE_DB_SSL_KEY');
  if ((cert === undefined) !== (key === undefined))
    throw new InvalidOptionsError(
      cert === undefined ? 'SAGE_DB_SSL_CERT' : 'SAGE_DB_SSL_KEY',
      'a client certificate and its key go together: set both SAGE_DB_SSL_CERT and SAGE_DB_SSL_KEY (or their _FILE variants)',
    );
  const flag = env.SAGE_DB_SSL?.trim().toLowerCase();
  if (flag !== undefined && flag !== '' && flag !== 'true' && flag !== 'false')
    throw new InvalidOptionsError('SAGE_DB_SSL', 'must be true or false');
  if (flag === 'false' && (ca ?? cert) !== undefined)
    throw new InvalidOptionsError(
      'SAGE_DB_SSL',
      'is false but SAGE_DB_SSL_CA / _CERT / _KEY are set',
    );
  const ssl =
    ca !== undefined || cert !== undefined
      ? { ...(ca !== undefined ? { ca } : {}), ...(cert !== undefined ? { cert, key } : {}) }
      : flag === 'true'
        ? (true as const)
        : undefined;
  const password = envRotatingSecret(env, 'SAGE_DB_PASSWORD');
  if (password !== undefined && urlHasPassword(env.DATABASE_URL))
    // node-postgres would use the URL's password and ignore this one (and its rotation).
    throw new InvalidOptionsError(
      env.SAGE_DB_PASSWORD_FILE?.trim() ? 'SAGE_DB_PASSWORD_FILE' : 'SAGE_DB_PASSWORD',
      'is set but DATABASE_URL holds a password too: remove the password from DATABASE_URL (postgres://user@host:5432/db)',
    );
  return { ssl, password };
}

function urlHasPassword(url: string | undefined): boolean {
  try {
    return url !== undefined && new URL(url.trim()).password !== '';
  } catch {
    return false;
  }
}

const NATS_VARIABLES = [
  'SAGE_NATS_TLS_CA',
  'SAGE_NATS_TLS_CERT',
  'SAGE_NATS_TLS_KEY',
  'SAGE_NATS_USER',
  'SAGE_NATS_PASSWORD',
  'SAGE_NATS_TOKEN',
  'SAGE_NATS_NKEY_SEED',
  'SAGE_NATS_CREDS_FILE',
];

/**
 * The NATS adapter's TLS and credentials from the environment; undefined when none is set.
 * InvalidOptionsError when set for a broker URL that is not `nats://` / `tls://`.
 */
export function readRelayNatsSecurity(
  env: NodeJS.ProcessEnv,
  brokerUrl: string,
): NatsSecurityOptions | undefined {
  const set = NATS_VARIABLES.filter((n) => env[n]?.trim() || env[`${n}_FILE`]?.trim());
  if (!set.length) return undefined;
  if (!/^(nats|tls):\/\//i.test(brokerUrl))
    throw new InvalidOptionsError(
      set[0]!,
      'is set but SAGE_BROKER_URL is not a nats:// or tls:// URL; unset it or point SAGE_BROKER_URL at NATS',
    );
  const ca = envSecret(env, 'SAGE_NATS_TLS_CA');
  const cert = envSecret(env, 'SAGE_NATS_TLS_CERT');
  const key = envSecret(env, 'SAGE_NATS_TLS_KEY');
  if ((cert === undefined) !== (key === undefined))
    throw new InvalidOptionsError(
      cert === undefined ? 'SAGE_NATS_TLS_CERT' : 'SAGE_NATS_TLS_KEY',
      'a client certificate and its key go together: set both SAGE_NATS_TLS_CERT and SAGE_NATS_TLS_KEY (or their _FILE variants)',
    );
  const user = env.SAGE_NATS_USER?.trim() || undefined;
  const password = envRotatingSecret(env, 'SAGE_NATS_PASSWORD');
  if ((user === undefined) !== (password === undefined))
    throw new InvalidOptionsError(
      user === undefined ? 'SAGE_NATS_USER' : 'SAGE_NATS_PASSWORD',
      'is needed too: NATS user/password authentication takes SAGE_NATS_USER and SAGE_NATS_PASSWORD (or SAGE_NATS_PASSWORD_FILE)',
    );
  const token = envRotatingSecret(env, 'SAGE_NATS_TOKEN');
  const nkeySeed = envSecret(env, 'SAGE_NATS_NKEY_SEED');
  const credsFile = env.SAGE_NATS_CREDS_FILE?.trim() || undefined;
  const ways = [
    user !== undefined ? 'SAGE_NATS_USER/SAGE_NATS_PASSWORD' : undefined,
    token !== undefined ? 'SAGE_NATS_TOKEN' : undefined,
    nkeySeed !== undefined ? 'SAGE_NATS_NKEY_SEED' : undefined,
    credsFile !== undefined ? 'SAGE_NATS_CREDS_FILE' : undefined,
  ].filter((w): w is string => w !== undefined);
  if (ways.length > 1)
    throw new InvalidOptionsError(
      ways[1]!.split('/')[0]!,
      `NATS takes one way of authenticating; ${ways.join(' and ')} are set: keep one`,
    );
  const tls =
    ca !== undefined || cert !== undefined
      ? { ...(ca !== undefined ? { ca } : {}), ...(cert !== undefined ? { cert, key } : {}) }
      : undefined;
  return {
    ...(tls ? { tls } : {}),
    ...(user !== undefined ? { user, password } : {}),
    ...(token !== undefined ? { token } : {}),
    ...(nkeySeed !== undefined ? { nkeySeed } : {}),
    ...(credsFile !== undefined ? { credsFile } : {}),
  };
}
