import { InvalidOptionsError } from '../errors';
import type { JsonValue } from '../json';
import type { KeyProvider } from '../ports/key-provider';
import {
  PROTECTED_SOURCES,
  type ProtectedDataStore,
  type ProtectedRow,
  type ProtectedSource,
} from '../ports/protected-data-store';
import { SIGNATURE_HEADER, signMessage } from '../signing/message-signature';
import { ProtectedLocation, type DataProtector } from './data-protector';
import { DataUnreadableError } from './protection-errors';

/** Rows read per batch unless told otherwise. */
export const DEFAULT_ROTATION_BATCH_SIZE = 200;
const MAX_BATCH_SIZE = 10_000;
/** Passes over a source while concurrent writers keep winning rows, before reporting them. */
const MAX_PASSES = 5;

export interface KeyRotationOptions {
  /** Rows (and subject keys) read per batch, 1-10,000. Default 200. */
  batchSize?: number;
  /** Count what would change; write nothing. */
  dryRun?: boolean;
  /**
   * Message signing keys (`signing.keys`): an outbox row or inbox snapshot that carries a
   * `sage-signature` is signed again after its payload is re-encrypted (the signature covers the
   * ciphertext). Without them such rows are left as they are and counted in `needsSigningKeys`.
   */
  signingKeys?: KeyProvider;
  /** Stops between batches (the report says `aborted`). */
  signal?: AbortSignal;
}

/** Counts for one source. */
export interface RotationSourceReport {
  /** Rows the scan returned (holding an envelope under a retired master key, or looking like it). */
  scanned: number;
  /** Rows rewritten (dry run: that would be). */
  rewritten: number;
  /** Envelopes re-encrypted in them. */
  envelopes: number;
  /** Rows a concurrent writer changed first in the last pass (left for the next run). */
  conflicts: number;
  /** Rows that could not be decrypted (key not held, tampered): left as they are. */
  unreadable: number;
  /** Signed rows left as they are because no signing keys were given. */
  needsSigningKeys: number;
}

/** What `rotate()` did. */
export interface KeyRotationReport {
  activeKeyId: string;
  dryRun: boolean;
  aborted: boolean;
  subjectKeys: { scanned: number; rewrapped: number; conflicts: number; unreadable: number };
  sources: Record<ProtectedSource, RotationSourceReport>;
  /** True when everything found is now under the active key (nothing unreadable, conflicting or skipped). */
  complete: boolean;
}

/**
 * Key rotation (`sage keys rotate`): after a new master key was made active everywhere, moves what
 * is stored onto it, so the retired key can be removed.
 *
 * 1. Data-subject keys wrapped with another master key are rewrapped with the active one
 *    (SubjectKeys.rewrap; the subject's data key and everything encrypted with it stay).
 * 2. Every stored envelope under another master key (saga inputs, step results, outbox messages of
 *    every status, archived messages, inbox dead-letter snapshots) is re-encrypted with the active
 *    key at the same location (DataProtector.reseal); a signed message is signed again.
 *
 * In batches (keyset pagination by primary key, `batchSize` rows each), each row written with a
 * conditional update: a writer that changed the row meanwhile wins and the row is read again in the
 * next pass (at most 5 passes per source; what is left is reported). Resumable: a second run finds
 * only what is still under a retired key. Safe under load: nothing is deleted, no status changes,
 * so the relay neither loses nor repeats a message (a message claimed before its row was rewritten
 * goes out with the old envelope, which consumers still decrypt while they hold the old key).
 */
export class KeyRotation {
  private readonly batchSize: number;

  constructor(
    private readonly protector: DataProtector,
    private readonly store: ProtectedDataStore,
    private readonly options: KeyRotationOptions = {},
  ) {
    const size = options.batchSize ?? DEFAULT_ROTATION_BATCH_SIZE;
    if (!Number.isSafeInteger(size) || size < 1 || size > MAX_BATCH_SIZE)
      throw new InvalidOptionsError(
        'batchSize',
        `must be a whole number from 1 to ${MAX_BATCH_SIZE} (rows per batch), got ${String(size)}.`,
      );
    this.batchSize = size;
  }

  async rotate(): Promise<KeyRotationReport> {
    const keys = this.protector.settings.keys;
    const activeKeyId = keys.activeKeyId();
    const report: KeyRotationReport = {
      activeKeyId,
      dryRun: this.options.dryRun === true,
      aborted: false,
      subjectKeys: { scanned: 0, rewrapped: 0, conflicts: 0, unreadable: 0 },
      sources: Object.fromEntries(PROTECTED_SOURCES.map((s) => [s, emptySourceReport()])) as Record<
        ProtectedSource,
        RotationSourceReport
      >,
      complete: false,
    };
    await this.rewrapSubjectKeys(activeKeyId, report);
    for (const source of PROTECTED_SOURCES) {
      if (this.aborted(report)) break;
      for (let pass = 0; pass < MAX_PASSES; pass++) {
        const conflicts = await this.pass(source, activeKeyId, report.sources[source], report);
        report.sources[source].conflicts = conflicts;
        if (conflicts === 0 || report.dryRun || report.aborted) break;
      }
    }
    report.complete =
      !report.aborted &&
      !report.dryRun &&
      report.subjectKeys.conflicts === 0 &&
      report.subjectKeys.unreadable === 0 &&
      Object.values(report.sources).every(
        (s) => s.conflicts === 0 && s.unreadable === 0 && s.needsSigningKeys === 0,
      );
    if (
      !report.dryRun &&
      this.store.recordAudit &&
      (report.subjectKeys.rewrapped > 0 || rowsRewritten(report) > 0)
    )
      await this.store.recordAudit({
        action: 'keys.rotated',
        targetType: 'master-key',
        targetId: activeKeyId,
        detail: {
          subjectKeysRewrapped: report.subjectKeys.rewrapped,
          rowsRewritten: rowsRewritten(report),
          complete: report.complete,
        },
      });
    return report;
  }

  private async rewrapSubjectKeys(activeKeyId: string, report: KeyRotationReport): Promise<void> {
    const subjectKeys = this.protector.subjectKeys;
    if (!subjectKeys) return;
    const counts = report.subjectKeys;
    let after: string | null = null;
    for (;;) {
      if (this.aborted(report)) return;
      const batch = await subjectKeys.store.wrappedWithOther(activeKeyId, after, this.batchSize);
      if (!batch.length) return;
      for (const stored of batch) {
        counts.scanned++;
        if (report.dryRun) {
          if (this.protector.settings.keys.key(stored.masterKeyId)) counts.rewrapped++;
          else counts.unreadable++;
          continue;
        }
        try {
          if (await subjectKeys.rewrap(stored)) counts.rewrapped++;
          else counts.conflicts++;
        } catch (error) {
          if (!(error instanceof DataUnreadableError)) throw error;
          counts.unreadable++;
        }
      }
      after = batch[batch.length - 1]!.id;
    }
  }

  /** One pass over `source`; returns the rows a concurrent writer won. */
  private async pass(
    source: ProtectedSource,
    activeKeyId: string,
    counts: RotationSourceReport,
    report: KeyRotationReport,
  ): Promise<number> {
    let conflicts = 0;
    let after: readonly string[] | null = null;
    for (;;) {
      if (this.aborted(report)) return conflicts;
      const batch = await this.store.scan(
        source,
        { kind: 'master-other-than', activeKeyId },
        after,
        this.batchSize,
      );
      if (!batch.length) return conflicts;
      for (const row of batch) {
        counts.scanned++;
        const outcome = await this.rotateRow(row, report.dryRun);
        if (outcome === 'conflict') conflicts++;
        else if (outcome === 'unreadable') counts.unreadable++;
        else if (outcome === 'needs-signing-keys') counts.needsSigningKeys++;
        else if (outcome.envelopes > 0) {
          counts.rewritten++;
          counts.envelopes += outcome.envelopes;
        }
      }
      after = batch[batch.length - 1]!.key;
    }
  }

  private async rotateRow(
    row: ProtectedRow,
    dryRun: boolean,
  ): Promise<{ envelopes: number } | 'conflict' | 'unreadable' | 'needs-signing-keys'> {
    const target = rotationTarget(row);
    if (!target) return { envelopes: 0 };
    let resealed: { value: JsonValue; changed: number };
    try {
      resealed = this.protector.reseal(target.payload, target.location);
    } catch (error) {
      if (error instanceof DataUnreadableError) return 'unreadable';
      throw error;
    }
    if (resealed.changed === 0) return { envelopes: 0 };
    const signed = target.headers !== undefined && hasHeader(target.headers, SIGNATURE_HEADER);
    if (signed && !this.options.signingKeys) return 'needs-signing-keys';
    if (dryRun) return { envelopes: resealed.changed };

    let headers = target.headers;
    if (signed && target.message && headers) {
      headers = signMessage(
        { ...target.message, headers, payload: resealed.value },
        this.options.signingKeys!,
      ).headers;
    }
    const value = target.wrap(resealed.value, headers);
    const replaced = await this.store.replace(
      row,
      value,
      row.source === 'outbox' || row.source === 'outbox-archive' ? headers : undefined,
    );
    return replaced ? { envelopes: resealed.changed } : 'conflict';
  }

  private aborted(report: KeyRotationReport): boolean {
    if (this.options.signal?.aborted) report.aborted = true;
    return report.aborted;
  }
}

/** What of a row is re-encrypted, where it lives, and how the row's value is rebuilt. */
interface RotationTarget {
  payload: JsonValue;
  location: string;
  headers?: Record<string, string>;
  message?: { id: string; type: string; destination: string; key: string | null };
  wrap(payload: JsonValue, headers?: Record<string, string>): JsonValue;
}

function rotationTarget(row: ProtectedRow): RotationTarget | undefined {
  const [k1, k2] = row.key;
  switch (row.source) {
    case 'saga-input':
      return { payload: row.value, location: ProtectedLocation.sagaInput(k1!), wrap: (v) => v };
    case 'step-result':
      return {
        payload: row.value,
        location: ProtectedLocation.stepResult(k1!, k2!),
        wrap: (v) => v,
      };
    case 'outbox':
    case 'outbox-archive': {
      const m = row.message!;
      return {
        payload: row.value,
        location: ProtectedLocation.message(k1!, m.type),
        headers: m.headers,
        message: { id: k1!, type: m.type, destination: m.destination, key: m.key },
        wrap: (v) => v,
      };
    }
    case 'inbox-dead-letter': {
      const snapshot = inboxSnapshot(row.value);
      if (!snapshot) return undefined;
      return {
        payload: snapshot.payload,
        location: ProtectedLocation.message(snapshot.id, snapshot.type),
        headers: snapshot.headers,
        message: {
          id: snapshot.id,
          type: snapshot.type,
          destination: snapshot.destination,
          key: snapshot.key,
        },
        wrap: (payload, headers) => ({
          ...(row.value as Record<string, JsonValue>),
          payload,
          ...(headers ? { headers } : {}),
        }),
      };
    }
  }
}

/** The fields of an inbox dead letter's snapshot (deliveredMessageSnapshot) rotation and export use. */
export interface InboxSnapshotFields {
  id: string;
  type: string;
  destination: string;
  key: string | null;
  headers: Record<string, string>;
  payload: JsonValue;
}

/** An inbox snapshot's fields, or undefined when it is not one Sage wrote. */
export function inboxSnapshot(value: JsonValue): InboxSnapshotFields | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const { id, type, destination, key, headers, payload } = value;
  if (typeof id !== 'string' || typeof type !== 'string' || payload === undefined) return undefined;
  const textHeaders: Record<string, string> = {};
  if (typeof headers === 'object' && headers !== null && !Array.isArray(headers))
    for (const [name, v] of Object.entries(headers))
      if (typeof v === 'string') textHeaders[name] = v;
  return {
    id,
    type,
    destination: typeof destination === 'string' ? destination : '',
    key: typeof key === 'string' ? key : null,
    headers: textHeaders,
    payload,
  };
}

function hasHeader(headers: Record<string, string>, name: string): boolean {
  return Object.keys(headers).some((h) => h.toLowerCase() === name);
}

function emptySourceReport(): RotationSourceReport {
  return {
    scanned: 0,
    rewritten: 0,
    envelopes: 0,
    conflicts: 0,
    unreadable: 0,
    needsSigningKeys: 0,
  };
}

function rowsRewritten(report: KeyRotationReport): number {
  return Object.values(report.sources).reduce((n, s) => n + s.rewritten, 0);
}
