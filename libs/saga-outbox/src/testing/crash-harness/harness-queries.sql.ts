/**
 * The crash harness's own SQL: emptying the tables between runs, ending a killed worker's lease,
 * and reading what a saga wrote to the outbox. Sage's identifiers come from the validated
 * SagaSchema; the user's table names are validated and quoted here, once (userTable).
 */
import { InvalidOptionsError } from '../../core/errors';
import { outboxTables } from '../../persistence/postgres/outbox-tables';
import type { Statement } from '../../persistence/postgres/saga-queries.sql';
import type { SagaSchema } from '../../persistence/postgres/schema-name';

/** A table name as the harness's `tables` option takes it: `name` or `schema.name`, unquoted. */
// eslint-disable-next-line security/detect-unsafe-regex -- linear: the optional `(\.…)?` part starts at a "." the first name cannot contain, and both names are bounded to 63 characters.
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?$/;

/** `orders.stock` → `"orders"."stock"`; anything else fails naming the option. */
export function userTable(name: string): string {
  if (typeof name !== 'string' || !TABLE_NAME.test(name))
    throw new InvalidOptionsError(
      'tables',
      `${JSON.stringify(name)} is not a table name: give "table" or "schema.table" (letters, digits, "_", "$")`,
    );
  return name
    .split('.')
    .map((part) => `"${part}"`)
    .join('.');
}

/**
 * Sage's tables in its schema (migrations' bookkeeping lives elsewhere), quoted, but for the
 * sealed audit log and its checkpoints: they refuse TRUNCATE (append-only, docs/audit-log.md), and
 * a run's entries only append to the chain, so they never make runs differ. `audit_pending` has no
 * such guard and is emptied with the rest (its entries would be sealed otherwise, which is fine
 * either way).
 */
export function sageTables(t: SagaSchema): Statement<{ table: string }> {
  return {
    text: `SELECT format('%I.%I', schemaname, tablename) AS "table"
           FROM pg_catalog.pg_tables
           WHERE schemaname = $1 AND tablename NOT IN ('audit_log', 'audit_checkpoint')
           ORDER BY tablename`,
    values: [t.name],
  };
}

/**
 * Empties `tables` (already quoted: sageTables, userTable) for the next run, in one statement;
 * CASCADE because the user's tables may reference each other, RESTART IDENTITY so ids repeat.
 */
export function truncateTables(quotedTables: readonly string[]): Statement<never> {
  return { text: `TRUNCATE ${quotedTables.join(', ')} RESTART IDENTITY CASCADE`, values: [] };
}

/**
 * The killed worker's lease runs out now rather than after `leaseMs`: the state the database would
 * hold once it had, so the next worker's recovery claims the saga at once. Only while the killed
 * worker still owns it.
 */
export function expireLease(
  t: SagaSchema,
  p: { sagaId: string; owner: string },
): Statement<{ id: string }> {
  return {
    text: `UPDATE ${t.sagaInstance}
           SET lease_until = clock_timestamp() - interval '1 millisecond'
           WHERE id = $1 AND owner = $2
           RETURNING id`,
    values: [p.sagaId, p.owner],
  };
}

export interface OutboxRow {
  id: string;
  destination: string;
  type: string;
  key: string | null;
  payload: unknown;
  headers: Record<string, string>;
}

/** What the saga wrote to the outbox and committed (commands, `ctx.emit` messages), in publish order. */
export function sagaOutboxRows(t: SagaSchema, p: { sagaId: string }): Statement<OutboxRow> {
  return {
    text: `SELECT id, destination, type, key, payload, headers
           FROM ${outboxTables(t).outboxMessage}
           WHERE saga_id = $1
           ORDER BY txid, seq`,
    values: [p.sagaId],
  };
}
