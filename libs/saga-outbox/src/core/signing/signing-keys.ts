import { readFileSync } from 'node:fs';
import { InvalidOptionsError } from '../errors';
import type { KeyProvider } from '../ports/key-provider';

/** Shortest secret accepted: 32 bytes, the output size of SHA-256 (RFC 2104's recommendation). */
export const MIN_SIGNING_KEY_BYTES = 32;

/** A key id: short, printable, travels as the `sage-signature-key` header. */
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * A KeyProvider over keys given in code: `keys` maps each id to its secret (bytes, or text decoded
 * as base64 when prefixed `base64:`, else as UTF-8), `active` names the one new messages are
 * signed with. Throws InvalidOptionsError (naming the id, never the secret) for a malformed id,
 * a secret shorter than 32 bytes, or an `active` id that is not among `keys`.
 */
export function signingKeys(options: {
  active: string;
  keys: Readonly<Record<string, string | Uint8Array>>;
}): KeyProvider {
  const where = 'signing.keys';
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
    keys.set(id, secretBytes(id, secret));
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
 * A KeyProvider from the environment, for containers and the standalone relay:
 * - `SAGE_SIGNING_KEYS` (or `SAGE_SIGNING_KEYS_FILE`, a mounted secret holding the same text):
 *   `id=secret` pairs separated by commas or newlines, each secret in base64 (32 bytes or more),
 *   e.g. `2026-11=3q2+7w…,2026-12=q83vEj…`;
 * - `SAGE_SIGNING_ACTIVE_KEY`: the id new messages are signed with (default: the last pair).
 * Returns undefined when neither variable is set (signing off). Rotate by adding the new key
 * everywhere, then making it active, then removing the old one once nothing signed with it is in
 * flight.
 */
export function signingKeysFromEnv(
  env: Readonly<Record<string, string | undefined>> = process.env,
): KeyProvider | undefined {
  const file = env.SAGE_SIGNING_KEYS_FILE;
  let text = env.SAGE_SIGNING_KEYS;
  if (file !== undefined && file !== '') {
    if (text !== undefined && text !== '')
      throw new InvalidOptionsError(
        'SAGE_SIGNING_KEYS',
        'is set together with SAGE_SIGNING_KEYS_FILE; set only one of them',
      );
    try {
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- reviewed: the deployment's own SAGE_SIGNING_KEYS_FILE (a mounted secret), never from a message or request
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new InvalidOptionsError(
        'SAGE_SIGNING_KEYS_FILE',
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
        'SAGE_SIGNING_KEYS',
        `entry ${Object.keys(keys).length + 1} is not "id=base64secret" (an id of 1 to 64 letters, digits, ".", "_" or "-", then "=", then the secret); separate entries with commas or newlines`,
      );
    keys[id] = `base64:${secret}`;
    last = id;
  }
  const active = env.SAGE_SIGNING_ACTIVE_KEY?.trim() || last;
  return signingKeys({ active: active ?? '', keys });
}

function secretBytes(id: string, secret: string | Uint8Array): Uint8Array {
  let bytes: Uint8Array;
  if (secret instanceof Uint8Array) bytes = Uint8Array.from(secret);
  else if (typeof secret === 'string' && secret.startsWith('base64:')) {
    const text = secret.slice('base64:'.length);
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text))
      throw new InvalidOptionsError('signing.keys', `key "${id}" is not valid base64`);
    bytes = Buffer.from(text, 'base64');
  } else if (typeof secret === 'string') bytes = Buffer.from(secret, 'utf8');
  else throw new InvalidOptionsError('signing.keys', `key "${id}" must be a string or bytes`);
  if (bytes.byteLength < MIN_SIGNING_KEY_BYTES)
    throw new InvalidOptionsError(
      'signing.keys',
      `key "${id}" is ${bytes.byteLength} bytes; use at least ${MIN_SIGNING_KEY_BYTES} random bytes (e.g. \`openssl rand -base64 32\`)`,
    );
  return bytes;
}
