import 'reflect-metadata';
import { Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DataSource } from 'typeorm';
import { createTestDatabase, withClient, type TestDatabase } from '@test/support/pg';
import { CapturingLogger, closedPort } from '@test/support/startup-support';
import { TcpProxy } from '@test/support/tcp-proxy';
import {
  InvalidOptionsError,
  SageDatabase,
  SageDatabaseUnavailableError,
  SageSchemaError,
  SagaOutboxModule,
  sagaOutboxMigrations,
  type SagaOutboxModuleOptions,
} from '../../index';

const PASSWORD = 's3cret-pw';

async function boot(
  options: SagaOutboxModuleOptions,
  logger: CapturingLogger = new CapturingLogger(),
): Promise<INestApplicationContext> {
  @Module({ imports: [SagaOutboxModule.forRoot(options)] })
  class AppModule {}
  return NestFactory.createApplicationContext(AppModule, { logger, abortOnError: false });
}

describe('Startup: connecting to PostgreSQL', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db?.drop());

  it('a wrong URL, retryAttempts 0: one line naming Sage, the address, the option and the fix; never the password', async () => {
    const port = await closedPort();
    const logger = new CapturingLogger();
    const error = await boot(
      {
        postgres: { url: `postgres://sage:${PASSWORD}@127.0.0.1:${port}/orders` },
        retryAttempts: 0,
      },
      logger,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SageDatabaseUnavailableError);
    expect(error).toMatchObject({
      code: 'SAGE_DATABASE_UNAVAILABLE',
      address: `127.0.0.1:${port}/orders`,
      option: 'postgres.url',
    });
    expect((error as Error).message).toBe(
      `Sage cannot connect to PostgreSQL at 127.0.0.1:${port}/orders (option postgres.url): connect ECONNREFUSED 127.0.0.1:${port}. ` +
        'Check that PostgreSQL is running and reachable there, and postgres.url; startup tried 1 time(s), 3000 ms apart (options retryAttempts, retryDelay).',
    );
    expect(logger.warnings()).toEqual([]);
    expect(`${(error as Error).message}\n${(error as Error).stack}\n${logger.all}`).not.toContain(
      PASSWORD,
    );
  });

  it('retries retryAttempts times, retryDelay apart, one WARN per failed attempt, then names the attempts', async () => {
    const port = await closedPort();
    const logger = new CapturingLogger();
    const started = Date.now();
    const error = await boot(
      {
        postgres: { url: `postgres://sage:${PASSWORD}@127.0.0.1:${port}/orders` },
        retryAttempts: 2,
        retryDelay: 100,
      },
      logger,
    ).catch((e: unknown) => e);
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect(error).toBeInstanceOf(SageDatabaseUnavailableError);
    expect((error as Error).message).toMatch(
      new RegExp(
        `^Sage cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${port}/orders \\(option postgres\\.url\\) after 3 attempts: connect ECONNREFUSED`,
      ),
    );
    const warnings = logger.warnings().filter((w) => w.includes('cannot connect to PostgreSQL'));
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(
      new RegExp(
        `^Sage cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${port}/orders \\(option postgres\\.url\\): connect ECONNREFUSED 127\\.0\\.0\\.1:${port}; attempt 1/3, retrying in 100 ms`,
      ),
    );
    expect(warnings[1]).toContain('attempt 2/3, retrying in 100 ms');
    expect(logger.all).not.toContain(PASSWORD);
  });

  it('PostgreSQL coming up during the retries: the app starts', async () => {
    const c = db.connection;
    const proxy = new TcpProxy({ host: c.host, port: c.port });
    const port = await proxy.start();
    await proxy.stop(); // down at startup
    const logger = new CapturingLogger();
    let opened = false;
    const watch = setInterval(() => {
      if (!opened && logger.warnings().some((w) => w.includes('attempt 1/'))) {
        opened = true;
        void proxy.start();
      }
    }, 10);
    try {
      const app = await boot(
        {
          postgres: {
            host: '127.0.0.1',
            port,
            user: c.user,
            password: c.password,
            database: c.database,
          },
          runMigrations: false,
          retryAttempts: 50,
          retryDelay: 100,
        },
        logger,
      );
      try {
        expect(opened).toBe(true);
        const ds = app.get(SageDatabase).dataSource;
        await expect(ds.query('SELECT 1 AS one')).resolves.toEqual([{ one: 1 }]);
        expect(logger.warnings()[0]).toMatch(
          new RegExp(
            `^Sage cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${port}/${c.database} \\(option postgres\\.host\\): connect ECONNREFUSED`,
          ),
        );
      } finally {
        await app.close();
      }
    } finally {
      clearInterval(watch);
      await proxy.stop();
    }
  });

  it('a wrong password fails at once, without retries, saying what to check', async () => {
    const c = db.connection;
    const logger = new CapturingLogger();
    const started = Date.now();
    const error = await boot(
      {
        postgres: { url: `postgres://${c.user}:${PASSWORD}@${c.host}:${c.port}/${c.database}` },
        retryAttempts: 5,
        retryDelay: 5000,
      },
      logger,
    ).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(error).toBeInstanceOf(SageDatabaseUnavailableError);
    expect((error as Error).message).toBe(
      `Sage cannot connect to PostgreSQL at ${c.host}:${c.port}/${c.database} (option postgres.url): ` +
        `password authentication failed for user "${c.user}" (SQLSTATE 28P01). Check the user name and password in postgres.url.`,
    );
    expect(logger.warnings()).toEqual([]);
    expect(`${(error as Error).message}${logger.all}`).not.toContain(PASSWORD);
  });

  it('an unknown database fails at once, saying to create it', async () => {
    const c = db.connection;
    const error = await boot({
      postgres: {
        host: c.host,
        port: c.port,
        user: c.user,
        password: c.password,
        database: 'no_such_db',
      },
      retryAttempts: 5,
      retryDelay: 5000,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SageDatabaseUnavailableError);
    expect((error as Error).message).toBe(
      `Sage cannot connect to PostgreSQL at ${c.host}:${c.port}/no_such_db (option postgres.host): ` +
        'database "no_such_db" does not exist (SQLSTATE 3D000). Create the database, or fix its name in postgres.database.',
    );
  });

  it('an unparseable URL fails at once with InvalidOptionsError, without echoing it', async () => {
    const error = await boot({
      postgres: { url: `postgres://sage:${PASSWORD}@127.0.0.1:notaport/orders` },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as Error).message).toBe(
      'Invalid Sage option "postgres.url": is not a valid URL (expected postgres://user:password@host:5432/database); the value is not shown, as it may hold a password',
    );
  });

  it("the app's uninitialised DataSource is retried too, under option dataSource", async () => {
    const port = await closedPort();
    const dataSource = new DataSource({
      type: 'postgres',
      host: '127.0.0.1',
      port,
      username: 'sage',
      password: PASSWORD,
      database: 'orders',
    });
    const logger = new CapturingLogger();
    const error = await boot({ dataSource, retryAttempts: 1, retryDelay: 50 }, logger).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SageDatabaseUnavailableError);
    expect((error as Error).message).toMatch(
      new RegExp(
        `^Sage cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${port}/orders \\(option dataSource\\) after 2 attempts: connect ECONNREFUSED`,
      ),
    );
    expect(logger.warnings()).toHaveLength(1);
    expect(logger.all).not.toContain(PASSWORD);
  });
});

describe("Startup: checking Sage's schema", () => {
  const dbs: TestDatabase[] = [];
  afterAll(() => Promise.all(dbs.map((d) => d.drop())));
  const database = async (migrated: boolean): Promise<TestDatabase> => {
    const d = await createTestDatabase({ migrated });
    dbs.push(d);
    return d;
  };
  const postgres = (d: TestDatabase) => {
    const c = d.connection;
    return { host: c.host, port: c.port, user: c.user, password: c.password, database: c.database };
  };

  it('migrations not run (runMigrations: false): one line naming the schema, the tables and the fix', async () => {
    const d = await database(false);
    const error = await boot({ postgres: postgres(d), runMigrations: false }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SageSchemaError);
    const c = d.connection;
    expect((error as Error).message).toBe(
      `Sage's tables are missing in schema "sage" of ${c.host}:${c.port}/${c.database} ` +
        "(saga_instance, saga_step, outbox_message, inbox_message, inbox_failure): Sage's migrations have not run on this database. " +
        'Fix: run `npx sage migrate` with DATABASE_URL set to this database, or set runMigrations: true (the default with postgres, except under NODE_ENV=production).',
    );
    expect((error as Error).message).not.toContain('\n');
    expect(error).toMatchObject({ code: 'SAGE_SCHEMA_OUT_OF_DATE', schema: 'sage' });
  });

  it('one pending migration: names it', async () => {
    const d = await database(true); // migrated by sage migrate's way: public.migrations
    const [latest] = sagaOutboxMigrations()
      .slice(-1)
      .map((M) => new M().name!);
    await withClient(d.name, (client) =>
      client.query('DELETE FROM public.migrations WHERE name = $1', [latest]),
    );
    const error = await boot({ postgres: postgres(d), runMigrations: false }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SageSchemaError);
    const c = d.connection;
    expect((error as Error).message).toBe(
      `Sage's schema "sage" of ${c.host}:${c.port}/${c.database} is out of date: 1 Sage migration(s) pending (${latest}). ` +
        'Fix: run `npx sage migrate` with DATABASE_URL set to this database, or set runMigrations: true (the default with postgres, except under NODE_ENV=production).',
    );
    expect(error).toMatchObject({ pendingMigrations: [latest], missingTables: [] });
  });

  it("the app's DataSource without sagaOutboxMigrations(): the fix says to add them", async () => {
    const d = await database(false);
    const c = d.connection;
    const dataSource = new DataSource({
      type: 'postgres',
      host: c.host,
      port: c.port,
      username: c.user,
      password: c.password,
      database: c.database,
    });
    const error = await boot({ dataSource, schema: 'orders_sage' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SageSchemaError);
    expect((error as Error).message).toMatch(
      /^Sage's tables are missing in schema "orders_sage" of .*: Sage's migrations have not run on this database\. Fix: add \.\.\.sagaOutboxMigrations\(\{ schema: 'orders_sage' \}\) to your DataSource's migrations and run them, or run `npx sage migrate --schema orders_sage` with DATABASE_URL set to this database, or set runMigrations: true in SagaOutboxModule\.forRoot\.$/,
    );
    expect(dataSource.isInitialized).toBe(false); // Sage initialised it, so Sage closed it again
  });

  it("the app's DataSource with runMigrations: true migrates and starts; the check passes on the next start", async () => {
    const d = await database(false);
    const c = d.connection;
    const options = {
      type: 'postgres' as const,
      host: c.host,
      port: c.port,
      username: c.user,
      password: c.password,
      database: c.database,
    };
    const first = await boot({ dataSource: new DataSource(options), runMigrations: true });
    await first.get(SageDatabase).dataSource.destroy();
    await first.close();
    const again = await boot({ dataSource: new DataSource(options) });
    const ds = again.get(SageDatabase).dataSource;
    await ds.destroy();
    await again.close();
  });
});
