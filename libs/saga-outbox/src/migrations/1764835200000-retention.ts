import type { MigrationInterface, QueryRunner } from 'typeorm';
import { outboxArchiveTable } from '../persistence/postgres/outbox-archive.sql';
import { outboxTables } from '../persistence/postgres/outbox-tables';
import type { SagaSchema } from '../persistence/postgres/schema-name';
import { migrationName, runLocked, type SagaOutboxMigrationClass } from './migration-support';

export const RETENTION_MIGRATION_TIMESTAMP = 1764835200000;

/**
 * Retention of saga state, dead letters and sent messages (docs/retention.md).
 *
 * - `saga_instance_terminal_idx`: terminal sagas by `updated_at` (the time of their last transition),
 *   so saga retention reads the oldest terminal sagas first and never touches live ones. Partial:
 *   running / waiting / compensating sagas are not in it at all.
 * - `outbox_message.dead_lettered_at`: when a message became a dead letter (set by the relay's
 *   failure mark), for the optional dead-letter TTL; existing dead letters take their last due time.
 *   Nullable, no default: a catalog-only change. Indexed on the few dead-letter rows only.
 * - `outbox_message_archive`: sent messages the outbox retention moved out of the hot table
 *   (`outbox.retention.archive`), kept `keepMs` after `archived_at`, then purged.
 *
 * Inbox dead letters need no new index: their `processed_at` is the time they were dead-lettered, and
 * the existing `inbox_message_processed_at_idx` serves the TTL (processed rows that old are gone).
 */
export function retentionMigration(schema: SagaSchema): SagaOutboxMigrationClass {
  const name = migrationName('SageRetention', schema, RETENTION_MIGRATION_TIMESTAMP);
  const { quoted, sagaInstance } = schema;
  const t = outboxTables(schema);
  const archive = outboxArchiveTable(schema);

  const up = [
    `CREATE INDEX IF NOT EXISTS saga_instance_terminal_idx
      ON ${sagaInstance} (updated_at)
      WHERE status IN ('completed', 'compensated', 'failed')`,
    `ALTER TABLE ${t.outboxMessage}
      ADD COLUMN IF NOT EXISTS dead_lettered_at timestamptz NULL`,
    // Dead letters are few (an operator queue): backfilling them is a short update.
    `UPDATE ${t.outboxMessage} SET dead_lettered_at = next_attempt_at
      WHERE status = 'dead_letter' AND dead_lettered_at IS NULL`,
    `CREATE INDEX IF NOT EXISTS outbox_message_dead_letter_expiry_idx
      ON ${t.outboxMessage} (dead_lettered_at)
      WHERE status = 'dead_letter'`,
    `CREATE TABLE IF NOT EXISTS ${archive} (
      id          uuid        PRIMARY KEY,
      destination text        NOT NULL,
      key         text        NULL,
      type        text        NOT NULL,
      payload     jsonb       NOT NULL,
      headers     jsonb       NOT NULL,
      saga_id     uuid        NULL,
      attempts    integer     NOT NULL,
      created_at  timestamptz NOT NULL,
      sent_at     timestamptz NOT NULL,
      archived_at timestamptz NOT NULL DEFAULT now()
    )`,
    // Purge: oldest archived rows first.
    `CREATE INDEX IF NOT EXISTS outbox_message_archive_archived_at_idx
      ON ${archive} (archived_at)`,
  ];

  // The last object `up` creates, looked up with a plain SELECT (see runLocked).
  const applied = `SELECT EXISTS (
      SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ${schema.literal} AND c.relname = 'outbox_message_archive_archived_at_idx'
    ) AS applied`;

  // Down: the archive goes with its rows; dead-letter times are forgotten.
  const down = [
    `DROP TABLE IF EXISTS ${archive}`,
    `DROP INDEX IF EXISTS ${quoted}."outbox_message_dead_letter_expiry_idx"`,
    `ALTER TABLE ${t.outboxMessage} DROP COLUMN IF EXISTS dead_lettered_at`,
    `DROP INDEX IF EXISTS ${quoted}."saga_instance_terminal_idx"`,
  ];

  return class SageRetention1764835200000 implements MigrationInterface {
    readonly name = name;

    async up(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, up, applied);
    }

    async down(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, down);
    }
  };
}
