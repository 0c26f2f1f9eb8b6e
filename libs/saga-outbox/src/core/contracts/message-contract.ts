import { InvalidOptionsError } from '../errors';
import type { JsonValue } from '../json';

/** A JSON Schema (draft 2020-12) as a plain object. */
export type JsonSchema = { readonly [key: string]: unknown } | boolean;

/**
 * How a new version of a contract may differ from the previous one (`sage contracts check`):
 * - `backward` (default): consumers on the new version can read messages written with the previous
 *   one (no removed or retyped required field, no narrowed enum, no new required field without a
 *   default);
 * - `forward`: consumers on the previous version can read messages written with the new one;
 * - `full`: both; `none`: anything goes (a new type in all but name).
 */
export type CompatibilityMode = 'backward' | 'forward' | 'full' | 'none';

/**
 * The contract of one version of a message type: its CloudEvents `type`, a version number and the
 * JSON Schema (draft 2020-12) of its payload. Declared once, in code shared by the services that
 * produce and consume it (`defineContract`), and given to `SagaOutboxModule.forRoot({ contracts })`:
 * the outbox validates what it writes, the inbox what it delivers, and `sage asyncapi` /
 * `sage contracts check` read them.
 */
export interface MessageContract {
  /** The message type (CloudEvents `type`), e.g. `order.confirmed` or a saga command's type. */
  readonly type: string;
  /** An integer, 1 or more; each change of the schema is a new version. */
  readonly version: number;
  /** JSON Schema (draft 2020-12) of the payload. */
  readonly schema: JsonSchema;
  /** What `sage contracts check` allows between this version and the previous one. Default `backward`. */
  readonly compatibility?: CompatibilityMode;
  /** `event` (default) or `command` (a saga remote step's command, answered with a reply). */
  readonly kind?: 'event' | 'command';
  /** Where it is published (topic / exchange / subject), for AsyncAPI. */
  readonly destination?: string;
  /** For a command: JSON Schema of the result its participant answers on success. */
  readonly reply?: JsonSchema;
  /**
   * For a version above 1: turns a payload of the previous version into this version's shape, so a
   * consumer on this version also handles messages of the previous one (upcasting). Pure and
   * synchronous; its output is validated against this version's schema.
   */
  readonly upcast?: (previous: JsonValue) => JsonValue;
  /** Free text for AsyncAPI and the docs. */
  readonly description?: string;
}

const TYPE = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,254}$/;
const MODES: readonly CompatibilityMode[] = ['backward', 'forward', 'full', 'none'];

/**
 * Checks and freezes a contract (InvalidOptionsError naming the type and the field). The schema is
 * compiled later, once, when the module starts.
 */
export function defineContract<C extends MessageContract>(contract: C): C {
  const where = `contracts["${typeof contract?.type === 'string' ? contract.type : '?'}"]`;
  if (typeof contract !== 'object' || contract === null)
    throw new InvalidOptionsError(
      'contracts',
      'each contract must be an object { type, version, schema }',
    );
  if (typeof contract.type !== 'string' || !TYPE.test(contract.type))
    throw new InvalidOptionsError(
      `${where}.type`,
      'must be 1 to 255 letters, digits, ".", "_", ":", "/" or "-", starting with a letter or digit',
    );
  if (!Number.isInteger(contract.version) || contract.version < 1 || contract.version > 1_000_000)
    throw new InvalidOptionsError(
      `${where}.version`,
      `must be an integer >= 1, got ${String(contract.version)}`,
    );
  const at = `${where} v${contract.version}`;
  if (!isSchema(contract.schema))
    throw new InvalidOptionsError(`${at}.schema`, 'must be a JSON Schema (an object or a boolean)');
  if (contract.reply !== undefined && !isSchema(contract.reply))
    throw new InvalidOptionsError(`${at}.reply`, 'must be a JSON Schema (an object or a boolean)');
  if (contract.compatibility !== undefined && !MODES.includes(contract.compatibility))
    throw new InvalidOptionsError(`${at}.compatibility`, `must be one of ${MODES.join(', ')}`);
  if (contract.kind !== undefined && contract.kind !== 'event' && contract.kind !== 'command')
    throw new InvalidOptionsError(`${at}.kind`, 'must be "event" or "command"');
  if (contract.kind !== 'command' && contract.reply !== undefined)
    throw new InvalidOptionsError(`${at}.reply`, 'is only for contracts of kind "command"');
  if (contract.upcast !== undefined && typeof contract.upcast !== 'function')
    throw new InvalidOptionsError(
      `${at}.upcast`,
      'must be a function (previous payload) => payload',
    );
  if (contract.upcast !== undefined && contract.version === 1)
    throw new InvalidOptionsError(
      `${at}.upcast`,
      'version 1 has no previous version to upcast from',
    );
  if (
    contract.destination !== undefined &&
    (typeof contract.destination !== 'string' || !contract.destination.trim())
  )
    throw new InvalidOptionsError(`${at}.destination`, 'must be a non-empty string');
  return Object.freeze({ ...contract });
}

function isSchema(value: unknown): value is JsonSchema {
  return (
    typeof value === 'boolean' ||
    (typeof value === 'object' && value !== null && !Array.isArray(value))
  );
}

/** Header carrying a message's contract (CloudEvents `dataschema`, binary mode). */
export const DATASCHEMA_HEADER = 'ce-dataschema';

const DATASCHEMA = /^urn:sage:contract:(.+):v(\d{1,7})$/;

/** The `dataschema` URI of a contract version: `urn:sage:contract:<type, URI-encoded>:v<version>`. */
export function dataschemaOf(type: string, version: number): string {
  return `urn:sage:contract:${encodeURIComponent(type)}:v${version}`;
}

/** The type and version a `dataschema` names, or undefined when it is not a Sage contract URI. */
export function parseDataschema(uri: string): { type: string; version: number } | undefined {
  const match = DATASCHEMA.exec(uri.trim());
  if (!match) return undefined;
  try {
    return { type: decodeURIComponent(match[1]!), version: Number(match[2]) };
  } catch {
    return undefined;
  }
}
