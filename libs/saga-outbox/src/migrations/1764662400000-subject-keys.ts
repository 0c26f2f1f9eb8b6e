import type { MigrationInterface, QueryRunner } from 'typeorm';
import type { SagaSchema } from '../persistence/postgres/schema-name';
import { subjectKeyTable } from '../persistence/postgres/subject-key-queries.sql';
import { migrationName, runLocked, type SagaOutboxMigrationClass } from './migration-support';

export const SUBJECT_KEYS_MIGRATION_TIMESTAMP = 1764662400000;

/**
 * Data-subject keys for crypto-shredding (docs/data-protection-keys.md): `subject_key` holds one
 * 32-byte data key per data subject, wrapped (AES-256-GCM) with a master key of
 * `dataProtection.keys`; envelopes name the key by `id` (`s:<id>`), never the subject id. Erasing a
 * subject deletes its row.
 *
 * - `subject_id` UNIQUE: one key per subject, and the index the hot path (`keyFor`) and erasure use.
 * - No index for rotation: it walks the primary key in id order (keyset batches) filtering on
 *   `master_key_id <> active`, one pass over the table per rotation; an index on `master_key_id`
 *   cannot serve a `<>` filter.
 */
export function subjectKeysMigration(schema: SagaSchema): SagaOutboxMigrationClass {
  const name = migrationName('SageSubjectKeys', schema, SUBJECT_KEYS_MIGRATION_TIMESTAMP);
  const table = subjectKeyTable(schema);

  const up = [
    `CREATE TABLE IF NOT EXISTS ${table} (
      id            uuid        PRIMARY KEY,
      subject_id    text        NOT NULL CONSTRAINT subject_key_subject_id_key UNIQUE,
      master_key_id text        NOT NULL,
      wrapped       text        NOT NULL,
      created_at    timestamptz NOT NULL DEFAULT now()
    )`,
  ];

  // The table, looked up with a plain SELECT (see runLocked).
  const applied = `SELECT EXISTS (
      SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ${schema.literal} AND c.relname = 'subject_key'
    ) AS applied`;

  // Down: dropping the keys shreds every subject's data at once. Back the table up first if the
  // data must stay readable.
  const down = [`DROP TABLE IF EXISTS ${table}`];

  return class SageSubjectKeys1764662400000 implements MigrationInterface {
    readonly name = name;

    async up(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, up, applied);
    }

    async down(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, down);
    }
  };
}
