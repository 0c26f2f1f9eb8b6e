import type { MigrationInterface, QueryRunner } from 'typeorm';
import { LOCK_MIGRATIONS_FOR_TRANSACTION } from '../persistence/postgres/migration-lock.sql';
import { DEFAULT_SAGA_SCHEMA, type SagaSchema } from '../persistence/postgres/schema-name';

/** A migration class as TypeORM's `migrations` option takes it. */
export type SagaOutboxMigrationClass = new () => MigrationInterface;

/**
 * TypeORM reads a migration's timestamp from the last 13 characters of its name, and identifies
 * executed migrations by name. The default schema keeps the plain name (`SageSagaState1764230400000`);
 * another schema is part of the name, so two Sage schemas in one database are tracked separately.
 */
export function migrationName(base: string, schema: SagaSchema, timestamp: number): string {
  if (!/^\d{13}$/.test(String(timestamp)))
    throw new Error(`migration timestamp ${timestamp} must have 13 digits`);
  return schema.name === DEFAULT_SAGA_SCHEMA
    ? `${base}${timestamp}`
    : `${base}_${schema.name}_${timestamp}`;
}

/**
 * Runs `statements` in order, serialised against every other Sage migrator by the migration
 * advisory lock. With TypeORM's default `migrationsTransactionMode` ("all") or "each", the lock
 * joins the migration's transaction; with "none" there is none, so we open one ourselves — a
 * transaction-scoped lock outside a transaction would be released at once and serialise nothing.
 *
 * `appliedProbe`, when given, is a query returning one row `{ applied: boolean }` that reads the
 * catalogs with a plain SELECT; when it says another migrator committed this migration while we
 * waited for the lock, the statements are skipped. `IF NOT EXISTS` alone is not enough: waiting on
 * an advisory lock does not make the backend take in the other session's catalog changes, so a name
 * this transaction already resolved before the wait can still read as missing. Observed with the
 * role named like the schema (`sage`, found through search_path's `"$user"` by TypeORM's first
 * query in the migration transaction): `CREATE SCHEMA IF NOT EXISTS` then failed with a unique
 * violation in about one of three concurrent fresh migrations. The probe's SELECT reads the
 * catalogs with a fresh snapshot, sees the other commit, and its catalog locks also make the
 * backend process the pending invalidations for the statements that follow.
 */
export async function runLocked(
  queryRunner: QueryRunner,
  statements: readonly string[],
  appliedProbe?: string,
): Promise<void> {
  const run = async (): Promise<void> => {
    await queryRunner.query(LOCK_MIGRATIONS_FOR_TRANSACTION);
    if (appliedProbe !== undefined) {
      const [probe] = (await queryRunner.query(appliedProbe)) as { applied: boolean }[];
      if (probe?.applied === true) return;
    }
    for (const sql of statements) await queryRunner.query(sql);
  };
  if (queryRunner.isTransactionActive) return run();
  await queryRunner.startTransaction();
  try {
    await run();
    await queryRunner.commitTransaction();
  } catch (error) {
    await queryRunner.rollbackTransaction();
    throw error;
  }
}
