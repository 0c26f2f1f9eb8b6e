import { readFileSync } from 'node:fs';
import { InvalidOptionsError } from '../errors';
import type { KeyProvider } from '../ports/key-provider';

/** A key id: short, printable, travels in headers and beside ciphertexts. */
export const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** What a key ring is for: the names its errors use and the sizes it accepts. */
export interface KeyRingSpec {
  /** The option errors name, e.g. `signing.keys`. */
  option: string;
  /** Environment variable prefix, e.g. `SAGE_SIGNING` (`_KEYS`, `_KEYS_FILE`, `_ACTIVE_KEY`). */
  env: string;
  /** Shortest secret accepted, in bytes. */
  minBytes: number;
  /** When set, the only size accepted (AES-256 keys are 32 bytes exactly). */
  exactBytes?: number;
}

/**
 * A KeyProvider over keys given in code: `keys` maps each id to its secret (bytes, or text decoded
 * as base64 when prefixed `base64:`, else as UTF-8), `active` names the one new writes use. Throws
 * InvalidOptionsError (naming the id, never the secret) for a malformed id, a secret of the wrong
 * size, or an `active` id that is not among `keys`.
 */
export function keyRing(
  options: { active: string; keys: Readonly<Record<string, string | Uint8Array>> },
  spec: KeyRingSpec,
): KeyProvider {
  const where = spec.option;
  if (typeof options !== 'object' || options === null)
    throw new InvalidOptionsError(where, 'must be { active, keys }');
  const keys = new Map<string, Uint8Array>();
  for (const [id, secret] of Object.entries(options.keys ?? {})) {
    // The id is not echoed: what fails the check may be a secret pasted in the wrong place.
    if (!KEY_ID.test(id))
      throw new InvalidOptionsError(
        where,
        `key id #${keys.size + 1} must be 1 to 64 letters, digits, ".", "_" or "-"`,
      );
    keys.set(id, secretBytes(id, secret, spec));
  }
  if (!keys.size) throw new InvalidOptionsError(where, 'holds no key; give at least one');
  const active = options.active;
  if (typeof active !== 'string' || !keys.has(active))
    throw new InvalidOptionsError(
      `${where} active`,
      `names a key that is not among the keys (${[...keys.keys()].join(', ')})`,
    );
  return {
    activeKeyId: () => active,
    key: (id) => keys.get(id),
  };
}

/**
 * A KeyProvider from the environment: `<env>_KEYS` (or `<env>_KEYS_FILE`, a mounted secret holding
 * the same text): `id=secret` pairs separated by commas or newlines, each secret in base64;
 * `<env>_ACTIVE_KEY`: the id new writes use (default: the last pair). Undefined when neither
 * variable is set.
 */
export function keyRingFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  spec: KeyRingSpec,
): KeyProvider | undefined {
  const keysVar = `${spec.env}_KEYS`;
  const fileVar = `${spec.env}_KEYS_FILE`;
  const file = env[fileVar];
  let text = env[keysVar];
  if (file !== undefined && file !== '') {
    if (text !== undefined && text !== '')
      throw new InvalidOptionsError(
        keysVar,
        `is set together with ${fileVar}; set only one of them`,
      );
    try {
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- reviewed: the deployment's own *_KEYS_FILE (a mounted secret), never from a message or request
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new InvalidOptionsError(
        fileVar,
        `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'}): mount the key file at ${file} or unset the variable`,
      );
    }
  }
  if (text === undefined || text.trim() === '') return undefined;
  const keys: Record<string, string> = {};
  let last: string | undefined;
  for (const entry of text.split(/[,\n\r]+/)) {
    const pair = entry.trim();
    if (!pair) continue;
    const at = pair.indexOf('=');
    const id = at > 0 ? pair.slice(0, at).trim() : '';
    const secret = at > 0 ? pair.slice(at + 1).trim() : '';
    // Never echoed: a malformed entry may be a bare secret (base64 ends with "=").
    if (!KEY_ID.test(id) || secret === '')
      throw new InvalidOptionsError(
        keysVar,
        `entry ${Object.keys(keys).length + 1} is not "id=base64secret" (an id of 1 to 64 letters, digits, ".", "_" or "-", then "=", then the secret); separate entries with commas or newlines`,
      );
    keys[id] = `base64:${secret}`;
    last = id;
  }
  const active = env[`${spec.env}_ACTIVE_KEY`]?.trim() || last;
  return keyRing({ active: active ?? '', keys }, { ...spec, option: keysVar });
}

function secretBytes(id: string, secret: string | Uint8Array, spec: KeyRingSpec): Uint8Array {
  let bytes: Uint8Array;
  if (secret instanceof Uint8Array) bytes = Uint8Array.from(secret);
  else if (typeof secret === 'string' && secret.startsWith('base64:')) {
    const text = secret.slice('base64:'.length);
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text))
      throw new InvalidOptionsError(spec.option, `key "${id}" is not valid base64`);
    bytes = Buffer.from(text, 'base64');
  } else if (typeof secret === 'string') bytes = Buffer.from(secret, 'utf8');
  else throw new InvalidOptionsError(spec.option, `key "${id}" must be a string or bytes`);
  if (spec.exactBytes !== undefined && bytes.byteLength !== spec.exactBytes)
    throw new InvalidOptionsError(
      spec.option,
      `key "${id}" is ${bytes.byteLength} bytes; it must be exactly ${spec.exactBytes} random bytes (e.g. \`openssl rand -base64 ${spec.exactBytes}\`)`,
    );
  if (bytes.byteLength < spec.minBytes)
    throw new InvalidOptionsError(
      spec.option,
      `key "${id}" is ${bytes.byteLength} bytes; use at least ${spec.minBytes} random bytes (e.g. \`openssl rand -base64 32\`)`,
    );
  return bytes;
}
