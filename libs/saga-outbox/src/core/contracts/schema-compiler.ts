import type { JsonSchema } from './message-contract';

/** One way a value does not match its schema: where (a JSON pointer into the value) and why. */
export interface SchemaError {
  /** JSON pointer into the payload (`""` for the payload itself). */
  path: string;
  /** What the schema requires there, without the value (which may be personal data). */
  message: string;
}

/** A compiled schema: the errors of `value`, or none when it matches. */
export type SchemaCheck = (value: unknown) => readonly SchemaError[];

/**
 * Compiles JSON Schemas (draft 2020-12) once, at startup. The package's implementation is
 * ajvSchemaCompiler (Ajv); throw InvalidOptionsError naming `where` for a schema that does not
 * compile.
 */
export interface SchemaCompiler {
  compile(schema: JsonSchema, where: string): SchemaCheck;
}
