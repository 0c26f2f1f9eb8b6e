import { Logger } from '@nestjs/common';
import {
  ENCRYPTION_KEY_BYTES,
  encryptionKeys,
  encryptionKeysFromEnv,
  type KeyProvider,
} from '@sage/saga-outbox';
import { randomBytes } from 'node:crypto';

/**
 * How a sample service encrypts personal data (`dataProtection`, docs/data-protection.md). Both
 * services must hold the same master keys and read the same data-subject keys (order-service's
 * `subject_key` table): payment-service decrypts what order-service encrypted for a customer, and
 * one erasure shreds every copy.
 */
export interface SampleEncryption {
  /**
   * Master keys. Default: `SAGE_ENCRYPTION_KEYS` (encryptionKeysFromEnv), else a random key made
   * at startup (the embedded demo): whatever it encrypted is unreadable after a restart.
   */
  keys?: KeyProvider;
  /** How long an unwrapped data-subject key stays in memory (ms; default 30 s). */
  subjectKeyCacheMs?: number;
}

/**
 * The master keys a sample service encrypts with: `configured`, else `SAGE_ENCRYPTION_KEYS`, else a
 * random key made now (logged once, at info, without the key).
 */
export function sampleEncryptionKeys(service: string, configured?: KeyProvider): KeyProvider {
  const keys = configured ?? encryptionKeysFromEnv();
  if (keys) return keys;
  new Logger(service).log(
    'SAGE_ENCRYPTION_KEYS not set: personal data is encrypted with an ephemeral key made at startup (unreadable after a restart; other services cannot decrypt it)',
  );
  const id = `ephemeral-${Date.now()}`;
  return encryptionKeys({ active: id, keys: { [id]: randomBytes(ENCRYPTION_KEY_BYTES) } });
}
