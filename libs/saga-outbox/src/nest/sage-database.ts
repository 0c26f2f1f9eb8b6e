import { DataSource } from 'typeorm';
import { sagaOutboxMigrations } from '../../../../migrations';
import {
  startEmbeddedPostgres,
  type EmbeddedPostgres,
} from '../persistence/postgres/embedded-postgres';
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

export async function openSageDatabase(options: SagaOutboxModuleOptions): Promise<SageDatabase> {
  const schema = options.schema ?? 'sage';
  if (options.dataSource) {
    const ds = options.dataSource;
    if (!ds.isInitialized) await ds.initialize();
    if (options.runMigrations === true) await runSageMigrations(ds, schema);
    return new SageDatabase(ds, schema, { dataSource: false });
  }
  let embedded: EmbeddedPostgres | undefined;
  let connection: {
    url?: string;
    host?: string;
    port?: number;
    username?: string;
    password?: string;
    database?: string;
  };
  if (options.postgres) {
    const p = options.postgres;
    connection = {
      url: p.url,
      host: p.host,
      port: p.port,
      username: p.user,
      password: p.password,
      database: p.database,
    };
  } else {
    embedded = await startEmbeddedPostgres({
      dataDir: options.embedded?.dataDir,
      maxConnections: options.embedded?.maxConnections ?? 8,
    });
    connection = {
      host: embedded.host,
      port: embedded.port,
      username: 'postgres',
      password: 'postgres',
      database: 'postgres',
    };
  }
  const poolSize =
    options.postgres?.poolSize ??
    (embedded ? Math.max(1, (options.embedded?.maxConnections ?? 8) - 1) : 10);
  const ds = new DataSource({
    type: 'postgres',
    ...connection,
    synchronize: false,
    migrationsRun: false,
    migrations: sagaOutboxMigrations({ schema }),
    migrationsTableName: 'sage_migrations',
    extra: { max: poolSize },
  });
  try {
    await ds.initialize();
    if (options.runMigrations !== false) await runSageMigrations(ds, schema);
  } catch (error) {
    if (ds.isInitialized) await ds.destroy();
    await embedded?.stop();
    throw error;
  }
  return new SageDatabase(ds, schema, { dataSource: true, embedded });
}

async function runSageMigrations(ds: DataSource, schema: string): Promise<void> {
  // A user DataSource may not list our migrations: run ours explicitly, each in its own transaction.
  const migrations = sagaOutboxMigrations({ schema });
  if (
    ds.migrations.length === 0 ||
    !migrations.every((m) => ds.migrations.some((x) => x.name === m.name))
  ) {
    const runner = new DataSource({
      ...ds.options,
      migrations,
      migrationsTableName: 'sage_migrations',
    });
    await runner.initialize();
    try {
      await runner.runMigrations({ transaction: 'each' });
    } finally {
      await runner.destroy();
    }
    return;
  }
  await ds.runMigrations({ transaction: 'each' });
}
