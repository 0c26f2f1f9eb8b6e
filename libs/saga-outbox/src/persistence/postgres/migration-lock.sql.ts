/**
 * One advisory-lock key for every Sage migration ("sage:mig" as a big-endian int8), so that two
 * application instances migrating the same database at once take turns instead of racing on
 * `CREATE SCHEMA` / `CREATE TABLE` (which are not safe against each other even with IF NOT EXISTS).
 */
export const SAGE_MIGRATION_LOCK_KEY = '8314040071572253031';

/**
 * Taken first by each migration's `up`/`down`. Transaction-scoped: released by the migration's own
 * commit or rollback, so a crashed migrator can never leave it held.
 */
export const LOCK_MIGRATIONS_FOR_TRANSACTION = `SELECT pg_advisory_xact_lock(${SAGE_MIGRATION_LOCK_KEY})`;

/**
 * Taken by `runSagaOutboxMigrations` around the whole TypeORM run, on the connection the run uses:
 * it also serialises TypeORM's own bookkeeping (creating its `migrations` table, reading which
 * migrations ran), which happens outside any migration's transaction. Session-scoped, so it must be
 * released with UNLOCK_MIGRATIONS_FOR_SESSION (closing the connection releases it too).
 * Re-entrant with LOCK_MIGRATIONS_FOR_TRANSACTION on the same session.
 */
export const LOCK_MIGRATIONS_FOR_SESSION = `SELECT pg_advisory_lock(${SAGE_MIGRATION_LOCK_KEY})`;

export const UNLOCK_MIGRATIONS_FOR_SESSION = `SELECT pg_advisory_unlock(${SAGE_MIGRATION_LOCK_KEY})`;
