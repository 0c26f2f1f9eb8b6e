import type { DataSource } from 'typeorm';
import { sagaOutboxMigrations } from '../../migrations';
import { sagaSchema } from './schema-name';

/** Every table Sage's migrations create, in the order they create them. */
export const SAGE_TABLES: readonly string[] = [
  'saga_instance',
  'saga_step',
  'outbox_message',
  'inbox_message',
  'inbox_failure',
];

/**
 * Which of the tables ($2) do not exist in the schema ($1), in the order given. `to_regclass`
 * answers NULL for a missing relation (no error, no lock), so this runs before anything else.
 */
const MISSING_TABLES = `
  SELECT t.name
  FROM unnest($2::text[]) WITH ORDINALITY AS t(name, n)
  WHERE to_regclass(format('%I.%I', $1::text, t.name)) IS NULL
  ORDER BY t.n`;

/** Sage's tables that do not exist in `schema` (validated first). */
export async function missingSageTables(
  dataSource: DataSource,
  schema?: string,
): Promise<string[]> {
  const rows = await dataSource.query<{ name: string }[]>(MISSING_TABLES, [
    sagaSchema(schema).name,
    SAGE_TABLES,
  ]);
  return rows.map((r) => r.name);
}

export interface PendingSageMigrationsOptions {
  /** Schema of Sage's tables (default `sage`): Sage's migration names depend on it. */
  schema?: string;
  /**
   * TypeORM migrations tables to read, in the DataSource's schema for them (its `schema` option,
   * else the search_path), as TypeORM itself records runs there. A migration recorded in any of
   * them counts as run. Default: the DataSource's own (`migrationsTableName`, else `migrations`).
   */
  migrationsTables?: readonly string[];
}

/**
 * Names of Sage's migrations (for `schema`), oldest first, that no `migrationsTables` records as
 * run. Only reads: a migrations table that does not exist records nothing and is not created.
 * `sage migrate --check` and the module's startup check both use it.
 */
export async function pendingSageMigrations(
  dataSource: DataSource,
  options: PendingSageMigrationsOptions = {},
): Promise<string[]> {
  const names = sagaOutboxMigrations({ schema: options.schema }).map((M) => new M().name ?? M.name);
  const tables = options.migrationsTables ?? [
    dataSource.options.migrationsTableName ?? 'migrations',
  ];
  const run = new Set<string>();
  for (const table of new Set(tables))
    for (const name of await executedMigrations(dataSource, table)) run.add(name);
  return names.filter((name) => !run.has(name));
}

/** Names recorded in one TypeORM migrations table, resolved as TypeORM's MigrationExecutor does. */
async function executedMigrations(dataSource: DataSource, table: string): Promise<string[]> {
  const { driver } = dataSource;
  const path = driver.buildTableName(
    table,
    (driver.options as { schema?: string }).schema,
    driver.database,
  );
  const runner = dataSource.createQueryRunner();
  try {
    if (!(await runner.hasTable(path))) return [];
    const rows = await dataSource
      .createQueryBuilder(runner)
      .select()
      .from(path, table)
      .getRawMany<{ name: string }>();
    return rows.map((r) => r.name);
  } finally {
    await runner.release();
  }
}
