import { DataSource, type DataSourceOptions, type EntityManager } from 'typeorm';
import { InvalidOptionsError } from '../../core/errors';
import { loadOptionalPeer } from '../../optional-peer';
import { createSagaDataSource, runMigrationsLocked } from '../../persistence/postgres/data-source';
import type * as EmbeddedModule from '../../persistence/postgres/embedded-postgres';
import type { EmbeddedPostgres } from '../../persistence/postgres/embedded-postgres';
import { queryOnce } from '../../persistence/postgres/run-statement';
import type { SagaSchema } from '../../persistence/postgres/schema-name';
import { sageTables, truncateTables, userTable } from './harness-queries.sql';

/** A TypeORM migration class (`class OrderTables1764230500000 implements MigrationInterface`). */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- TypeORM's own type for migration classes
export type MigrationClass = Function;

/** Sage's migration history table, as SagaOutboxModule names it on databases it migrates. */
const MIGRATIONS_TABLE = 'sage_migrations';

/**
 * The database every run of one harness shares: embedded PGlite (started once; its startup is the
 * slow part) or a PostgreSQL database given by URL. Migrated once (Sage's migrations and the
 * user's); emptied and seeded before each run. The harness's own connections (seeding, replies,
 * invariants) go straight to it; each worker connects through a WorkerLink.
 */
export class HarnessDatabase {
  private constructor(
    /** The harness's own connections. */
    readonly dataSource: DataSource,
    /** Where workers' links forward to. */
    readonly target: { host: string; port: number },
    private readonly url: URL,
    private readonly schema: SagaSchema,
    private readonly embedded: EmbeddedPostgres | undefined,
    private readonly userTables: readonly string[],
  ) {}

  static async open(options: {
    url: string | undefined;
    schema: SagaSchema;
    migrations: readonly MigrationClass[];
    tables: readonly string[];
    setup: ((dataSource: DataSource) => Promise<void>) | undefined;
  }): Promise<HarnessDatabase> {
    const tables = options.tables.map(userTable);
    let embedded: EmbeddedPostgres | undefined;
    let url: URL;
    if (options.url === undefined) {
      const { startEmbeddedPostgres } = loadOptionalPeer(
        'the saga crash harness on its default embedded database (or give it `database: { url }`)',
        ['@electric-sql/pglite', '@electric-sql/pglite-socket'],
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy optional peer
        () => require('../../persistence/postgres/embedded-postgres') as typeof EmbeddedModule,
      );
      // Room for the harness's pool, a live worker's and a killed worker's draining connections.
      embedded = await startEmbeddedPostgres({ maxConnections: 64 });
      url = new URL(embedded.url);
    } else {
      url = parseUrl(options.url);
    }
    const base = createSagaDataSource({
      url: url.toString(),
      schema: options.schema.name,
      poolSize: 3,
      applicationName: 'sage-crash-harness',
      migrationsTableName: MIGRATIONS_TABLE,
    });
    const dataSourceOptions: DataSourceOptions = {
      ...base.options,
      migrations: [...(base.options.migrations as MigrationClass[]), ...options.migrations],
    };
    const dataSource = new DataSource(dataSourceOptions);
    try {
      await dataSource.initialize();
      await runMigrationsLocked(dataSource);
      await options.setup?.(dataSource);
    } catch (error) {
      if (dataSource.isInitialized) await dataSource.destroy();
      await embedded?.stop();
      throw error;
    }
    return new HarnessDatabase(
      dataSource,
      { host: url.hostname, port: Number(url.port || 5432) },
      url,
      options.schema,
      embedded,
      tables,
    );
  }

  get manager(): EntityManager {
    return this.dataSource.manager;
  }

  /** The database's URL with the host and port of a worker's link (credentials kept, never logged). */
  workerUrl(port: number): string {
    const url = new URL(this.url.toString());
    url.hostname = '127.0.0.1';
    url.port = String(port);
    return url.toString();
  }

  /** Empties Sage's tables and the user's `tables`, then seeds: each run starts from the same state. */
  async reset(seed: ((manager: EntityManager) => Promise<void>) | undefined): Promise<void> {
    const sage = (await queryOnce(this.dataSource, sageTables(this.schema))).map((r) => r.table);
    await queryOnce(this.dataSource, truncateTables([...sage, ...this.userTables]));
    await seed?.(this.dataSource.manager);
  }

  async close(): Promise<void> {
    try {
      if (this.dataSource.isInitialized) await this.dataSource.destroy();
    } finally {
      await this.embedded?.stop();
    }
  }
}

function parseUrl(value: string): URL {
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || !/^postgres(ql)?:$/.test(url.protocol) || !url.hostname)
    throw new InvalidOptionsError(
      'database.url',
      'must be a postgres:// URL of a database the harness may empty between runs (omit it to run on embedded PGlite)',
    );
  return url;
}
