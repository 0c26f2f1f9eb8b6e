import type { MigrationInterface, QueryRunner } from 'typeorm';
import { inboxTables } from '../persistence/postgres/inbox-tables';
import type { SagaSchema } from '../persistence/postgres/schema-name';
import { migrationName, runLocked, type SagaOutboxMigrationClass } from './migration-support';

export const INBOX_MIGRATION_TIMESTAMP = 1764403200000;

/**
 * Consumer inbox: poison-message counting and dead letters, see docs/inbox.md.
 *
 * - `inbox_message` (created by the outbox migration) gains `status` (`processed` | `dead_letter`),
 *   `attempts`, `last_error` and `message` (the delivered message, kept for dead letters only). A
 *   row still means "never run the handler for this (consumer, message) again", whatever its
 *   status, so the hot path stays one `INSERT ... ON CONFLICT DO NOTHING`.
 * - The new columns have constant defaults, so adding them is a catalog-only change (PostgreSQL
 *   11+), not a table rewrite. The CHECKs are added NOT VALID: every existing row carries those
 *   defaults and satisfies them, new and updated rows are checked, and the big table is not scanned
 *   under an exclusive lock (`VALIDATE CONSTRAINT` can be run online later).
 * - `inbox_failure` counts failed attempts. It is a table of its own because a failure is recorded
 *   after the handler's transaction rolled back, and a row in `inbox_message` would make the next
 *   delivery a "duplicate". A successful attempt deletes the message's failure row in its own
 *   transaction; a dead letter moves it into `inbox_message`. So it holds only messages currently
 *   failing (plus those a broker gave up on, found by the `last_failed_at` index).
 */
export function inboxMigration(schema: SagaSchema): SagaOutboxMigrationClass {
  const name = migrationName('SageInbox', schema, INBOX_MIGRATION_TIMESTAMP);
  const t = inboxTables(schema);

  const up = [
    `ALTER TABLE ${t.inboxMessage}
      ADD COLUMN IF NOT EXISTS status     text    NOT NULL DEFAULT 'processed',
      ADD COLUMN IF NOT EXISTS attempts   integer NOT NULL DEFAULT 1,
      ADD COLUMN IF NOT EXISTS last_error text    NULL,
      ADD COLUMN IF NOT EXISTS message    jsonb   NULL`,
    `ALTER TABLE ${t.inboxMessage}
      ADD CONSTRAINT inbox_message_status_check
        CHECK (status IN ('processed', 'dead_letter')) NOT VALID,
      ADD CONSTRAINT inbox_message_attempts_check CHECK (attempts >= 1) NOT VALID,
      -- A dead letter always says why; a processed message has no error.
      ADD CONSTRAINT inbox_message_dead_letter_check
        CHECK ((status = 'dead_letter') = (last_error IS NOT NULL)) NOT VALID`,
    // Dead-letter listing, paged by (consumer, message_id); the processed majority is left out.
    `CREATE INDEX IF NOT EXISTS inbox_message_dead_letter_idx
      ON ${t.inboxMessage} (consumer, message_id)
      WHERE status = 'dead_letter'`,
    `CREATE TABLE IF NOT EXISTS ${t.inboxFailure} (
      consumer        text        NOT NULL,
      message_id      text        NOT NULL,
      attempts        integer     NOT NULL CONSTRAINT inbox_failure_attempts_check CHECK (attempts >= 1),
      last_error      text        NOT NULL,
      first_failed_at timestamptz NOT NULL DEFAULT now(),
      last_failed_at  timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (consumer, message_id)
    )`,
    // Clean-up of failure rows whose message never came back (the broker gave up on it).
    `CREATE INDEX IF NOT EXISTS inbox_failure_last_failed_at_idx
      ON ${t.inboxFailure} (last_failed_at)`,
  ];

  // The last table `up` creates, looked up with a plain SELECT (see runLocked): present means a
  // concurrent migrator committed this migration while we waited for the lock (ADD CONSTRAINT has
  // no IF NOT EXISTS).
  const applied = `SELECT EXISTS (
      SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ${schema.literal} AND c.relname = 'inbox_failure'
    ) AS applied`;

  // Down: dead letters become plain rows of the old shape, still "handled" (never run again);
  // delete them first if they should be retried.
  const down = [
    `DROP TABLE IF EXISTS ${t.inboxFailure}`,
    `DROP INDEX IF EXISTS ${schema.quoted}."inbox_message_dead_letter_idx"`,
    `ALTER TABLE IF EXISTS ${t.inboxMessage}
      DROP CONSTRAINT IF EXISTS inbox_message_dead_letter_check,
      DROP CONSTRAINT IF EXISTS inbox_message_attempts_check,
      DROP CONSTRAINT IF EXISTS inbox_message_status_check,
      DROP COLUMN IF EXISTS message,
      DROP COLUMN IF EXISTS last_error,
      DROP COLUMN IF EXISTS attempts,
      DROP COLUMN IF EXISTS status`,
  ];

  return class SageInbox1764403200000 implements MigrationInterface {
    readonly name = name;

    async up(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, up, applied);
    }

    async down(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, down);
    }
  };
}
