import { keyRing, keyRingFromEnv, type KeyRingSpec } from '../keys/key-ring';
import type { KeyProvider } from '../ports/key-provider';

/** Shortest secret accepted: 32 bytes, the output size of SHA-256 (RFC 2104's recommendation). */
export const MIN_SIGNING_KEY_BYTES = 32;

const SIGNING: KeyRingSpec = {
  option: 'signing.keys',
  env: 'SAGE_SIGNING',
  minBytes: MIN_SIGNING_KEY_BYTES,
};

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
  return keyRing(options, SIGNING);
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
  return keyRingFromEnv(env, SIGNING);
}
