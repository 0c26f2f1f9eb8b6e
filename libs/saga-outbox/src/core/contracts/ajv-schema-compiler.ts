import { InvalidOptionsError } from '../errors';
import { errorText } from '../error-text';
import type { JsonSchema } from './message-contract';
import type { SchemaCheck, SchemaCompiler, SchemaError } from './schema-compiler';

/** At most this many errors are reported per message (the first ones found). */
export const MAX_SCHEMA_ERRORS = 10;

interface AjvError {
  instancePath: string;
  message?: string;
}
interface AjvValidate {
  (value: unknown): boolean;
  errors?: AjvError[] | null;
}
interface AjvInstance {
  compile(schema: JsonSchema): AjvValidate;
}

/**
 * SchemaCompiler over Ajv's draft 2020-12 build (`ajv/dist/2020`) with `ajv-formats` (email, uri,
 * date-time…): strict mode (a typo in a keyword fails at startup, not silently), all errors.
 * `ajv` and `ajv-formats` are optional peer dependencies, needed only when contracts are declared.
 */
export function ajvSchemaCompiler(
  load: () => {
    Ajv2020: new (options: object) => AjvInstance;
    addFormats: (ajv: AjvInstance) => void;
  },
): SchemaCompiler {
  let ajv: AjvInstance | undefined;
  const instance = (): AjvInstance => {
    if (ajv) return ajv;
    const { Ajv2020, addFormats } = load();
    ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false });
    addFormats(ajv);
    return ajv;
  };
  return {
    compile(schema: JsonSchema, where: string): SchemaCheck {
      let validate: AjvValidate;
      try {
        validate = instance().compile(schema);
      } catch (error) {
        throw new InvalidOptionsError(
          where,
          `is not a valid JSON Schema (draft 2020-12): ${errorText(error)}`,
        );
      }
      return (value) => {
        if (validate(value)) return [];
        const errors: SchemaError[] = [];
        for (const e of validate.errors ?? []) {
          if (errors.length >= MAX_SCHEMA_ERRORS) break;
          errors.push({ path: e.instancePath, message: e.message ?? 'does not match the schema' });
        }
        return errors;
      };
    },
  };
}
