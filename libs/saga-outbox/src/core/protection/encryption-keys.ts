import { keyRing, keyRingFromEnv, type KeyRingSpec } from '../keys/key-ring';
import type { KeyProvider } from '../ports/key-provider';

/** AES-256 keys: exactly 32 random bytes. */
export const ENCRYPTION_KEY_BYTES = 32;

const ENCRYPTION: KeyRingSpec = {
  option: 'dataProtection.keys',
  env: 'SAGE_ENCRYPTION',
  minBytes: ENCRYPTION_KEY_BYTES,
  exactBytes: ENCRYPTION_KEY_BYTES,
};

/**
 * Master keys for `dataProtection` given in code: `keys` maps each id to 32 random bytes (bytes,
 * or `base64:…` text), `active` names the one new values (and new data-subject keys) are
 * encrypted with. Older keys keep decrypting what they encrypted until `sage keys rotate` has
 * rewritten it. Throws InvalidOptionsError (naming the id, never the key).
 */
export function encryptionKeys(options: {
  active: string;
  keys: Readonly<Record<string, string | Uint8Array>>;
}): KeyProvider {
  return keyRing(options, ENCRYPTION);
}

/**
 * Master keys from the environment: `SAGE_ENCRYPTION_KEYS` (or `SAGE_ENCRYPTION_KEYS_FILE`, a
 * mounted secret) holding `id=base64key` pairs separated by commas or newlines, each key 32 bytes
 * (`openssl rand -base64 32`); `SAGE_ENCRYPTION_ACTIVE_KEY` names the active one (default: the
 * last pair). Undefined when neither variable is set.
 */
export function encryptionKeysFromEnv(
  env: Readonly<Record<string, string | undefined>> = process.env,
): KeyProvider | undefined {
  return keyRingFromEnv(env, ENCRYPTION);
}
