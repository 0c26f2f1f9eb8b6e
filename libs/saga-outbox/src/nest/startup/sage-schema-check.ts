import type { DataSource } from 'typeorm';
import { sagaOutboxMigrations } from '../../migrations';
import type { SageLogger } from '../../core/ports/logger';
import { SageSchemaError } from '../../core/startup/startup-errors';
import { DEFAULT_SAGA_SCHEMA } from '../../persistence/postgres/schema-name';
import {
  missingSageTables,
  pendingSageMigrations,
} from '../../persistence/postgres/sage-schema-status';

/** Sage's own migrations table when Sage runs its migrations on a DataSource it opened. */
export const SAGE_MIGRATIONS_TABLE = 'sage_migrations';

/** How Sage's schema is supposed to be migrated here: it decides the fix the error suggests. */
export interface SchemaCheckContext {
  schema: string;
  /** `host:port/database`, for the message. */
  address: string;
  /** The app's DataSource (`dataSource` option) rather than Sage's own pool. */
  appDataSource: boolean;
  /** The app's DataSource lists `sagaOutboxMigrations()` among its migrations. */
  listed: boolean;
}

/**
 * Fails startup with one SageSchemaError line when Sage's tables are missing in `schema`, or when
 * some of Sage's migrations are not recorded as run in any table they are recorded in (the
 * DataSource's migrations table, `sage_migrations` when Sage ran them on its own pool or with
 * `runMigrations: true`, `migrations` when `sage migrate` did). When every table exists but no
 * Sage migration is recorded anywhere it looked (the schema was made some other way), it warns
 * instead: it cannot tell what ran.
 */
export async function assertSageSchema(
  dataSource: DataSource,
  context: SchemaCheckContext,
  logger: SageLogger,
): Promise<void> {
  const { schema } = context;
  const missingTables = await missingSageTables(dataSource, schema);
  const pendingMigrations = await pendingSageMigrations(dataSource, {
    schema,
    migrationsTables: [
      dataSource.options.migrationsTableName ?? 'migrations',
      SAGE_MIGRATIONS_TABLE,
      'migrations',
    ],
  });
  if (!missingTables.length && !pendingMigrations.length) return;
  const noneRecorded = pendingMigrations.length === sagaOutboxMigrations({ schema }).length;
  if (!missingTables.length && noneRecorded) {
    logger.warn(
      `Sage's tables exist in schema "${schema}" of ${context.address}, but none of its migrations is recorded in the migrations tables looked at (${SAGE_MIGRATIONS_TABLE}, migrations${dataSource.options.migrationsTableName ? `, ${dataSource.options.migrationsTableName}` : ''}): cannot tell whether the schema is current. Run \`npx sage migrate --check\` to make sure.`,
      { event: 'sage.schema.unverified', schema },
    );
    return;
  }
  throw new SageSchemaError({
    schema,
    address: context.address,
    missingTables,
    pendingMigrations,
    neverMigrated: noneRecorded,
    fix: schemaFix(context),
  });
}

function schemaFix({ schema, appDataSource, listed }: SchemaCheckContext): string {
  const other = schema !== DEFAULT_SAGA_SCHEMA;
  const cli = `run \`npx sage migrate${other ? ` --schema ${schema}` : ''}\` with DATABASE_URL set to this database`;
  if (!appDataSource)
    return `Fix: ${cli}, or set runMigrations: true (the default with postgres, except under NODE_ENV=production).`;
  if (listed)
    return `Fix: run your DataSource's migrations (they include sagaOutboxMigrations()), or ${cli}, or set runMigrations: true.`;
  return (
    `Fix: add ...sagaOutboxMigrations(${other ? `{ schema: '${schema}' }` : ''}) to your DataSource's migrations and run them, ` +
    `or ${cli}, or set runMigrations: true in SagaOutboxModule.forRoot.`
  );
}
