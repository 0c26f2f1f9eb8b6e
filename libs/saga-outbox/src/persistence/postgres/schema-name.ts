import { InvalidOptionsError } from '../../core/errors';

/** The schema Sage's tables live in unless the app configures another one. */
export const DEFAULT_SAGA_SCHEMA = 'sage';

/**
 * Lower-case, unquoted-identifier shape, at most 63 bytes (PostgreSQL's NAMEDATALEN - 1). Being
 * this strict means the name needs no escaping and reads the same in psql as in our SQL.
 */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * A validated schema name and the quoted identifiers built from it. This is the ONE place a
 * configurable identifier enters SQL: every statement and migration takes its table names from here.
 */
export interface SagaSchema {
  /** The schema name as configured (validated). */
  readonly name: string;
  /** `"name"`, ready to splice into SQL as an identifier. */
  readonly quoted: string;
  /** `'name'`, ready to splice into SQL as a string literal (catalog lookups in DDL). */
  readonly literal: string;
  /** `"name"."saga_instance"` */
  readonly sagaInstance: string;
  /** `"name"."saga_step"` */
  readonly sagaStep: string;
}

/** Validates `schema` (default `sage`) and quotes it once. Throws InvalidOptionsError on a bad name. */
export function sagaSchema(schema: string = DEFAULT_SAGA_SCHEMA): SagaSchema {
  if (typeof schema !== 'string' || !SCHEMA_NAME.test(schema)) {
    throw new InvalidOptionsError(
      'schema',
      `${JSON.stringify(schema)} is not a valid schema name: use 1-63 characters of lower-case letters, digits and "_", not starting with a digit (for example "sage").`,
    );
  }
  if (schema.startsWith('pg_')) {
    throw new InvalidOptionsError(
      'schema',
      `"${schema}" starts with "pg_", which PostgreSQL reserves for system schemas.`,
    );
  }
  const quoted = quoteIdentifier(schema);
  return Object.freeze({
    name: schema,
    quoted,
    literal: `'${schema.replace(/'/g, "''")}'`,
    sagaInstance: `${quoted}.${quoteIdentifier('saga_instance')}`,
    sagaStep: `${quoted}.${quoteIdentifier('saga_step')}`,
  });
}

/** Standard identifier quoting (doubles embedded quotes); only ever applied to validated names. */
function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
