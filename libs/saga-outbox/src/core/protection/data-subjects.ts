import { createHmac, hkdfSync } from 'node:crypto';
import type { JsonValue } from '../json';
import type { KeyProvider } from '../ports/key-provider';
import {
  type EnvelopeFilter,
  type ProtectedDataStore,
  type ProtectedRow,
  type ProtectedSource,
  type StoredSagaSnapshot,
} from '../ports/protected-data-store';
import { TERMINAL_SAGA_STATUSES, type SagaStatus, type StepStatus } from '../ports/saga-store';
import { ProtectedLocation, type DataProtector } from './data-protector';
import { SubjectHasRunningSagasError, SubjectKeysNotConfiguredError } from './data-subject-errors';
import { inboxSnapshot } from './key-rotation';
import { DataUnreadableError, type UnreadableReason } from './protection-errors';

const DEFAULT_BATCH_SIZE = 200;

/** What `erase` would do (`preview`). */
export interface SubjectErasurePreview {
  /** The subject's key ids (empty: it has no key, nothing to shred). */
  keyIds: string[];
  /** Sagas holding the subject's data that are not finished. */
  unfinishedSagas: { id: string; name: string; status: SagaStatus }[];
  /** Outbox messages with the subject's data not yet sent. */
  unsentMessages: number;
}

/** What `erase` did. */
export interface SubjectErasure {
  /** Ids of the data-subject keys destroyed (empty when the subject had none: nothing to shred). */
  erasedKeyIds: string[];
  /** Sagas that held the subject's data and were not finished (erased anyway: `force`). */
  unfinishedSagas: { id: string; name: string; status: SagaStatus }[];
  /** Outbox messages with the subject's data not yet sent: their consumers will dead-letter them as `subject-erased`. */
  unsentMessages: number;
  /** The id the audit log records for the subject (see subjectAuditId); never the subject id. */
  auditSubjectId: string;
}

/** Everything still readable for a data subject (`export`), as JSON. */
export interface DataSubjectExport {
  format: 'sage.data-subject-export.v1';
  subjectId: string;
  exportedAt: string;
  /** Sagas whose input or a step result holds the subject's data: all their values, decrypted. */
  sagas: {
    id: string;
    name: string;
    status: SagaStatus;
    input: JsonValue | null;
    steps: { name: string; status: StepStatus; result: JsonValue | null }[];
  }[];
  /** Outbox messages (any status; `archived` for the archive) whose payload holds the subject's data. */
  outboxMessages: {
    id: string;
    type: string;
    destination: string;
    status: string;
    payload: JsonValue | null;
  }[];
  /** Inbox dead letters whose message holds the subject's data, as received, decrypted. */
  inboxDeadLetters: {
    consumer: string;
    messageId: string;
    type: string;
    payload: JsonValue | null;
  }[];
  /** Values found for the subject that could not be decrypted here (shown as null above). */
  unreadable: { location: string; reason: UnreadableReason }[];
}

/**
 * Data-subject requests over per-subject keys (crypto-shredding, see docs/data-protection-keys.md):
 *
 * - `erase(subjectId)` destroys the subject's key: every value encrypted with it, in every table
 *   and on every broker, becomes unreadable at once (processes holding the key in memory forget it
 *   within `subjectKeyCacheMs`). Refused (SubjectHasRunningSagasError) while sagas holding the
 *   subject's data are unfinished, unless `force`.
 * - `export(subjectId)` returns everything still readable for the subject, found by its key id in
 *   the stored values.
 *
 * Framework-free: the stored rows come from a ProtectedDataStore (PostgresProtectedDataStore).
 */
export class DataSubjects {
  private readonly batchSize: number;

  constructor(
    private readonly protector: DataProtector,
    private readonly store: ProtectedDataStore,
    options: { batchSize?: number } = {},
  ) {
    this.batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  }

  /**
   * What `erase` would do, changing nothing: whether the subject has a key, its unfinished sagas
   * (which make `erase` refuse without `force`) and its unsent outbox messages.
   */
  async preview(subjectId: string): Promise<SubjectErasurePreview> {
    const subjectKeys = this.requireSubjectKeys();
    const stored = await subjectKeys.store.findBySubject(subjectId);
    if (!stored) return { keyIds: [], unfinishedSagas: [], unsentMessages: 0 };
    const filter: EnvelopeFilter = { kind: 'subject-keys', keyIds: [stored.id] };
    const sagaIds = new Set<string>();
    for (const source of ['saga-input', 'step-result'] as const)
      await this.each(source, filter, (row) => void sagaIds.add(row.key[0]!));
    const unfinishedSagas = (await this.loadSagas([...sagaIds]))
      .filter((s) => !TERMINAL_SAGA_STATUSES.includes(s.status))
      .map((s) => ({ id: s.id, name: s.name, status: s.status }));
    let unsentMessages = 0;
    await this.each('outbox', filter, (row) => {
      const status = row.message?.status;
      if (status === 'pending' || status === 'claimed') unsentMessages++;
    });
    return { keyIds: [stored.id], unfinishedSagas, unsentMessages };
  }

  async erase(subjectId: string, options: { force?: boolean } = {}): Promise<SubjectErasure> {
    const subjectKeys = this.requireSubjectKeys();
    const auditSubjectId = subjectAuditId(this.protector.settings.keys, subjectId);
    const { unfinishedSagas, unsentMessages } = await this.preview(subjectId);
    if (unfinishedSagas.length && options.force !== true)
      throw new SubjectHasRunningSagasError(unfinishedSagas);
    const erasedKeyIds = await subjectKeys.erase(subjectId);
    await this.store.recordAudit?.({
      action: 'subject.erased',
      targetType: 'data-subject',
      targetId: auditSubjectId,
      detail: {
        subjectIdHash: 'hmac-sha256',
        hashKeyId: this.protector.settings.keys.activeKeyId(),
        keysDestroyed: erasedKeyIds.length,
        forced: options.force === true,
        unfinishedSagas: unfinishedSagas.map((s) => s.id),
        unsentMessages,
      },
    });
    return { erasedKeyIds, unfinishedSagas, unsentMessages, auditSubjectId };
  }

  async export(subjectId: string): Promise<DataSubjectExport> {
    const subjectKeys = this.requireSubjectKeys();
    const out: DataSubjectExport = {
      format: 'sage.data-subject-export.v1',
      subjectId,
      exportedAt: new Date().toISOString(),
      sagas: [],
      outboxMessages: [],
      inboxDeadLetters: [],
      unreadable: [],
    };
    const stored = await subjectKeys.store.findBySubject(subjectId);
    if (!stored) return out;
    const filter: EnvelopeFilter = { kind: 'subject-keys', keyIds: [stored.id] };
    const open = async (value: JsonValue, location: string): Promise<JsonValue | null> => {
      try {
        return await this.protector.open(value, location);
      } catch (error) {
        if (!(error instanceof DataUnreadableError)) throw error;
        out.unreadable.push({ location, reason: error.reason });
        return null;
      }
    };

    const sagaIds = new Set<string>();
    for (const source of ['saga-input', 'step-result'] as const)
      await this.each(source, filter, (row) => void sagaIds.add(row.key[0]!));
    for (const saga of await this.loadSagas([...sagaIds])) {
      const steps: DataSubjectExport['sagas'][number]['steps'] = [];
      for (const step of saga.steps)
        steps.push({
          name: step.name,
          status: step.status,
          result:
            step.result === null
              ? null
              : await open(step.result, ProtectedLocation.stepResult(saga.id, step.name)),
        });
      out.sagas.push({
        id: saga.id,
        name: saga.name,
        status: saga.status,
        input: await open(saga.input, ProtectedLocation.sagaInput(saga.id)),
        steps,
      });
    }

    const messages: ProtectedRow[] = [];
    for (const source of ['outbox', 'outbox-archive'] as const)
      await this.each(source, filter, (row) => void messages.push(row));
    for (const row of messages) {
      const m = row.message!;
      out.outboxMessages.push({
        id: row.key[0]!,
        type: m.type,
        destination: m.destination,
        status: m.status,
        payload: await open(row.value, ProtectedLocation.message(row.key[0]!, m.type)),
      });
    }

    const deadLetters: ProtectedRow[] = [];
    await this.each('inbox-dead-letter', filter, (row) => void deadLetters.push(row));
    for (const row of deadLetters) {
      const snapshot = inboxSnapshot(row.value);
      if (!snapshot) continue;
      out.inboxDeadLetters.push({
        consumer: row.key[0]!,
        messageId: row.key[1]!,
        type: snapshot.type,
        payload: await open(
          snapshot.payload,
          ProtectedLocation.message(snapshot.id, snapshot.type),
        ),
      });
    }
    return out;
  }

  private requireSubjectKeys(): NonNullable<DataProtector['subjectKeys']> {
    const subjectKeys = this.protector.subjectKeys;
    if (!subjectKeys) throw new SubjectKeysNotConfiguredError();
    return subjectKeys;
  }

  /** Every row of `source` matching `filter`, batch by batch (keyset by primary key). */
  private async each(
    source: ProtectedSource,
    filter: EnvelopeFilter,
    visit: (row: ProtectedRow) => void,
  ): Promise<void> {
    let after: readonly string[] | null = null;
    for (;;) {
      const batch = await this.store.scan(source, filter, after, this.batchSize);
      for (const row of batch) visit(row);
      if (batch.length < this.batchSize) return;
      after = batch[batch.length - 1]!.key;
    }
  }

  private async loadSagas(ids: string[]): Promise<StoredSagaSnapshot[]> {
    const out: StoredSagaSnapshot[] = [];
    for (let i = 0; i < ids.length; i += this.batchSize)
      out.push(...(await this.store.sagas(ids.slice(i, i + this.batchSize))));
    return out;
  }
}

/**
 * The id the audit log records for an erased data subject: HMAC-SHA256 of the subject id under a
 * key derived (HKDF) from the active master key, hex. Not reversible by guessing subject ids without
 * the key; an operator holding the keys can check whether a given subject was erased by computing it
 * with the master key the entry names (`hashKeyId`).
 */
export function subjectAuditId(
  keys: KeyProvider,
  subjectId: string,
  keyId = keys.activeKeyId(),
): string {
  const master = keys.key(keyId);
  if (!master) throw new DataUnreadableError('key-unavailable', 'audit/subject-id', '');
  const derived = Buffer.from(
    hkdfSync('sha256', master, Buffer.alloc(0), 'sage:audit:subject-id:v1', 32),
  );
  return createHmac('sha256', derived).update(subjectId, 'utf8').digest('hex');
}
