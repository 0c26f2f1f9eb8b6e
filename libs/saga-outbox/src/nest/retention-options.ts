import {
  invalidOption,
  nonNegativeNumber,
  optionalPositiveInteger,
  positiveNumber,
} from '../core/options';
import type { SagaRetentionOptions } from '../core/saga/saga-retention';

/** `saga.retention`: leader-only deletion of old terminal sagas (docs/retention.md). */
export type SagaRetentionModuleOptions = Omit<
  SagaRetentionOptions,
  'store' | 'clock' | 'logger'
> & {
  /** Default true; false leaves it to another deployment (or keeps sagas forever). */
  enabled?: boolean;
};

const TUNING_KEYS = [
  'enabled',
  'retentionMs',
  'batchSize',
  'intervalMs',
  'maxBatchesPerRun',
  'vacuumAfterRows',
] as const;

/**
 * Checks a `*.retention` option at the module boundary: an object of known keys with numbers in
 * range, so a typo (`retentionMS`) or a bad value fails startup naming the option. `extra` are the
 * keys only that retention has (`deadLetterTtlMs`, `archive`).
 */
export function validateRetentionOptions(
  option: string,
  value: unknown,
  extra: readonly ('deadLetterTtlMs' | 'archive')[] = [],
): void {
  if (value === undefined) return;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalidOption(option, 'must be an object such as { retentionMs: 86400000 }');
  const known: readonly string[] = [...TUNING_KEYS, ...extra];
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o))
    if (!known.includes(key))
      throw invalidOption(`${option}.${key}`, `unknown option; known options: ${known.join(', ')}`);
  if (o.enabled !== undefined && typeof o.enabled !== 'boolean')
    throw invalidOption(
      `${option}.enabled`,
      `must be true or false, got ${JSON.stringify(o.enabled)}`,
    );
  for (const key of ['retentionMs', 'vacuumAfterRows'] as const)
    if (o[key] !== undefined) nonNegativeNumber(`${option}.${key}`, o[key] as number);
  for (const key of ['intervalMs', 'deadLetterTtlMs'] as const)
    if (o[key] !== undefined) positiveNumber(`${option}.${key}`, o[key] as number);
  for (const key of ['batchSize', 'maxBatchesPerRun'] as const)
    optionalPositiveInteger(`${option}.${key}`, o[key]);
  const archive = o.archive;
  if (archive === undefined) return;
  if (typeof archive !== 'object' || archive === null || Array.isArray(archive))
    throw invalidOption(`${option}.archive`, 'must be an object such as { keepMs: 2592000000 }');
  for (const key of Object.keys(archive))
    if (key !== 'keepMs')
      throw invalidOption(`${option}.archive.${key}`, 'unknown option; known options: keepMs');
  const keepMs = (archive as { keepMs?: unknown }).keepMs;
  if (keepMs !== undefined) positiveNumber(`${option}.archive.keepMs`, keepMs as number);
}
