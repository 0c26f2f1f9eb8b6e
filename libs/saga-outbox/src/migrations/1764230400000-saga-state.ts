import type { MigrationInterface, QueryRunner } from 'typeorm';
import type { SagaSchema } from '../persistence/postgres/schema-name';
import { migrationName, runLocked, type SagaOutboxMigrationClass } from './migration-support';

export const SAGA_STATE_MIGRATION_TIMESTAMP = 1764230400000;

/**
 * Saga state: one `saga_instance` row per started saga and one `saga_step` row per step.
 *
 * Every statement is idempotent (IF NOT EXISTS) and the whole migration runs under the migration
 * advisory lock, so several app instances migrating one database at once all succeed. Enumerations
 * are `text` + CHECK rather than enum types: a CHECK is replaced in one transaction, an enum value
 * cannot be removed.
 */
export function sagaStateMigration(schema: SagaSchema): SagaOutboxMigrationClass {
  const name = migrationName('SageSagaState', schema, SAGA_STATE_MIGRATION_TIMESTAMP);
  const { quoted, sagaInstance, sagaStep } = schema;

  const up = [
    `CREATE SCHEMA IF NOT EXISTS ${quoted}`,
    `CREATE TABLE IF NOT EXISTS ${sagaInstance} (
      id              uuid        PRIMARY KEY,
      name            text        NOT NULL,
      version         text        NOT NULL,
      status          text        NOT NULL
        CONSTRAINT saga_instance_status_check
        CHECK (status IN ('running', 'compensating', 'completed', 'compensated', 'failed')),
      input           jsonb       NOT NULL,
      idempotency_key text        NULL,
      owner           text        NULL,
      lease_until     timestamptz NULL,
      deadline_at     timestamptz NULL,
      error           text        NULL,
      failed_step     text        NULL,
      created_at      timestamptz NOT NULL DEFAULT now(),
      updated_at      timestamptz NOT NULL DEFAULT now(),
      -- Arbiter of create()'s ON CONFLICT: one saga per (name, idempotency key); NULL keys never collide.
      CONSTRAINT saga_instance_name_idempotency_key_key UNIQUE (name, idempotency_key),
      -- A lease always names its holder and vice versa (create without owner, release and terminal
      -- transitions clear both together).
      CONSTRAINT saga_instance_owner_lease_check CHECK ((owner IS NULL) = (lease_until IS NULL))
    )`,
    // The recovery claim scans live sagas by lease expiry; terminal rows (the vast majority over
    // time) are left out of the index entirely.
    `CREATE INDEX IF NOT EXISTS saga_instance_recovery_idx
      ON ${sagaInstance} (lease_until)
      WHERE status IN ('running', 'compensating')`,
    `CREATE TABLE IF NOT EXISTS ${sagaStep} (
      saga_id               uuid        NOT NULL REFERENCES ${sagaInstance} (id) ON DELETE CASCADE,
      name                  text        NOT NULL,
      position              integer     NOT NULL,
      status                text        NOT NULL DEFAULT 'pending'
        CONSTRAINT saga_step_status_check
        CHECK (status IN ('pending', 'completed', 'failed', 'compensated', 'compensation_failed')),
      attempts              integer     NOT NULL DEFAULT 0,
      compensation_attempts integer     NOT NULL DEFAULT 0,
      result                jsonb       NULL,
      error                 text        NULL,
      started_at            timestamptz NULL,
      completed_at          timestamptz NULL,
      compensated_at        timestamptz NULL,
      PRIMARY KEY (saga_id, name)
    )`,
  ];

  // The last object `up` creates, looked up with a plain SELECT (see runLocked): present means a
  // concurrent migrator committed this migration while we waited for the lock.
  const applied = `SELECT EXISTS (
      SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ${schema.literal} AND c.relname = 'saga_step'
    ) AS applied`;

  const down = [
    `DROP TABLE IF EXISTS ${sagaStep}`,
    `DROP TABLE IF EXISTS ${sagaInstance}`,
    // The schema goes too, but only when nothing else lives in it (a later migration's tables are
    // dropped by that migration's own down first; anything the app put there is left alone).
    `DO $$
    BEGIN
      DROP SCHEMA IF EXISTS ${quoted} RESTRICT;
    EXCEPTION WHEN dependent_objects_still_exist THEN
      NULL;
    END
    $$`,
  ];

  return class SageSagaState1764230400000 implements MigrationInterface {
    readonly name = name;

    async up(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, up, applied);
    }

    async down(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, down);
    }
  };
}
