import { createHash } from 'node:crypto';
import { canonicalJson } from '../canonical-json';
import type { JsonValue } from '../json';

/** How a repeated idempotency key with a different input is answered by `start()`. */
export type IdempotencyConflictPolicy = 'reject' | 'return-existing';
export const IDEMPOTENCY_CONFLICT_POLICIES: readonly IdempotencyConflictPolicy[] = [
  'reject',
  'return-existing',
];

/**
 * What an idempotency key is stored with, to tell a repeated request from a different one reusing
 * its key: the SHA-256 (hex) of the canonical JSON of `[sagaName, input]`. Key order inside objects
 * does not change it; any other difference in the input does. `input` must have passed
 * assertJsonSerializable.
 */
export function sagaInputFingerprint(sagaName: string, input: JsonValue): string {
  return createHash('sha256')
    .update(canonicalJson([sagaName, input]), 'utf8')
    .digest('hex');
}
