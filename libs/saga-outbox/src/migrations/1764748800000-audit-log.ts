import type { MigrationInterface, QueryRunner } from 'typeorm';
import { AUDIT_SEAL_LOCK_KEY, auditTables } from '../persistence/postgres/audit-tables';
import { inboxTables } from '../persistence/postgres/inbox-tables';
import { outboxTables } from '../persistence/postgres/outbox-tables';
import type { SagaSchema } from '../persistence/postgres/schema-name';
import { migrationName, runLocked, type SagaOutboxMigrationClass } from './migration-support';

export const AUDIT_LOG_MIGRATION_TIMESTAMP = 1764748800000;

/**
 * Tamper-evident audit log, see docs/audit-log.md.
 *
 * - `audit_pending`: triggers on the saga, step, outbox and inbox tables write one row per audited
 *   change (a status change, a dead letter replayed or discarded) in the transaction of the change,
 *   with zero app code, so manual SQL is recorded too. Writers only INSERT: they never contend.
 * - `audit_log`: the sealer (one at a time, advisory lock) moves committed pending rows into this
 *   hash chain, seq 1, 2, 3... each entry carrying the previous one's hash.
 * - Append-only: a trigger refuses UPDATE, DELETE and TRUNCATE of `audit_log` and
 *   `audit_checkpoint`; the only way out is `sage_audit_prune(keep_after)` (SECURITY DEFINER, runs
 *   as the table owner), which writes a checkpoint before deleting the entries it covers. The
 *   guard lets a DELETE through only when `current_user` is the table owner (true inside that
 *   function when the runtime role calls it, and never for the runtime role itself) AND the
 *   transaction-local flag the function sets is on, so even the owner does not delete by accident.
 * - Actor: `sage.actor` (set per transaction by the CLI's `--operator`), else the session's role.
 * - Details hold ids, names, statuses and attempt counts: never payloads, errors or message keys,
 *   which may carry personal data.
 * - Grants: the table owner's rights are stripped down to INSERT/SELECT for everyone else on
 *   audit_log and to SELECT on audit_checkpoint (ops/postgres/sage-roles.sql grants the rest).
 *
 * Triggers use `WHEN` conditions, so rows that do not change an audited status (the outbox relay's
 * claims and sends, processed inbox rows) never call the trigger function.
 */
export function auditLogMigration(schema: SagaSchema): SagaOutboxMigrationClass {
  const name = migrationName('SageAuditLog', schema, AUDIT_LOG_MIGRATION_TIMESTAMP);
  const { quoted, sagaInstance, sagaStep } = schema;
  const a = auditTables(schema);
  const { outboxMessage } = outboxTables(schema);
  const { inboxMessage } = inboxTables(schema);
  const fn = (n: string): string => `${quoted}."${n}"`;

  // Who: the operator a tool named for this transaction, else the role the session logged in as.
  const actor = `left(coalesce(nullif(current_setting('sage.actor', true), ''), session_user::text), 128)`;
  const record = (action: string, targetType: string, targetId: string, detail: string): string =>
    `INSERT INTO ${a.auditPending} (actor, action, target_type, target_id, detail)
        VALUES (${actor}, ${action}, ${targetType}, ${targetId}, ${detail});`;

  // Is the table owner running this, with the prune flag on? Only inside sage_audit_prune.
  const pruning = `current_user::text = (SELECT pg_catalog.pg_get_userbyid(c.relowner)::text
                                           FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID)
      AND current_setting('sage.audit_prune', true) = 'on'`;

  const up = [
    `CREATE TABLE IF NOT EXISTS ${a.auditPending} (
      id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      at          timestamptz NOT NULL DEFAULT now(),
      actor       text        NOT NULL,
      action      text        NOT NULL,
      target_type text        NOT NULL,
      target_id   text        NOT NULL,
      detail      jsonb       NOT NULL DEFAULT '{}'::jsonb
    ) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02)`,
    `CREATE TABLE IF NOT EXISTS ${a.auditLog} (
      seq         bigint      PRIMARY KEY CONSTRAINT audit_log_seq_check CHECK (seq >= 1),
      at          timestamptz NOT NULL,
      actor       text        NOT NULL,
      action      text        NOT NULL,
      target_type text        NOT NULL,
      target_id   text        NOT NULL,
      detail      jsonb       NOT NULL,
      prev_hash   text        NOT NULL,
      hash        text        NOT NULL,
      hmac_key_id text        NULL,
      sealed_at   timestamptz NOT NULL DEFAULT now()
    )`,
    // Retention finds the first entry to keep by time.
    `CREATE INDEX IF NOT EXISTS audit_log_at_idx ON ${a.auditLog} (at)`,
    `CREATE TABLE IF NOT EXISTS ${a.auditCheckpoint} (
      seq          bigint      PRIMARY KEY,
      hash         text        NOT NULL,
      at           timestamptz NOT NULL DEFAULT now(),
      pruned_until timestamptz NOT NULL
    )`,

    // --- append-only guards ---------------------------------------------------------------
    `CREATE OR REPLACE FUNCTION ${fn('audit_log_guard')}() RETURNS trigger
      LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'DELETE' AND ${pruning} THEN
          RETURN OLD;
        END IF;
        IF TG_OP = 'INSERT' AND (TG_TABLE_NAME <> 'audit_checkpoint' OR (${pruning})) THEN
          RETURN NEW;
        END IF;
        RAISE EXCEPTION 'Sage audit log: % on %.% refused: the audit log is append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
          USING ERRCODE = 'insufficient_privilege',
                HINT = 'Old entries are removed only by ' || quote_ident(TG_TABLE_SCHEMA) || '.sage_audit_prune(keep_after), which writes a checkpoint first (docs/audit-log.md).';
      END
      $$`,
    `DROP TRIGGER IF EXISTS audit_log_append_only ON ${a.auditLog}`,
    `CREATE TRIGGER audit_log_append_only
      BEFORE UPDATE OR DELETE ON ${a.auditLog}
      FOR EACH ROW EXECUTE FUNCTION ${fn('audit_log_guard')}()`,
    `DROP TRIGGER IF EXISTS audit_log_no_truncate ON ${a.auditLog}`,
    `CREATE TRIGGER audit_log_no_truncate
      BEFORE TRUNCATE ON ${a.auditLog}
      FOR EACH STATEMENT EXECUTE FUNCTION ${fn('audit_log_guard')}()`,
    `DROP TRIGGER IF EXISTS audit_checkpoint_guard ON ${a.auditCheckpoint}`,
    `CREATE TRIGGER audit_checkpoint_guard
      BEFORE INSERT OR UPDATE OR DELETE ON ${a.auditCheckpoint}
      FOR EACH ROW EXECUTE FUNCTION ${fn('audit_log_guard')}()`,
    `DROP TRIGGER IF EXISTS audit_checkpoint_no_truncate ON ${a.auditCheckpoint}`,
    `CREATE TRIGGER audit_checkpoint_no_truncate
      BEFORE TRUNCATE ON ${a.auditCheckpoint}
      FOR EACH STATEMENT EXECUTE FUNCTION ${fn('audit_log_guard')}()`,

    // --- retention ------------------------------------------------------------------------
    // Deletes the entries older than keep_after up to the first one to keep (seq order, so the
    // kept part stays one unbroken chain), after writing a checkpoint with the last deleted entry's
    // seq and hash: verification resumes from there. Serialised with the sealer by its lock.
    // Returns the checkpoint's seq, or NULL when nothing was old enough.
    `CREATE OR REPLACE FUNCTION ${a.pruneFunction}(keep_after timestamptz) RETURNS bigint
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
      DECLARE
        cut      bigint;
        cut_hash text;
        done     bigint;
      BEGIN
        IF keep_after IS NULL THEN
          RAISE EXCEPTION 'sage_audit_prune(keep_after): keep_after must not be NULL';
        END IF;
        PERFORM pg_advisory_xact_lock(${AUDIT_SEAL_LOCK_KEY});
        SELECT coalesce(max(seq), 0) INTO done FROM ${a.auditCheckpoint};
        SELECT coalesce((SELECT min(seq) - 1 FROM ${a.auditLog} WHERE at >= keep_after),
                        (SELECT max(seq) FROM ${a.auditLog}))
          INTO cut;
        IF cut IS NULL OR cut <= done THEN
          RETURN NULL;
        END IF;
        SELECT hash INTO cut_hash FROM ${a.auditLog} WHERE seq = cut;
        IF NOT FOUND THEN
          RAISE EXCEPTION 'sage_audit_prune: audit entry % is missing, so no checkpoint can be written', cut
            USING HINT = 'Run "sage audit verify" and investigate before pruning.';
        END IF;
        PERFORM set_config('sage.audit_prune', 'on', true);
        INSERT INTO ${a.auditCheckpoint} (seq, hash, pruned_until) VALUES (cut, cut_hash, keep_after);
        DELETE FROM ${a.auditLog} WHERE seq <= cut;
        PERFORM set_config('sage.audit_prune', 'off', true);
        RETURN cut;
      END
      $$`,
    // Only roles granted EXECUTE may prune (ops/postgres/sage-roles.sql grants the runtime role).
    `REVOKE ALL ON FUNCTION ${a.pruneFunction}(timestamptz) FROM PUBLIC`,

    // --- what is recorded -----------------------------------------------------------------
    `CREATE OR REPLACE FUNCTION ${fn('audit_saga_instance')}() RETURNS trigger
      LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'INSERT' THEN
          ${record(
            `'saga.started'`,
            `'saga'`,
            'NEW.id::text',
            `jsonb_build_object('name', NEW.name, 'version', NEW.version, 'status', NEW.status)`,
          )}
        ELSE
          ${record(
            `'saga.' || NEW.status`,
            `'saga'`,
            'NEW.id::text',
            `jsonb_strip_nulls(jsonb_build_object('name', NEW.name, 'version', NEW.version,
                'from', OLD.status, 'to', NEW.status, 'failed_step', NEW.failed_step))`,
          )}
        END IF;
        RETURN NULL;
      END
      $$`,
    `DROP TRIGGER IF EXISTS saga_instance_audit_insert ON ${sagaInstance}`,
    `CREATE TRIGGER saga_instance_audit_insert
      AFTER INSERT ON ${sagaInstance}
      FOR EACH ROW EXECUTE FUNCTION ${fn('audit_saga_instance')}()`,
    `DROP TRIGGER IF EXISTS saga_instance_audit_status ON ${sagaInstance}`,
    `CREATE TRIGGER saga_instance_audit_status
      AFTER UPDATE OF status ON ${sagaInstance}
      FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
      EXECUTE FUNCTION ${fn('audit_saga_instance')}()`,
    `CREATE OR REPLACE FUNCTION ${fn('audit_saga_step')}() RETURNS trigger
      LANGUAGE plpgsql AS $$
      BEGIN
        ${record(
          `'step.' || NEW.status`,
          `'saga_step'`,
          `NEW.saga_id::text || '/' || NEW.name`,
          `jsonb_build_object('saga_id', NEW.saga_id, 'step', NEW.name, 'from', OLD.status,
              'to', NEW.status, 'attempts', NEW.attempts,
              'compensation_attempts', NEW.compensation_attempts)`,
        )}
        RETURN NULL;
      END
      $$`,
    `DROP TRIGGER IF EXISTS saga_step_audit_status ON ${sagaStep}`,
    `CREATE TRIGGER saga_step_audit_status
      AFTER UPDATE OF status ON ${sagaStep}
      FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
      EXECUTE FUNCTION ${fn('audit_saga_step')}()`,
    // Outbox dead letters: into and out of dead_letter, and deleted while dead-lettered.
    `CREATE OR REPLACE FUNCTION ${fn('audit_outbox_dead_letter')}() RETURNS trigger
      LANGUAGE plpgsql AS $$
      DECLARE
        m ${outboxMessage};
      BEGIN
        IF TG_OP = 'DELETE' THEN
          m := OLD;
        ELSE
          m := NEW;
        END IF;
        ${record(
          `CASE WHEN TG_OP = 'DELETE' THEN 'outbox.discarded'
                WHEN NEW.status = 'dead_letter' THEN 'outbox.dead_lettered'
                ELSE 'outbox.replayed' END`,
          `'outbox_message'`,
          'm.id::text',
          `jsonb_strip_nulls(jsonb_build_object('destination', m.destination, 'type', m.type,
              'attempts', m.attempts, 'saga_id', m.saga_id))`,
        )}
        RETURN NULL;
      END
      $$`,
    `DROP TRIGGER IF EXISTS outbox_message_audit_status ON ${outboxMessage}`,
    `CREATE TRIGGER outbox_message_audit_status
      AFTER UPDATE OF status ON ${outboxMessage}
      FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                         AND 'dead_letter' IN (OLD.status, NEW.status))
      EXECUTE FUNCTION ${fn('audit_outbox_dead_letter')}()`,
    `DROP TRIGGER IF EXISTS outbox_message_audit_delete ON ${outboxMessage}`,
    `CREATE TRIGGER outbox_message_audit_delete
      AFTER DELETE ON ${outboxMessage}
      FOR EACH ROW WHEN (OLD.status = 'dead_letter')
      EXECUTE FUNCTION ${fn('audit_outbox_dead_letter')}()`,
    // Inbox dead letters: dead-lettered (insert or update into), replayed (update out of), released
    // (deleted while dead-lettered).
    `CREATE OR REPLACE FUNCTION ${fn('audit_inbox_dead_letter')}() RETURNS trigger
      LANGUAGE plpgsql AS $$
      DECLARE
        m ${inboxMessage};
      BEGIN
        IF TG_OP = 'DELETE' THEN
          m := OLD;
        ELSE
          m := NEW;
        END IF;
        ${record(
          `CASE WHEN TG_OP = 'DELETE' THEN 'inbox.released'
                WHEN NEW.status = 'dead_letter' THEN 'inbox.dead_lettered'
                ELSE 'inbox.replayed' END`,
          `'inbox_message'`,
          `m.consumer || '/' || m.message_id`,
          `jsonb_build_object('consumer', m.consumer, 'message_id', m.message_id,
              'attempts', m.attempts)`,
        )}
        RETURN NULL;
      END
      $$`,
    `DROP TRIGGER IF EXISTS inbox_message_audit_insert ON ${inboxMessage}`,
    `CREATE TRIGGER inbox_message_audit_insert
      AFTER INSERT ON ${inboxMessage}
      FOR EACH ROW WHEN (NEW.status = 'dead_letter')
      EXECUTE FUNCTION ${fn('audit_inbox_dead_letter')}()`,
    `DROP TRIGGER IF EXISTS inbox_message_audit_status ON ${inboxMessage}`,
    `CREATE TRIGGER inbox_message_audit_status
      AFTER UPDATE OF status ON ${inboxMessage}
      FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                         AND 'dead_letter' IN (OLD.status, NEW.status))
      EXECUTE FUNCTION ${fn('audit_inbox_dead_letter')}()`,
    `DROP TRIGGER IF EXISTS inbox_message_audit_delete ON ${inboxMessage}`,
    `CREATE TRIGGER inbox_message_audit_delete
      AFTER DELETE ON ${inboxMessage}
      FOR EACH ROW WHEN (OLD.status = 'dead_letter')
      EXECUTE FUNCTION ${fn('audit_inbox_dead_letter')}()`,

    // --- grants -----------------------------------------------------------------------------
    // Default privileges (ops/postgres/sage-roles.sql) may have granted every right on the new
    // tables to the runtime role: take back what would let anyone but the owner rewrite history.
    `DO $$
    DECLARE
      g record;
    BEGIN
      FOR g IN
        SELECT DISTINCT c.oid::regclass AS tbl, acl.grantee
        FROM pg_catalog.pg_class c, LATERAL aclexplode(c.relacl) acl
        WHERE c.oid IN ('${a.auditLog.replace(/'/g, "''")}'::regclass,
                        '${a.auditCheckpoint.replace(/'/g, "''")}'::regclass)
          AND acl.grantee <> c.relowner
      LOOP
        EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON %s FROM %s', g.tbl,
          CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(g.grantee)) END);
        IF g.tbl = '${a.auditCheckpoint.replace(/'/g, "''")}'::regclass THEN
          EXECUTE format('REVOKE INSERT ON %s FROM %s', g.tbl,
            CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(g.grantee)) END);
        END IF;
      END LOOP;
    END
    $$`,
  ];

  // The last object `up` creates, looked up with a plain SELECT (see runLocked).
  const applied = `SELECT EXISTS (
      SELECT 1 FROM pg_catalog.pg_trigger t
      JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ${schema.literal} AND t.tgname = 'inbox_message_audit_delete'
    ) AS applied`;

  // Down: the audit log goes with its history (export it first if it matters).
  const down = [
    `DROP TRIGGER IF EXISTS inbox_message_audit_delete ON ${inboxMessage}`,
    `DROP TRIGGER IF EXISTS inbox_message_audit_status ON ${inboxMessage}`,
    `DROP TRIGGER IF EXISTS inbox_message_audit_insert ON ${inboxMessage}`,
    `DROP TRIGGER IF EXISTS outbox_message_audit_delete ON ${outboxMessage}`,
    `DROP TRIGGER IF EXISTS outbox_message_audit_status ON ${outboxMessage}`,
    `DROP TRIGGER IF EXISTS saga_step_audit_status ON ${sagaStep}`,
    `DROP TRIGGER IF EXISTS saga_instance_audit_status ON ${sagaInstance}`,
    `DROP TRIGGER IF EXISTS saga_instance_audit_insert ON ${sagaInstance}`,
    `DROP FUNCTION IF EXISTS ${fn('audit_inbox_dead_letter')}()`,
    `DROP FUNCTION IF EXISTS ${fn('audit_outbox_dead_letter')}()`,
    `DROP FUNCTION IF EXISTS ${fn('audit_saga_step')}()`,
    `DROP FUNCTION IF EXISTS ${fn('audit_saga_instance')}()`,
    `DROP FUNCTION IF EXISTS ${a.pruneFunction}(timestamptz)`,
    `DROP TABLE IF EXISTS ${a.auditCheckpoint}`,
    `DROP TABLE IF EXISTS ${a.auditLog}`,
    `DROP TABLE IF EXISTS ${a.auditPending}`,
    `DROP FUNCTION IF EXISTS ${fn('audit_log_guard')}()`,
  ];

  return class SageAuditLog1764748800000 implements MigrationInterface {
    readonly name = name;

    async up(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, up, applied);
    }

    async down(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, down);
    }
  };
}
