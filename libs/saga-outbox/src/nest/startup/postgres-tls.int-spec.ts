import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Client } from 'pg';
import type { EntityManager } from 'typeorm';
import type { PrivatePostgres } from '@test/support/private-postgres';
import { startTlsPostgres } from '@test/support/private-tls-postgres';
import { CapturingLogger } from '@test/support/startup-support';
import { makeTestCa, type TestCa } from '@test/support/test-ca';
import {
  InvalidOptionsError,
  SageDatabase,
  SageDatabaseUnavailableError,
  SagaOutboxModule,
  SagaService,
  defineSaga,
  type SagaOutboxModuleOptions,
} from '../../index';

const saga = defineSaga<{ n: number }, EntityManager>('tls-saga')
  .step('one', { compensatable: false, run: () => 'ok' })
  .build();

async function boot(
  options: SagaOutboxModuleOptions,
  logger = new CapturingLogger(),
): Promise<INestApplicationContext> {
  @Module({ imports: [SagaOutboxModule.forRoot({ sagas: [saga], retryAttempts: 0, ...options })] })
  class AppModule {}
  return NestFactory.createApplicationContext(AppModule, { logger, abortOnError: false });
}

describe('PostgreSQL over TLS with SCRAM (a private hostssl-only server)', () => {
  let dir: string;
  let ca: TestCa;
  let otherCa: TestCa;
  let server: PrivatePostgres;
  let password = 'sage';
  const base = () => ({ host: '127.0.0.1', port: server.port, user: 'sage', database: 'sage' });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sage-pg-tls-'));
    ca = await makeTestCa(join(dir, 'ca'));
    otherCa = await makeTestCa(join(dir, 'other'), 'Some other CA');
    server = await startTlsPostgres(ca);
  }, 60_000);
  afterAll(async () => {
    await server?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('connects with ssl { ca } and a password function, runs a saga, and picks up a rotated password on new connections', async () => {
    let calls = 0;
    const app = await boot({
      postgres: {
        ...base(),
        poolSize: 2,
        ssl: { ca: Buffer.from(ca.caCert) },
        password: async () => {
          calls += 1;
          return Promise.resolve(password);
        },
      },
    });
    try {
      const sagas = app.get(SagaService);
      expect((await sagas.waitFor((await sagas.start('tls-saga', { n: 1 })).sagaId)).status).toBe(
        'completed',
      );
      const ds = app.get(SageDatabase).dataSource;
      const [row] = (await ds.query(
        'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
      )) as { ssl: boolean }[];
      expect(row?.ssl).toBe(true);
      expect(calls).toBeGreaterThanOrEqual(1);

      // Rotate: the role gets a new password, the provider returns it, the old sessions go away.
      const before = calls;
      await ds.query(`ALTER ROLE sage PASSWORD 'rotated-pw-2'`);
      password = 'rotated-pw-2';
      await ds.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'sage' AND pid <> pg_backend_pid()`,
      );
      await ds.query(`SELECT pg_terminate_backend(pg_backend_pid())`).catch(() => undefined);
      // New connections authenticate with the new password: the saga runs again (the first tries
      // may meet a pooled connection that was just terminated).
      let done = false;
      for (let i = 0; i < 50 && !done; i++) {
        try {
          const { sagaId } = await sagas.start('tls-saga', { n: 3 + i });
          done = (await sagas.waitFor(sagaId)).status === 'completed';
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      expect(done).toBe(true);
      expect(calls).toBeGreaterThan(before);
    } finally {
      await app.close();
      const admin = new Client({ ...base(), password, ssl: { ca: ca.caCert } });
      await admin.connect();
      await admin.query(`ALTER ROLE sage PASSWORD 'sage'`);
      await admin.end();
      password = 'sage';
    }
  });

  it('a URL with sslmode=verify-full and sslrootcert works as node-postgres takes it', async () => {
    const app = await boot({
      postgres: {
        url: `postgres://sage:sage@127.0.0.1:${server.port}/sage?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca.paths.caCert)}`,
      },
    });
    await app.close();
  });

  it('a server certificate from another CA: fails at once naming postgres.ssl.ca', async () => {
    const logger = new CapturingLogger();
    const error = await boot(
      { postgres: { ...base(), password: 'sage', ssl: { ca: otherCa.caCert } }, retryAttempts: 3 },
      logger,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SageDatabaseUnavailableError);
    expect((error as Error).message).toContain('self-signed certificate in certificate chain');
    expect((error as Error).message).toContain(
      "The server's TLS certificate is not signed by a CA Sage trusts: set postgres.ssl.ca to the CA certificate (PEM) that signed it.",
    );
    expect(logger.warnings()).toEqual([]); // permanent: no retries
  });

  it('a wrong password: the 28P01 message, never the password', async () => {
    const wrong = 'definitely-wrong-pw';
    const logger = new CapturingLogger();
    const error = await boot(
      { postgres: { ...base(), password: () => wrong, ssl: { ca: ca.caCert } } },
      logger,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SageDatabaseUnavailableError);
    expect((error as Error).message).toContain('password authentication failed for user "sage"');
    expect((error as Error).message).toContain(
      'Check the user name and password in postgres.user and postgres.password.',
    );
    expect(`${(error as Error).message}${(error as Error).stack}${logger.all}`).not.toContain(
      wrong,
    );
  });

  it('plaintext to the hostssl-only server: says to set postgres.ssl', async () => {
    const error = await boot({ postgres: { ...base(), password: 'sage' } }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SageDatabaseUnavailableError);
    expect((error as Error).message).toMatch(/no pg_hba\.conf entry .*no encryption/);
    expect((error as Error).message).toContain(
      'The server accepts this client only over TLS: set postgres.ssl (e.g. { ca: <the CA certificate> }), or sslmode=verify-full in the URL.',
    );
  });

  it('bad ssl and password options fail before connecting, naming the option and never a key', async () => {
    await expect(
      boot({ postgres: { ...base(), ssl: { ca: 42 as unknown as string } } }),
    ).rejects.toThrow(
      new InvalidOptionsError(
        'postgres.ssl.ca',
        'must be a PEM string or Buffer (or an array of them)',
      ),
    );
    await expect(boot({ postgres: { ...base(), ssl: { cert: ca.clientCert } } })).rejects.toThrow(
      /Invalid Sage option "postgres.ssl.key": a client certificate and its private key go together/,
    );
    const error = await boot({
      postgres: { ...base(), ssl: { key: ca.clientKey, verify: true } as never },
    }).catch((e: unknown) => e);
    expect((error as Error).message).toBe(
      'Invalid Sage option "postgres.ssl.verify": unknown option; known: ca, cert, key, rejectUnauthorized, servername',
    );
    expect((error as Error).message).not.toContain('PRIVATE KEY');
    await expect(boot({ postgres: { ...base(), password: 5 as never } })).rejects.toThrow(
      /"postgres.password": must be a string or a function/,
    );
  });
});
