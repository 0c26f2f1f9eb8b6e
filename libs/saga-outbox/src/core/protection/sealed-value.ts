import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { JsonValue } from '../json';
import { DataUnreadableError } from './protection-errors';

/**
 * The envelope an encrypted value is stored and sent as, in place of the value itself (version 1):
 *
 * ```json
 * { "sage:enc": "v1", "key": "m:2026-12", "iv": "<12 bytes, base64>", "ct": "<ciphertext + 16-byte tag, base64>" }
 * ```
 *
 * - `key` names the key: `m:<id>` a master key of `dataProtection.keys`, `s:<uuid>` a data
 *   subject's key (itself stored encrypted with a master key; erasing it shreds the value);
 * - the cipher is AES-256-GCM with a fresh random 96-bit nonce (`iv`) per value;
 * - the plaintext is the value's JSON text (UTF-8);
 * - the additional authenticated data binds the ciphertext to where it lives: the location (a
 *   saga's input or a step's result by saga id, or a message by id and type), the JSON pointer of
 *   the field and the key reference. A ciphertext copied to another row, message or field does not
 *   decrypt there.
 */
export interface SealedValue {
  'sage:enc': 'v1';
  key: string;
  iv: string;
  ct: string;
}

export const SEALED_MARK = 'sage:enc';
const VERSION = 'v1';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** True for a value that is exactly an envelope this version writes. */
export function isSealedValue(value: unknown): value is SealedValue {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  if (v[SEALED_MARK] !== VERSION) return false;
  const keys = Object.keys(v);
  return (
    keys.length === 4 &&
    typeof v.key === 'string' &&
    typeof v.iv === 'string' &&
    typeof v.ct === 'string'
  );
}

/** The authenticated data: location, pointer and key reference, unambiguous (length-prefixed). */
function aad(location: string, pointer: string, keyRef: string): Buffer {
  const parts = [`sage:enc:${VERSION}`, location, pointer, keyRef];
  return Buffer.from(parts.map((p) => `${p.length}:${p}`).join('|'), 'utf8');
}

/** Encrypts `value` with `key` (32 bytes) for `location` / `pointer`, naming the key `keyRef`. */
export function sealValue(
  value: JsonValue,
  key: Uint8Array,
  keyRef: string,
  location: string,
  pointer: string,
): SealedValue {
  const iv = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad(location, pointer, keyRef));
  const ct = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
  return {
    [SEALED_MARK]: VERSION,
    key: keyRef,
    iv: iv.toString('base64'),
    ct: Buffer.concat([ct, cipher.getAuthTag()]).toString('base64'),
  };
}

/**
 * Decrypts an envelope found at `location` / `pointer` with `key`. Throws DataUnreadableError
 * (`malformed`, or `tampered` when it does not authenticate there).
 */
export function openValue(
  sealed: SealedValue,
  key: Uint8Array,
  location: string,
  pointer: string,
): JsonValue {
  if (!BASE64.test(sealed.iv) || !BASE64.test(sealed.ct))
    throw new DataUnreadableError('malformed', location, pointer);
  const iv = Buffer.from(sealed.iv, 'base64');
  const body = Buffer.from(sealed.ct, 'base64');
  if (iv.length !== NONCE_BYTES || body.length < TAG_BYTES)
    throw new DataUnreadableError('malformed', location, pointer);
  let text: string;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad(location, pointer, sealed.key));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    text = Buffer.concat([
      decipher.update(body.subarray(0, body.length - TAG_BYTES)),
      decipher.final(),
    ]).toString('utf8');
  } catch (error) {
    throw new DataUnreadableError('tampered', location, pointer, { cause: error });
  }
  try {
    return JSON.parse(text) as JsonValue;
  } catch (error) {
    throw new DataUnreadableError('malformed', location, pointer, { cause: error });
  }
}

/** Key references inside an envelope's `key`. */
export type KeyRef = { kind: 'master'; id: string } | { kind: 'subject'; id: string };

export function parseKeyRef(ref: string): KeyRef | undefined {
  if (ref.startsWith('m:') && ref.length > 2) return { kind: 'master', id: ref.slice(2) };
  if (ref.startsWith('s:') && ref.length > 2) return { kind: 'subject', id: ref.slice(2) };
  return undefined;
}

export const masterKeyRef = (id: string): string => `m:${id}`;
export const subjectKeyRef = (id: string): string => `s:${id}`;
