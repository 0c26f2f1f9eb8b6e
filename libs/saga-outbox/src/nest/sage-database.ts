import { DataSource } from 'typeorm';
import { sagaOutboxMigrations } from '../migrations';
import { createSagaDataSource, runMigrationsLocked } from '../persistence/postgres/data-source';
import type * as EmbeddedModule from '../persistence/postgres/embedded-postgres';
import type { EmbeddedPostgres } from '../persistence/postgres/embedded-postgres';
import { loadOptionalPeer } from '../optional-peer';
import type { SagaOutboxModuleOptions } from './saga-outbox.options';

/** The database Sage keeps its state in: the app's DataSource, its own pool, or embedded PGlite. */
export class SageDatabase {
  constructor(
    readonly dataSource: DataSource,
    readonly schema: string,
    /** What Sage opened itself and must close on shutdown. */
    private readonly owned: { dataSource: boolean; embedded?: EmbeddedPostgres },
  ) {}

  get embedded(): boolean {
    return this.owned.embedded !== undefined;
  }

  async close(): Promise<void> {
    if (this.owned.dataSource && this.dataSource.isInitialized) await this.dataSource.destroy();
    await this.owned.embedded?.stop();
  }
}

/** Sage's own migration history table when Sage runs its migrations on a DataSource it opened. */
const SAGE_MIGRATIONS_TABLE = 'sage_migrations';

export async function openSageDatabase(options: SagaOutboxModuleOptions): Promise<SageDatabase> {
  const schema = options.schema ?? 'sage';
  if (options.dataSource) {
    const ds = options.dataSource;
    if (!ds.isInitialized) await ds.initialize();
    if (options.runMigrations === true) await migrateUserDataSource(ds, schema);
    return new SageDatabase(ds, schema, { dataSource: false });
  }
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
    });
  }
  const p = options.postgres;
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
        }),
    schema,
    // PGlite serialises transactions across connections; a pool larger than its socket's limit only queues.
    poolSize:
      p?.poolSize ?? (embedded ? Math.max(1, (options.embedded?.maxConnections ?? 8) - 1) : 10),
    migrationsTableName: SAGE_MIGRATIONS_TABLE,
  });
  try {
    await ds.initialize();
    if (options.runMigrations !== false) await runMigrationsLocked(ds);
  } catch (error) {
    if (ds.isInitialized) await ds.destroy();
    await embedded?.stop();
    throw error;
  }
  return new SageDatabase(ds, schema, { dataSource: true, embedded });
}

/** `runMigrations: true` with the app's DataSource: Sage's migrations, serialised, on its connection settings. */
async function migrateUserDataSource(ds: DataSource, schema: string): Promise<void> {
  const ours = sagaOutboxMigrations({ schema });
  const listed = ours.every((m) => ds.migrations.some((x) => x.name === m.name));
  if (listed) {
    await runMigrationsLocked(ds);
    return;
  }
  const runner = new DataSource({
    ...ds.options,
    migrations: ours,
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
