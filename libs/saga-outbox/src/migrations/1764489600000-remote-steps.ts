import type { MigrationInterface, QueryRunner } from 'typeorm';
import type { SagaSchema } from '../persistence/postgres/schema-name';
import { migrationName, runLocked, type SagaOutboxMigrationClass } from './migration-support';

export const REMOTE_STEPS_MIGRATION_TIMESTAMP = 1764489600000;

/**
 * Remote (command/reply) saga steps, see docs/sagas.md.
 *
 * - `saga_instance.status` gains `waiting` (parked until a reply); `wake_at` says when recovery may
 *   claim a parked saga on its own (the earliest reply deadline), `wake_seq` counts applied replies
 *   so a runner never parks over a reply it has not seen.
 * - `saga_step.status` gains `waiting` (command sent), `timed_out` (no reply within the attempts;
 *   compensated like a completed step) and `compensating` (compensation command sent);
 *   `reply_deadline` is when the current attempt's reply is due.
 * - The recovery index covers `waiting` sagas too.
 * New columns are nullable or have constant defaults: catalog-only changes, no table rewrite. The
 * CHECKs are swapped in one transaction (the migration's), so no row is ever unchecked.
 */
export function remoteStepsMigration(schema: SagaSchema): SagaOutboxMigrationClass {
  const name = migrationName('SageRemoteSteps', schema, REMOTE_STEPS_MIGRATION_TIMESTAMP);
  const { quoted, sagaInstance, sagaStep } = schema;

  const up = [
    `ALTER TABLE ${sagaInstance}
      ADD COLUMN IF NOT EXISTS wake_at  timestamptz NULL,
      ADD COLUMN IF NOT EXISTS wake_seq bigint      NOT NULL DEFAULT 0,
      DROP CONSTRAINT IF EXISTS saga_instance_status_check,
      ADD CONSTRAINT saga_instance_status_check
        CHECK (status IN ('running', 'waiting', 'compensating', 'completed', 'compensated', 'failed'))`,
    `ALTER TABLE ${sagaStep}
      ADD COLUMN IF NOT EXISTS reply_deadline timestamptz NULL,
      DROP CONSTRAINT IF EXISTS saga_step_status_check,
      ADD CONSTRAINT saga_step_status_check
        CHECK (status IN ('pending', 'waiting', 'completed', 'failed', 'timed_out',
                          'compensating', 'compensated', 'compensation_failed'))`,
    `DROP INDEX IF EXISTS ${quoted}."saga_instance_recovery_idx"`,
    // Live sagas by lease expiry (running, compensating) or wake time (parked): what the claim scans.
    `CREATE INDEX IF NOT EXISTS saga_instance_claim_idx
      ON ${sagaInstance} ((coalesce(wake_at, lease_until, '-infinity'::timestamptz)))
      WHERE status IN ('running', 'waiting', 'compensating')`,
  ];

  const applied = `SELECT EXISTS (
      SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ${schema.literal} AND c.relname = 'saga_instance_claim_idx'
    ) AS applied`;

  // Down: only possible while no saga uses the new states (the old CHECKs reject them).
  const down = [
    `DROP INDEX IF EXISTS ${quoted}."saga_instance_claim_idx"`,
    `CREATE INDEX IF NOT EXISTS saga_instance_recovery_idx
      ON ${sagaInstance} (lease_until)
      WHERE status IN ('running', 'compensating')`,
    `ALTER TABLE ${sagaStep}
      DROP CONSTRAINT IF EXISTS saga_step_status_check,
      ADD CONSTRAINT saga_step_status_check
        CHECK (status IN ('pending', 'completed', 'failed', 'compensated', 'compensation_failed')),
      DROP COLUMN IF EXISTS reply_deadline`,
    `ALTER TABLE ${sagaInstance}
      DROP CONSTRAINT IF EXISTS saga_instance_status_check,
      ADD CONSTRAINT saga_instance_status_check
        CHECK (status IN ('running', 'compensating', 'completed', 'compensated', 'failed')),
      DROP COLUMN IF EXISTS wake_seq,
      DROP COLUMN IF EXISTS wake_at`,
  ];

  return class SageRemoteSteps1764489600000 implements MigrationInterface {
    readonly name = name;

    async up(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, up, applied);
    }

    async down(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, down);
    }
  };
}
