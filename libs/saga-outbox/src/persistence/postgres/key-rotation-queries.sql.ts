/**
 * Finding and rewriting stored values that hold envelopes (core/protection/sealed-value.ts), for key
 * rotation and data-subject export / erasure checks (PostgresProtectedDataStore).
 *
 * How rows are found: by the envelope's key reference in the column's text. PostgreSQL prints jsonb
 * as `{"ct": "...", "iv": "...", "key": "m:<id>", "sage:enc": "v1"}`, so an envelope under master key
 * `<id>` shows as `"key": "m:<id>"` and one under a subject key as `"key": "s:<uuid>"`. Text inside
 * a JSON string has its quotes escaped (`\"`), so a user's string never matches; a user's own object
 * with a `key` property starting with `m:` may (the caller checks each value and skips it).
 *
 * Cost, said plainly: no index can serve these filters. Each batch walks the table's primary key
 * from the cursor and, for every row on the way, renders the jsonb column as text and matches it,
 * until `limit` rows matched; a whole pass therefore reads every row of the table once (the column
 * detoasted and printed: CPU-bound, roughly the cost of `SELECT col::text` over the table), however
 * many batches it takes. Rows are read in primary-key order, not physical order. Run rotation and
 * export off-peak on large tables, with a batch size that keeps each statement short (a batch holds
 * no locks beyond the statement; the conditional updates lock one row each, briefly).
 */
import type { ProtectedSource } from '../../core/ports/protected-data-store';
import { inboxTables } from './inbox-tables';
import { outboxArchiveTable } from './outbox-archive.sql';
import { outboxTables } from './outbox-tables';
import type { Statement } from './saga-queries.sql';
import type { SagaSchema } from './schema-name';

/** What a scan row carries: the key columns as text, the column as text, message fields for outbox rows. */
export interface ProtectedScanRow {
  k1: string;
  k2: string | null;
  value_text: string;
  type: string | null;
  destination: string | null;
  key: string | null;
  headers: Record<string, string> | null;
  status: string | null;
}

/**
 * The filter, on the column's text (`$1`):
 * - master: envelopes under another master key than `$1` remain once every `"key": "m:<$1>"` is cut
 *   out (key ids are `[A-Za-z0-9._-]`, printed as they are);
 * - subject: any of the patterns `$1` (`%"key": "s:<uuid>"%`, uuids checked by the caller).
 */
function envelopeCondition(column: string, kind: 'master' | 'subject'): string {
  return kind === 'master'
    ? `replace(${column}::text, '"key": "m:' || $1::text || '"', '') LIKE '%"key": "m:%'`
    : `${column}::text LIKE ANY ($1::text[])`;
}

/** The LIKE patterns a subject scan takes for `keyIds` (uuids: no LIKE metacharacters). */
export function subjectKeyPatterns(keyIds: readonly string[]): string[] {
  return keyIds.map((id) => `%"key": "s:${id}"%`);
}

interface SourceShape {
  /** Table, from the validated schema. */
  table: string;
  /** The jsonb column holding envelopes. */
  column: string;
  /** Primary-key columns, as text for the cursor, and their casts for the comparison. */
  keys: readonly { column: string; cast: string }[];
  /** Extra SELECT list (message fields), `NULL AS ...` otherwise. */
  extra: string;
  /** Extra WHERE condition, or empty. */
  where: string;
}

const NO_MESSAGE =
  'NULL::text AS type, NULL::text AS destination, NULL::text AS key, NULL::jsonb AS headers, NULL::text AS status';

function shape(schema: SagaSchema, source: ProtectedSource): SourceShape {
  const outbox = outboxTables(schema);
  switch (source) {
    case 'saga-input':
      return {
        table: schema.sagaInstance,
        column: 'input',
        keys: [{ column: 'id', cast: 'uuid' }],
        extra: NO_MESSAGE,
        where: '',
      };
    case 'step-result':
      return {
        table: schema.sagaStep,
        column: 'result',
        keys: [
          { column: 'saga_id', cast: 'uuid' },
          { column: 'name', cast: 'text' },
        ],
        extra: NO_MESSAGE,
        where: 'AND result IS NOT NULL',
      };
    case 'outbox':
      return {
        table: outbox.outboxMessage,
        column: 'payload',
        keys: [{ column: 'id', cast: 'uuid' }],
        extra: 'type, destination, key, headers, status',
        where: '',
      };
    case 'outbox-archive':
      return {
        table: outboxArchiveTable(schema),
        column: 'payload',
        keys: [{ column: 'id', cast: 'uuid' }],
        extra: `type, destination, key, headers, 'archived'::text AS status`,
        where: '',
      };
    case 'inbox-dead-letter':
      return {
        table: inboxTables(schema).inboxMessage,
        column: 'message',
        keys: [
          { column: 'consumer', cast: 'text' },
          { column: 'message_id', cast: 'text' },
        ],
        extra: NO_MESSAGE,
        where: `AND status = 'dead_letter' AND message IS NOT NULL`,
      };
  }
}

/**
 * One batch of `source`'s rows whose column holds a matching envelope, in primary-key order after
 * `after` (keyset pagination: the row-value comparison `(k1, k2) > ($2, $3)` is an index range
 * condition on the primary key), at most `limit`. A plain SELECT: no locks.
 */
export function scanProtectedRows(
  schema: SagaSchema,
  source: ProtectedSource,
  p: {
    filter: { kind: 'master'; activeKeyId: string } | { kind: 'subject'; patterns: string[] };
    after: readonly string[] | null;
    limit: number;
  },
): Statement<ProtectedScanRow> {
  const s = shape(schema, source);
  const keyList = s.keys.map((k) => k.column).join(', ');
  const values: unknown[] = [p.filter.kind === 'master' ? p.filter.activeKeyId : p.filter.patterns];
  let cursor = '';
  if (p.after !== null) {
    const params = s.keys.map((k, i) => `$${i + 2}::${k.cast}`);
    cursor = `AND (${keyList}) > (${params.join(', ')})`;
    values.push(...s.keys.map((_, i) => p.after![i]));
  }
  values.push(p.limit);
  const [first, second] = s.keys;
  return {
    text: `SELECT ${first!.column}::text AS k1, ${second ? `${second.column}::text` : 'NULL::text'} AS k2,
        ${s.column}::text AS value_text, ${s.extra}
      FROM ${s.table}
      WHERE ${envelopeCondition(s.column, p.filter.kind)} ${s.where} ${cursor}
      ORDER BY ${keyList}
      LIMIT $${values.length}`,
    values,
  };
}

/**
 * Rewrites one row's column (and an outbox row's headers) only if it still holds exactly what the
 * scan read (`expected`, the column's text then; jsonb equality, so formatting does not matter): a
 * concurrent writer (a step finishing, the relay, an operator) wins, and the row is read again in
 * the next pass. Nothing else of the row changes (not its status, not `updated_at`).
 */
export function replaceProtectedValue(
  schema: SagaSchema,
  source: ProtectedSource,
  p: {
    key: readonly string[];
    value: string;
    expected: string;
    headers?: { value: string; expected: string };
  },
): Statement<{ ok: number }> {
  const s = shape(schema, source);
  const values: unknown[] = [p.value, p.expected];
  const keyConditions = s.keys.map((k, i) => {
    values.push(p.key[i]);
    return `${k.column} = $${values.length}::${k.cast}`;
  });
  let setHeaders = '';
  let sameHeaders = '';
  if (p.headers) {
    values.push(p.headers.value, p.headers.expected);
    setHeaders = `, headers = $${values.length - 1}::jsonb`;
    sameHeaders = `AND headers = $${values.length}::jsonb`;
  }
  return {
    text: `UPDATE ${s.table} SET ${s.column} = $1::jsonb${setHeaders}
      WHERE ${keyConditions.join(' AND ')} AND ${s.column} = $2::jsonb ${sameHeaders} ${s.where}
      RETURNING 1 AS ok`,
    values,
  };
}

/** Sagas by id, for export and the erasure check (primary key lookups). */
export function selectSagasByIds(
  schema: SagaSchema,
  p: { ids: readonly string[] },
): Statement<{ id: string; name: string; status: string; input_text: string }> {
  return {
    text: `SELECT id::text AS id, name, status, input::text AS input_text
      FROM ${schema.sagaInstance} WHERE id = ANY ($1::uuid[]) ORDER BY created_at, id`,
    values: [p.ids],
  };
}

/** The steps of those sagas, in order (saga_step's primary key starts with saga_id). */
export function selectStepsOfSagas(
  schema: SagaSchema,
  p: { ids: readonly string[] },
): Statement<{ saga_id: string; name: string; status: string; result_text: string | null }> {
  return {
    text: `SELECT saga_id::text AS saga_id, name, status, result::text AS result_text
      FROM ${schema.sagaStep} WHERE saga_id = ANY ($1::uuid[]) ORDER BY saga_id, position`,
    values: [p.ids],
  };
}
