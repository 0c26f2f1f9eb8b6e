import { invalidOption, positiveNumber } from './options';
import type { RetentionBatch, RetentionSweep } from './retention-loop';

/**
 * The optional sweep of a retention loop behind one option (a dead-letter TTL, an archive's keep
 * time): none when the option is absent; otherwise the age is checked (> 0) and the store must
 * implement the batch, or InvalidOptionsError names the option.
 */
export function optionalSweep(
  option: string,
  name: string,
  ageMs: number | undefined,
  batch: RetentionBatch | undefined,
  storeName: string,
): RetentionSweep[] {
  if (ageMs === undefined) return [];
  const olderThanMs = positiveNumber(option, ageMs);
  if (!batch)
    throw invalidOption(
      option,
      `this ${storeName} cannot do it; use the PostgreSQL store, or remove the option`,
    );
  return [{ name, olderThanMs, batch }];
}
