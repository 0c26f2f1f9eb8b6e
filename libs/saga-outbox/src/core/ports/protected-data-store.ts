import type { JsonValue } from '../json';
import type { SagaStatus, StepStatus } from './saga-store';

/**
 * Where Sage stores values that may hold envelopes (core/protection/sealed-value.ts):
 * - `saga-input`: a saga's input (location `saga/<id>/input`);
 * - `step-result`: a step's result (`saga/<id>/step/<name>/result`);
 * - `outbox`: an outbox message's payload, every status (`message/<id>/<type>`);
 * - `outbox-archive`: a sent message the outbox retention archived (same location);
 * - `inbox-dead-letter`: an inbox dead letter's snapshot of the message as received (its
 *   `payload`, at the location of that message).
 */
export type ProtectedSource =
  'saga-input' | 'step-result' | 'outbox' | 'outbox-archive' | 'inbox-dead-letter';

/** Every source, in the order rotation and export visit them. */
export const PROTECTED_SOURCES: readonly ProtectedSource[] = [
  'saga-input',
  'step-result',
  'outbox',
  'outbox-archive',
  'inbox-dead-letter',
];

/**
 * Which stored values a scan returns: those holding an envelope under a master key other than
 * `activeKeyId` (rotation), or an envelope under one of the data-subject keys `keyIds` (export,
 * erasure checks). A scan may return a few more (a value whose own fields look like an envelope's
 * key reference): callers check each value with findSealed; it must never return fewer.
 */
export type EnvelopeFilter =
  | { kind: 'master-other-than'; activeKeyId: string }
  | { kind: 'subject-keys'; keyIds: readonly string[] };

/** The message columns of an outbox (or archived) row. */
export interface ProtectedMessageFields {
  type: string;
  destination: string;
  key: string | null;
  headers: Record<string, string>;
  /** The outbox status; `archived` for the archive. */
  status: string;
}

/** One stored value found by a scan. */
export interface ProtectedRow {
  source: ProtectedSource;
  /**
   * The row's primary key, in key order, as text: the scan's keyset cursor. `saga-input` [saga id];
   * `step-result` [saga id, step name]; `outbox`, `outbox-archive` [message id];
   * `inbox-dead-letter` [consumer, message id].
   */
  key: readonly string[];
  /** The stored JSON: the input, the result, the payload, or the inbox snapshot. */
  value: JsonValue;
  /** Opaque: what `replace` compares to, so a row changed since the scan is left alone. */
  version: string;
  /** Outbox and archive rows only. */
  message?: ProtectedMessageFields;
}

/** A saga with its steps, as stored (values still sealed). */
export interface StoredSagaSnapshot {
  id: string;
  name: string;
  status: SagaStatus;
  input: JsonValue;
  steps: { name: string; status: StepStatus; result: JsonValue | null }[];
}

/** An entry for the audit log (see docs/audit-log.md); never personal data. */
export interface ProtectionAuditEntry {
  action: 'keys.rotated' | 'subject.erased';
  targetType: string;
  targetId: string;
  detail: Record<string, JsonValue>;
}

/**
 * Stored values with envelopes, for key rotation and data-subject export / erasure
 * (core/protection/key-rotation.ts, data-subjects.ts). Implementation: PostgresProtectedDataStore.
 */
export interface ProtectedDataStore {
  /**
   * The next rows of `source` matching `filter`, in primary-key order after `after` (null: from the
   * start), at most `limit`.
   */
  scan(
    source: ProtectedSource,
    filter: EnvelopeFilter,
    after: readonly string[] | null,
    limit: number,
  ): Promise<ProtectedRow[]>;
  /**
   * Writes `value` (and, for messages, `headers`) over the row, only if the row still holds what the
   * scan read (`row.version`, and the message headers). Returns whether it changed: false when a
   * concurrent writer changed or deleted the row meanwhile.
   */
  replace(row: ProtectedRow, value: JsonValue, headers?: Record<string, string>): Promise<boolean>;
  /** The sagas of `ids` that exist, with their steps in order. */
  sagas(ids: readonly string[]): Promise<StoredSagaSnapshot[]>;
  /** Records an audit entry, when the store has an audit log. */
  recordAudit?(entry: ProtectionAuditEntry): Promise<void>;
}
