import type { SagaSchema } from './schema-name';

/**
 * Quoted identifiers of the audit log's tables and functions, built from a validated SagaSchema
 * (the one place a configurable identifier enters SQL, see schema-name.ts).
 */
export interface AuditTables {
  readonly schema: SagaSchema;
  /** `"sage"."audit_pending"`: entries written with the change they record, not yet sealed. */
  readonly auditPending: string;
  /** `"sage"."audit_log"`: the sealed, append-only hash chain. */
  readonly auditLog: string;
  /** `"sage"."audit_checkpoint"`: where the chain resumes after retention pruned older entries. */
  readonly auditCheckpoint: string;
  /** `"sage"."sage_audit_prune"`: the retention function (SECURITY DEFINER). */
  readonly pruneFunction: string;
}

const cache = new WeakMap<SagaSchema, AuditTables>();

export function auditTables(schema: SagaSchema): AuditTables {
  const hit = cache.get(schema);
  if (hit) return hit;
  const tables: AuditTables = Object.freeze({
    schema,
    auditPending: `${schema.quoted}."audit_pending"`,
    auditLog: `${schema.quoted}."audit_log"`,
    auditCheckpoint: `${schema.quoted}."audit_checkpoint"`,
    pruneFunction: `${schema.quoted}."sage_audit_prune"`,
  });
  cache.set(schema, tables);
  return tables;
}

/**
 * Advisory-lock key of the audit sealer ("sage:aud" as a big-endian int8): one sealer at a time
 * extends the chain; `sage_audit_prune` takes it too, so pruning never races a seal.
 */
export const AUDIT_SEAL_LOCK_KEY = '8314040071571469668';
