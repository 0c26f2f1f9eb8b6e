import { DataSource } from 'typeorm';
import type { SageLogger } from '../core/ports/logger';
import { sagaOutboxMigrations } from '../migrations';
import { createSagaDataSource, runMigrationsLocked } from '../persistence/postgres/data-source';
import { defaultRunMigrations } from '../core/startup/production-mode';
import { pgSslOptions } from '../persistence/postgres/postgres-ssl';
import type * as EmbeddedModule from '../persistence/postgres/embedded-postgres';
import type { EmbeddedPostgres } from '../persistence/postgres/embedded-postgres';
import { loadOptionalPeer } from '../optional-peer';
import { NestSageLogger } from './nest-sage-logger';
import type { SagaOutboxModuleOptions } from './saga-outbox.options';
import {
  connectSageDatabase,
  databaseTarget,
  type ConnectionFields,
  type ConnectRetry,
  type DatabaseTarget,
} from './startup/sage-database-connect';
import { assertSageSchema, SAGE_MIGRATIONS_TABLE } from './startup/sage-schema-check';

/** The database Sage keeps its state in: the app's DataSource, its own pool, or embedded PGlite. */
export class SageDatabase {
  constructor(
    readonly dataSource: DataSource,
    readonly schema: string,
    /** What Sage opened itself and must close on shutdown. */
    private readonly owned: { dataSource: boolean; embedded?: EmbeddedPostgres },
    /** The schema check still to run (the app's DataSource: see verifySchema). */
    private pendingSchemaCheck?: () => Promise<void>,
  ) {}

  get embedded(): boolean {
    return this.owned.embedded !== undefined;
  }

  /**
   * Runs the schema check deferred to module init. With the app's DataSource the app may migrate
   * it in a provider factory (or TypeORM's `migrationsRun`) that Nest resolves after Sage's
   * database: every factory has run by `onModuleInit`, so the check waits until then. A no-op
   * when Sage opened the database (checked right after its migrations) or once checked.
   */
  async verifySchema(): Promise<void> {
    const check = this.pendingSchemaCheck;
    this.pendingSchemaCheck = undefined;
    await check?.();
  }

  async close(): Promise<void> {
    if (this.owned.dataSource && this.dataSource.isInitialized) await this.dataSource.destroy();
    await this.owned.embedded?.stop();
  }
}

/** What opening the database needs of the module's options. */
export type SageDatabaseOptions = Pick<
  SagaOutboxModuleOptions,
  | 'dataSource'
  | 'postgres'
  | 'embedded'
  | 'schema'
  | 'runMigrations'
  | 'retryAttempts'
  | 'retryDelay'
>;

/**
 * Connects (retrying transient failures `retryAttempts` × `retryDelay`, see connectSageDatabase),
 * runs Sage's migrations when asked, then checks Sage's schema (see assertSageSchema): a database
 * Sage cannot use fails startup here with one line saying why and what to do, not later with a
 * raw driver error. On failure, whatever Sage opened is closed again.
 */
export async function openSageDatabase(
  options: SageDatabaseOptions,
  logger: SageLogger = new NestSageLogger('Sage'),
): Promise<SageDatabase> {
  const schema = options.schema ?? 'sage';
  const retry: ConnectRetry = {
    retries: options.retryAttempts ?? 9,
    delayMs: options.retryDelay ?? 3000,
  };
  if (options.dataSource) return openAppDataSource(options.dataSource, options, retry, logger);
  let embedded: EmbeddedPostgres | undefined;
  if (!options.postgres) {
    // Loaded only here: an app on its own PostgreSQL never loads PGlite (nor needs it installed).
    const { startEmbeddedPostgres } = loadOptionalPeer(
      'the embedded database (SagaOutboxModule without `dataSource` or `postgres`)',
      ['@electric-sql/pglite', '@electric-sql/pglite-socket'],
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy optional peer
      () => require('../persistence/postgres/embedded-postgres') as typeof EmbeddedModule,
    );
    embedded = await startEmbeddedPostgres({
      dataDir: options.embedded?.dataDir,
      maxConnections: options.embedded?.maxConnections ?? 8,
      allowInProduction: options.embedded?.allowInProduction,
    });
  }
  const p = options.postgres;
  let target: DatabaseTarget;
  try {
    target = embedded
      ? { ...databaseTarget({ url: embedded.url }, 'embedded'), option: 'embedded' }
      : databaseTarget(
          {
            url: p?.url,
            host: p?.host,
            port: p?.port,
            database: p?.database,
            password: p?.password,
          },
          'postgres',
        );
  } catch (error) {
    await embedded?.stop();
    throw error;
  }
  const ds = createSagaDataSource({
    ...(embedded
      ? { url: embedded.url }
      : {
          url: p?.url,
          host: p?.host,
          port: p?.port,
          username: p?.user,
          password: p?.password,
          database: p?.database,
          ssl: pgSslOptions(p?.ssl, 'postgres.ssl'),
        }),
    schema,
    // PGlite serialises transactions across connections; a pool larger than its socket's limit only queues.
    poolSize:
      p?.poolSize ?? (embedded ? Math.max(1, (options.embedded?.maxConnections ?? 8) - 1) : 10),
    migrationsTableName: SAGE_MIGRATIONS_TABLE,
  });
  try {
    await connectSageDatabase(ds, target, retry, logger);
    // Not given: migrate, except in production mode (NODE_ENV=production: the runtime role has no
    // DDL rights; `sage migrate` runs as the migrator). The embedded database always migrates.
    if (options.runMigrations ?? (embedded !== undefined || defaultRunMigrations()))
      await runMigrationsLocked(ds);
    await assertSageSchema(
      ds,
      { schema, address: target.address, appDataSource: false, listed: false },
      logger,
    );
  } catch (error) {
    if (ds.isInitialized) await ds.destroy();
    await embedded?.stop();
    throw error;
  }
  return new SageDatabase(ds, schema, { dataSource: true, embedded });
}

/**
 * The app's DataSource: initialised (with retries) if it is not yet, migrated when asked; its
 * schema is checked at module init (SageDatabase.verifySchema), once the app's own migrations ran.
 */
async function openAppDataSource(
  ds: DataSource,
  options: SageDatabaseOptions,
  retry: ConnectRetry,
  logger: SageLogger,
): Promise<SageDatabase> {
  const schema = options.schema ?? 'sage';
  const target = databaseTarget(ds.options as ConnectionFields, 'dataSource');
  const initializedHere = !ds.isInitialized;
  if (initializedHere) await connectSageDatabase(ds, target, retry, logger);
  const listed = listsSageMigrations(ds, schema);
  try {
    if (options.runMigrations === true) await migrateUserDataSource(ds, schema, listed);
  } catch (error) {
    // Startup fails: a pool Sage opened would keep the process alive.
    if (initializedHere && ds.isInitialized) await ds.destroy();
    throw error;
  }
  const check = async (): Promise<void> => {
    try {
      await assertSageSchema(
        ds,
        { schema, address: target.address, appDataSource: true, listed },
        logger,
      );
    } catch (error) {
      if (initializedHere && ds.isInitialized) await ds.destroy();
      throw error;
    }
  };
  return new SageDatabase(ds, schema, { dataSource: false }, check);
}

function listsSageMigrations(ds: DataSource, schema: string): boolean {
  return sagaOutboxMigrations({ schema }).every((M) => {
    const name = new M().name ?? M.name;
    return ds.migrations.some((x) => x.name === name);
  });
}

/** `runMigrations: true` with the app's DataSource: Sage's migrations, serialised, on its connection settings. */
async function migrateUserDataSource(
  ds: DataSource,
  schema: string,
  listed: boolean,
): Promise<void> {
  if (listed) {
    await runMigrationsLocked(ds);
    return;
  }
  const runner = new DataSource({
    ...ds.options,
    migrations: sagaOutboxMigrations({ schema }),
    migrationsTableName: SAGE_MIGRATIONS_TABLE,
    entities: [],
  });
  await runner.initialize();
  try {
    await runMigrationsLocked(runner);
  } finally {
    await runner.destroy();
  }
}
