import { invalidOption, optionalPositiveInteger, positiveNumber } from '../../core/options';
import type { KeyProvider } from '../../core/ports/key-provider';

/**
 * `audit`: the audit log's sealer (docs/audit-log.md). The migration's triggers record saga, step
 * and dead-letter changes whatever these options say; the sealer moves those entries into the hash
 * chain, so some process must run it: every app with the module does by default (one at a time
 * seals, the others skip).
 */
export interface AuditModuleOptions {
  /**
   * Run the sealer in this app. Default true; false leaves it to another deployment (or to
   * `sage audit seal` run on a schedule): entries then wait in `audit_pending`, unverified.
   */
  enabled?: boolean;
  /** Pause between sealing runs. Default 1000 ms. */
  sealIntervalMs?: number;
  /** Entries sealed per transaction, 1-10000. Default 500. */
  batchSize?: number;
  /**
   * Keep sealed entries this long, then delete them behind a checkpoint (the chain stays
   * verifiable from there). Default: kept for ever.
   */
  retentionMs?: number;
  /** Seal with HMAC-SHA256 under the provider's active key, besides the SHA-256 chain. Default: none. */
  hmacKeys?: KeyProvider;
}

const KEYS = ['enabled', 'sealIntervalMs', 'batchSize', 'retentionMs', 'hmacKeys'] as const;

/** Checks `audit` at the module boundary: InvalidOptionsError naming the option otherwise. */
export function validateAuditOptions(value: unknown): void {
  if (value === undefined) return;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalidOption(
      'audit',
      'must be an object such as { enabled: true, sealIntervalMs: 1000 }',
    );
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o))
    if (!(KEYS as readonly string[]).includes(key))
      throw invalidOption(`audit.${key}`, `unknown option; known options: ${KEYS.join(', ')}`);
  if (o.enabled !== undefined && typeof o.enabled !== 'boolean')
    throw invalidOption('audit.enabled', `must be true or false, got ${JSON.stringify(o.enabled)}`);
  for (const key of ['sealIntervalMs', 'retentionMs'] as const)
    if (o[key] !== undefined) positiveNumber(`audit.${key}`, o[key] as number);
  optionalPositiveInteger('audit.batchSize', o.batchSize, 10_000);
  const keys = o.hmacKeys as Partial<KeyProvider> | undefined;
  if (
    keys !== undefined &&
    (typeof keys !== 'object' ||
      keys === null ||
      typeof keys.activeKeyId !== 'function' ||
      typeof keys.key !== 'function')
  )
    throw invalidOption(
      'audit.hmacKeys',
      'must be a KeyProvider (activeKeyId(), key(id)), e.g. signingKeys({ active, keys }) or signingKeysFromEnv()',
    );
}
