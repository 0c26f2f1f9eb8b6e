/** The audit log's entries about some targets, pending or already sealed, oldest first. */
import { withClient, type TestDatabase } from '../../test/support/pg';

export interface AuditEntry {
  action: string;
  targetId: string;
  actor: string;
}

export function auditEntries(
  db: TestDatabase,
  targetIds: readonly string[],
): Promise<AuditEntry[]> {
  return withClient(db.name, async (client) => {
    const { rows } = await client.query<AuditEntry>(
      `SELECT action, target_id AS "targetId", actor FROM (
         SELECT action, target_id, actor, at FROM sage.audit_log WHERE target_id = ANY($1)
         UNION ALL
         SELECT action, target_id, actor, at FROM sage.audit_pending WHERE target_id = ANY($1)
       ) e ORDER BY at`,
      [targetIds],
    );
    return rows;
  });
}
