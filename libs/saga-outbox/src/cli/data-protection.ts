import { validateDataProtection } from '../core/protection/data-protection-options';
import { DataProtector } from '../core/protection/data-protector';
import { encryptionKeysFromEnv } from '../core/protection/encryption-keys';
import { PostgresProtectedDataStore } from '../persistence/postgres/postgres-protected-data-store';
import { PostgresSubjectKeyStore } from '../persistence/postgres/postgres-subject-key-store';
import { UsageError } from './cli-errors';
import type { CommandContext } from './command';

/** The keys and stores the `keys` and `gdpr` commands work with. */
export interface CliDataProtection {
  protector: DataProtector;
  store: PostgresProtectedDataStore;
}

/**
 * Master keys from SAGE_ENCRYPTION_KEYS (or SAGE_ENCRYPTION_KEYS_FILE) and
 * SAGE_ENCRYPTION_ACTIVE_KEY, as the app's `encryptionKeysFromEnv()`; data-subject keys in the
 * database's `subject_key` table, read without caching. Checked before anything connects.
 */
export async function cliDataProtection(ctx: CommandContext): Promise<CliDataProtection> {
  const keys = encryptionKeysFromEnv(ctx.io.env);
  if (!keys)
    throw new UsageError(
      'no encryption keys: set SAGE_ENCRYPTION_KEYS (id=base64 pairs, or SAGE_ENCRYPTION_KEYS_FILE) and SAGE_ENCRYPTION_ACTIVE_KEY as for the app',
    );
  const db = await ctx.db();
  const settings = validateDataProtection({
    keys,
    subjectKeys: new PostgresSubjectKeyStore(db.dataSource, { schema: db.schema }),
    subjectKeyCacheMs: 0,
  })!;
  return {
    protector: new DataProtector(settings),
    store: new PostgresProtectedDataStore(db.dataSource, { schema: db.schema }),
  };
}
