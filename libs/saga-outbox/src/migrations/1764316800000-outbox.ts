import type { MigrationInterface, QueryRunner } from 'typeorm';
import { outboxTables } from '../persistence/postgres/outbox-tables';
import type { SagaSchema } from '../persistence/postgres/schema-name';
import { migrationName, runLocked, type SagaOutboxMigrationClass } from './migration-support';

export const OUTBOX_MIGRATION_TIMESTAMP = 1764316800000;

/**
 * Transactional outbox (`outbox_message`) and consumer inbox (`inbox_message`), see docs/outbox.md.
 *
 * - `txid xid8 DEFAULT pg_current_xact_id()` is the writing transaction's id; the relay only claims
 *   rows below the snapshot xmin (every transaction that could still commit a lower txid is over),
 *   so a late-committing row is never overtaken. Needs PostgreSQL 13+ (xid8).
 * - `seq` orders messages written by one transaction (UUIDv7 ids are not monotonic within a
 *   millisecond); publish order is `(txid, seq)`.
 * - Statuses are `text` + CHECK (same reasoning as saga_state); the CHECKs also tie the claim
 *   columns to the `claimed` status so no code path can leave a half-claimed row.
 * - Partial indexes keep every hot query on the small live part of the table: claim scan, per-key
 *   head check, reaper, retention, dead letters.
 * - A statement-level trigger sends one NOTIFY per inserting statement; PostgreSQL folds identical
 *   notifications of one transaction into one, so it is one hint per transaction.
 */
export function outboxMigration(schema: SagaSchema): SagaOutboxMigrationClass {
  const name = migrationName('SageOutbox', schema, OUTBOX_MIGRATION_TIMESTAMP);
  const t = outboxTables(schema);
  const { quoted } = schema;

  const up = [
    `CREATE SCHEMA IF NOT EXISTS ${quoted}`,
    `CREATE TABLE IF NOT EXISTS ${t.outboxMessage} (
      id              uuid        PRIMARY KEY,
      seq             bigint      GENERATED ALWAYS AS IDENTITY,
      txid            xid8        NOT NULL DEFAULT pg_current_xact_id(),
      destination     text        NOT NULL CONSTRAINT outbox_message_destination_check CHECK (destination <> ''),
      key             text        NULL,
      type            text        NOT NULL CONSTRAINT outbox_message_type_check CHECK (type <> ''),
      payload         jsonb       NOT NULL,
      headers         jsonb       NOT NULL DEFAULT '{}'::jsonb,
      saga_id         uuid        NULL,
      status          text        NOT NULL DEFAULT 'pending'
        CONSTRAINT outbox_message_status_check
        CHECK (status IN ('pending', 'claimed', 'sent', 'dead_letter')),
      attempts        integer     NOT NULL DEFAULT 0,
      next_attempt_at timestamptz NOT NULL DEFAULT now(),
      claim_token     uuid        NULL,
      lease_until     timestamptz NULL,
      created_at      timestamptz NOT NULL DEFAULT now(),
      sent_at         timestamptz NULL,
      last_error      text        NULL,
      -- A claim token and its lease exist exactly while the row is claimed.
      CONSTRAINT outbox_message_claim_check
        CHECK ((status = 'claimed') = (claim_token IS NOT NULL) AND (claim_token IS NULL) = (lease_until IS NULL)),
      CONSTRAINT outbox_message_sent_check CHECK ((status = 'sent') = (sent_at IS NOT NULL))
    ) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02)`,
    // Claim scan: pending rows in publish order; the due / watermark / head-of-key tests run on
    // the few rows this yields.
    `CREATE INDEX IF NOT EXISTS outbox_message_claimable_idx
      ON ${t.outboxMessage} (txid, seq)
      WHERE status = 'pending'`,
    // Head-of-key test: "is an earlier message of this key still unsent?" is one index probe.
    `CREATE INDEX IF NOT EXISTS outbox_message_key_unsent_idx
      ON ${t.outboxMessage} (key, txid, seq)
      WHERE status IN ('pending', 'claimed') AND key IS NOT NULL`,
    // Reaper: claims whose lease ran out.
    `CREATE INDEX IF NOT EXISTS outbox_message_lease_idx
      ON ${t.outboxMessage} (lease_until)
      WHERE status = 'claimed'`,
    // Retention: oldest sent rows first.
    `CREATE INDEX IF NOT EXISTS outbox_message_sent_idx
      ON ${t.outboxMessage} (sent_at)
      WHERE status = 'sent'`,
    // Dead-letter listing, paged by id.
    `CREATE INDEX IF NOT EXISTS outbox_message_dead_letter_idx
      ON ${t.outboxMessage} (id)
      WHERE status = 'dead_letter'`,
    `CREATE OR REPLACE FUNCTION ${t.notifyFunction}() RETURNS trigger
      LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('${t.channel}', '');
        RETURN NULL;
      END
      $$`,
    `DROP TRIGGER IF EXISTS outbox_message_notify ON ${t.outboxMessage}`,
    `CREATE TRIGGER outbox_message_notify
      AFTER INSERT ON ${t.outboxMessage}
      FOR EACH STATEMENT EXECUTE FUNCTION ${t.notifyFunction}()`,
    // Consumer inbox: a handler's DB effects and this row commit together; the primary key turns a
    // redelivery into a no-op. message_id is text: producers other than Sage may not use UUIDs.
    `CREATE TABLE IF NOT EXISTS ${t.inboxMessage} (
      consumer     text        NOT NULL,
      message_id   text        NOT NULL,
      processed_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (consumer, message_id)
    )`,
    `CREATE INDEX IF NOT EXISTS inbox_message_processed_at_idx ON ${t.inboxMessage} (processed_at)`,
  ];

  const down = [
    `DROP TABLE IF EXISTS ${t.inboxMessage}`,
    `DROP TABLE IF EXISTS ${t.outboxMessage}`,
    `DROP FUNCTION IF EXISTS ${t.notifyFunction}()`,
  ];

  return class SageOutbox1764316800000 implements MigrationInterface {
    readonly name = name;

    async up(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, up);
    }

    async down(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, down);
    }
  };
}
