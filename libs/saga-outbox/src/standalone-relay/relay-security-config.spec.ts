import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidOptionsError } from '../core/errors';
import { readRelayConfig } from './relay-config';

const dir = mkdtempSync(join(tmpdir(), 'sage-relay-env-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};
const pg = { DATABASE_URL: 'postgres://u@db:5432/app', SAGE_BROKER_URL: 'memory://' };
const nats = { ...pg, SAGE_BROKER_URL: 'tls://nats:4222' };

describe('relay TLS and credentials from the environment', () => {
  it('PostgreSQL: CA, client certificate and key from values or _FILE; the password file is re-read per connection', () => {
    const passwordFile = file('pg-password', 'first-pw\n');
    const config = readRelayConfig({
      ...pg,
      SAGE_DB_SSL_CA_FILE: file('ca.pem', 'CA PEM\n'),
      SAGE_DB_SSL_CERT: 'CERT PEM',
      SAGE_DB_SSL_KEY_FILE: file('key.pem', 'KEY PEM\n'),
      SAGE_DB_PASSWORD_FILE: passwordFile,
    });
    expect(config.postgres.ssl).toEqual({ ca: 'CA PEM', cert: 'CERT PEM', key: 'KEY PEM' });
    const password = config.postgres.password as () => string;
    expect(password()).toBe('first-pw');
    writeFileSync(passwordFile, 'rotated-pw\n');
    expect(password()).toBe('rotated-pw');
    expect(
      readRelayConfig({ ...pg, SAGE_DB_SSL: 'true', SAGE_DB_PASSWORD: 'pw' }).postgres,
    ).toEqual({
      ssl: true,
      password: 'pw',
    });
  });

  it('NATS: TLS and one way of authenticating', () => {
    expect(
      readRelayConfig({
        ...nats,
        SAGE_NATS_TLS_CA: 'CA',
        SAGE_NATS_USER: 'alice',
        SAGE_NATS_PASSWORD_FILE: file('nats-pw', 'pw-from-file\n'),
      }).nats,
    ).toMatchObject({ tls: { ca: 'CA' }, user: 'alice' });
    expect(readRelayConfig({ ...nats, SAGE_NATS_TOKEN: 'tok' }).nats).toEqual({ token: 'tok' });
    expect(
      readRelayConfig({ ...nats, SAGE_NATS_NKEY_SEED_FILE: file('seed', 'SUSEED\n') }).nats,
    ).toEqual({
      nkeySeed: 'SUSEED',
    });
    expect(
      readRelayConfig({ ...nats, SAGE_NATS_CREDS_FILE: '/run/secrets/nats.creds' }).nats,
    ).toEqual({
      credsFile: '/run/secrets/nats.creds',
    });
  });

  it.each([
    [
      { ...pg, SAGE_DB_PASSWORD: 'a-secret-pw', SAGE_DB_PASSWORD_FILE: '/x' },
      'SAGE_DB_PASSWORD',
      'and SAGE_DB_PASSWORD_FILE are both set; set one of them',
    ],
    [
      { ...pg, SAGE_DB_SSL_CA_FILE: '/no/such/file' },
      'SAGE_DB_SSL_CA_FILE',
      'cannot read the file "/no/such/file" (ENOENT); mount the secret there or fix the path',
    ],
    [
      { ...pg, SAGE_DB_SSL_CERT: 'c' },
      'SAGE_DB_SSL_KEY',
      'a client certificate and its key go together: set both SAGE_DB_SSL_CERT and SAGE_DB_SSL_KEY (or their _FILE variants)',
    ],
    [{ ...pg, SAGE_DB_SSL: 'yes' }, 'SAGE_DB_SSL', 'must be true or false'],
    [
      {
        ...pg,
        DATABASE_URL: 'postgres://u:a-secret-in-url@db/app',
        SAGE_DB_PASSWORD: 'a-secret-pw',
      },
      'SAGE_DB_PASSWORD',
      'is set but DATABASE_URL holds a password too: remove the password from DATABASE_URL (postgres://user@host:5432/db)',
    ],
    [
      { ...pg, SAGE_NATS_TOKEN: 'a-secret-token' },
      'SAGE_NATS_TOKEN',
      'is set but SAGE_BROKER_URL is not a nats:// or tls:// URL; unset it or point SAGE_BROKER_URL at NATS',
    ],
    [
      { ...nats, SAGE_NATS_USER: 'alice' },
      'SAGE_NATS_PASSWORD',
      'is needed too: NATS user/password authentication takes SAGE_NATS_USER and SAGE_NATS_PASSWORD (or SAGE_NATS_PASSWORD_FILE)',
    ],
    [
      { ...nats, SAGE_NATS_TOKEN: 'a-secret-token', SAGE_NATS_NKEY_SEED: 'SUX' },
      'SAGE_NATS_NKEY_SEED',
      'NATS takes one way of authenticating; SAGE_NATS_TOKEN and SAGE_NATS_NKEY_SEED are set: keep one',
    ],
    [
      { ...nats, SAGE_NATS_TLS_KEY: 'k' },
      'SAGE_NATS_TLS_CERT',
      'a client certificate and its key go together: set both SAGE_NATS_TLS_CERT and SAGE_NATS_TLS_KEY (or their _FILE variants)',
    ],
  ])('%j → %s', (env, option, problem) => {
    let error: unknown;
    try {
      readRelayConfig(env);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as Error).message).toBe(`Invalid Sage option "${option}": ${problem}`);
    expect((error as Error).message).not.toMatch(/a-secret/);
  });
});
