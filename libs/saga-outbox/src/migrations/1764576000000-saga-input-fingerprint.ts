import type { MigrationInterface, QueryRunner } from 'typeorm';
import type { SagaSchema } from '../persistence/postgres/schema-name';
import { migrationName, runLocked, type SagaOutboxMigrationClass } from './migration-support';

export const SAGA_INPUT_FINGERPRINT_MIGRATION_TIMESTAMP = 1764576000000;

/**
 * Idempotency keys remember the input they started (see `idempotencyConflict` in docs/sagas.md):
 * `saga_instance.input_fingerprint` holds the SHA-256 of the canonical JSON of the saga name and
 * input, written with the row when the saga has an idempotency key. A start reusing the key with
 * another input is then told apart from a repeat of the same request.
 *
 * Nullable with no default: a catalog-only change, no table rewrite. Rows created before it (and
 * sagas started without a key) keep NULL, which a later start with the same key treats as matching,
 * as it was before.
 */
export function sagaInputFingerprintMigration(schema: SagaSchema): SagaOutboxMigrationClass {
  const name = migrationName(
    'SageSagaInputFingerprint',
    schema,
    SAGA_INPUT_FINGERPRINT_MIGRATION_TIMESTAMP,
  );
  const { sagaInstance } = schema;

  const up = [
    `ALTER TABLE ${sagaInstance}
      ADD COLUMN IF NOT EXISTS input_fingerprint text NULL`,
  ];

  // The column, looked up with a plain SELECT (see runLocked): present means a concurrent migrator
  // committed this migration while we waited for the lock.
  const applied = `SELECT EXISTS (
      SELECT 1
      FROM pg_catalog.pg_attribute a
      JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ${schema.literal} AND c.relname = 'saga_instance'
        AND a.attname = 'input_fingerprint' AND NOT a.attisdropped
    ) AS applied`;

  // Down: the fingerprints are dropped; keys then match any input again (the behaviour before).
  const down = [`ALTER TABLE ${sagaInstance} DROP COLUMN IF EXISTS input_fingerprint`];

  return class SageSagaInputFingerprint1764576000000 implements MigrationInterface {
    readonly name = name;

    async up(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, up, applied);
    }

    async down(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, down);
    }
  };
}
