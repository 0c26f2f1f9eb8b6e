import { Logger, type DynamicModule } from '@nestjs/common';
import { getDataSourceToken, TypeOrmModule } from '@nestjs/typeorm';
import {
  ENCRYPTION_KEY_BYTES,
  encryptionKeys,
  encryptionKeysFromEnv,
  PostgresSubjectKeyStore,
  type DataProtectionOptions,
  type KeyProvider,
} from '@sage/saga-outbox';
import type { DataSource } from 'typeorm';
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

/**
 * The encryption options of a service that only decrypts what order-service encrypted
 * (payment-service, shipping-service): SampleEncryption plus where order-service's data-subject
 * keys are.
 */
export interface SampleDecryption extends SampleEncryption {
  /**
   * postgres:// URL of the database holding the data-subject keys order-service encrypts with (its
   * own database: the `subject_key` table of its `sage` schema); main.ts reads
   * `SAGE_SUBJECT_KEYS_DATABASE_URL`. Unset: this service's own table, which order-service never
   * writes, so messages with per-customer values are dead-lettered as unreadable.
   */
  subjectKeysDatabaseUrl?: string;
  /** Sage schema of that database (default `sage`, order-service's). */
  subjectKeysSchema?: string;
}

/** The TypeORM connection name of the shared data-subject key database. */
const SUBJECT_KEYS_CONNECTION = 'subject-keys';

/**
 * The `dataProtection` wiring of such a service: `imports` (a second, small DataSource on the key
 * database when `subjectKeysDatabaseUrl` is set; TypeOrmModule closes it at shutdown), `inject`
 * (its token, to append to SagaOutboxModule.forRootAsync's) and `options(keysDataSource)`, the
 * keys-only `dataProtection` option: nothing is encrypted on write, the store only reads keys.
 */
export function sampleDecryption(
  service: string,
  config: SampleDecryption | undefined,
): {
  imports: DynamicModule[];
  inject: string[];
  options: (keysDataSource?: DataSource) => DataProtectionOptions;
} {
  const url = config?.subjectKeysDatabaseUrl;
  return {
    imports: url
      ? [
          TypeOrmModule.forRoot({
            name: SUBJECT_KEYS_CONNECTION,
            type: 'postgres',
            url,
            synchronize: false,
            migrationsRun: false,
            extra: { max: 2 },
          }),
        ]
      : [],
    inject: url ? [getDataSourceToken(SUBJECT_KEYS_CONNECTION) as string] : [],
    options: (keysDataSource) => ({
      keys: sampleEncryptionKeys(service, config?.keys),
      subjectKeyCacheMs: config?.subjectKeyCacheMs,
      subjectKeys: keysDataSource
        ? new PostgresSubjectKeyStore(keysDataSource, { schema: config?.subjectKeysSchema })
        : undefined,
    }),
  };
}
