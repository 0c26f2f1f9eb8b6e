import type { JsonValue } from '../json';
import type { DataProtectionSettings, ProtectionRule } from './data-protection-options';
import { findSealed, replaceAt, sealAtPaths, valueAt } from './field-paths';
import { DataSubjectMissingError, DataUnreadableError } from './protection-errors';
import {
  masterKeyRef,
  openValue,
  parseKeyRef,
  sealValue,
  subjectKeyRef,
  type SealedValue,
} from './sealed-value';
import { SubjectKeys } from './subject-keys';

/** Header a producer sets on a message with encrypted fields (signed with the other `sage-*` headers). */
export const ENCRYPTED_HEADER = 'sage-encrypted';

/** Where values live: what their ciphertexts are bound to (see sealed-value.ts). */
export const ProtectedLocation = {
  sagaInput: (sagaId: string): string => `saga/${sagaId}/input`,
  stepResult: (sagaId: string, step: string): string => `saga/${sagaId}/step/${step}/result`,
  message: (id: string, type: string): string => `message/${id}/${type}`,
} as const;

/** The parts of a message protection reads and writes. */
export interface ProtectableMessage {
  id: string;
  type: string;
  payload: JsonValue;
  headers: Readonly<Record<string, string>>;
}

/** The key a write uses: a master key, or a data subject's. */
interface WriteKey {
  ref: string;
  key: Uint8Array;
}

/**
 * Envelope encryption of declared fields (DataProtectionOptions): seals what a rule selects when it
 * is written, opens every envelope when it is read. Framework-free; `Tx` is the store's
 * transaction handle, passed to the subject key store so keys made for a write commit with it.
 */
export class DataProtector<Tx = unknown> {
  readonly subjectKeys: SubjectKeys<Tx> | undefined;

  constructor(readonly settings: DataProtectionSettings) {
    this.subjectKeys = settings.subjectKeys
      ? new SubjectKeys<Tx>(settings.subjectKeys, settings.keys, settings.subjectKeyCacheMs)
      : undefined;
  }

  /** Whether saga `name` has anything to encrypt. */
  protectsSaga(name: string): boolean {
    return this.settings.sagas.has(name);
  }

  /** The saga input as stored: declared fields sealed. Throws DataSubjectMissingError before any write. */
  async sealSagaInput(name: string, sagaId: string, input: JsonValue, tx?: Tx): Promise<JsonValue> {
    const rule = this.settings.sagas.get(name)?.input;
    if (!rule) return input;
    const key = await this.writeKey(rule, input, `saga "${name}"`, tx);
    return this.seal(input, rule, key, ProtectedLocation.sagaInput(sagaId));
  }

  /**
   * A step's result as stored. `input` is the saga's input in clear (the subject is read there);
   * pass a function when getting it costs a read, it is called only when the rule needs a subject.
   */
  async sealStepResult(
    name: string,
    sagaId: string,
    step: string,
    result: JsonValue,
    input: JsonValue | (() => Promise<JsonValue>),
    tx?: Tx,
  ): Promise<JsonValue> {
    const rule = this.settings.sagas.get(name)?.results.get(step);
    if (!rule || result === null) return result;
    const subjectSource = rule.subject
      ? typeof input === 'function'
        ? await input()
        : input
      : result;
    const key = await this.writeKey(rule, subjectSource, `saga "${name}"`, tx);
    return this.seal(result, rule, key, ProtectedLocation.stepResult(sagaId, step));
  }

  /** A message as written to the outbox: declared payload fields sealed, `sage-encrypted` set. */
  async sealMessage<M extends ProtectableMessage>(message: M, tx?: Tx): Promise<M> {
    const rule = this.settings.messages.get(message.type);
    if (!rule) return message;
    const key = await this.writeKey(rule, message.payload, `message type "${message.type}"`, tx);
    const location = ProtectedLocation.message(message.id, message.type);
    const sealed = sealAtPaths(message.payload, rule.fields, (value, pointer) =>
      sealValue(value, key.key, key.ref, location, pointer),
    );
    if (!sealed.sealed) return message;
    return {
      ...message,
      payload: sealed.value,
      headers: { ...message.headers, [ENCRYPTED_HEADER]: 'v1' },
    };
  }

  /**
   * `value` with every envelope in it decrypted, as found at `location`. Throws DataUnreadableError
   * (a key not held, an erased subject, a ciphertext that does not authenticate there) or
   * SubjectKeyStoreUnavailableError.
   */
  async open(value: JsonValue, location: string, tx?: Tx): Promise<JsonValue> {
    const found = findSealed(value);
    if (!found.length) return value;
    const replacements: { path: (string | number)[]; value: JsonValue }[] = [];
    for (const f of found) {
      const key = await this.readKey(f.sealed, location, f.pointer, tx);
      replacements.push({ path: f.path, value: openValue(f.sealed, key, location, f.pointer) });
    }
    return replaceAt(value, replacements);
  }

  /** A delivered message with its payload decrypted (and `sage-encrypted` left as it came). */
  async openMessage<M extends ProtectableMessage>(message: M): Promise<M> {
    const payload = await this.open(
      message.payload,
      ProtectedLocation.message(message.id, message.type),
    );
    return payload === message.payload ? message : { ...message, payload };
  }

  /**
   * Rotation: `value` with every envelope under a master key other than the active one re-encrypted
   * with the active key (subject-key envelopes stay: their keys are rewrapped instead). `changed`
   * counts the envelopes rewritten.
   */
  reseal(value: JsonValue, location: string): { value: JsonValue; changed: number } {
    const active = this.settings.keys.activeKeyId();
    const activeRef = masterKeyRef(active);
    const activeKey = this.settings.keys.key(active)!;
    const replacements: { path: (string | number)[]; value: JsonValue }[] = [];
    for (const f of findSealed(value)) {
      const ref = parseKeyRef(f.sealed.key);
      if (ref?.kind !== 'master' || f.sealed.key === activeRef) continue;
      const old = this.settings.keys.key(ref.id);
      if (!old) throw new DataUnreadableError('key-unavailable', location, f.pointer);
      const plain = openValue(f.sealed, old, location, f.pointer);
      replacements.push({
        path: f.path,
        value: sealValue(plain, activeKey, activeRef, location, f.pointer) as unknown as JsonValue,
      });
    }
    return { value: replaceAt(value, replacements), changed: replacements.length };
  }

  /** The data-subject key ids `value`'s envelopes name (what `export` looks for). */
  static subjectKeyIds(value: JsonValue): string[] {
    const ids = new Set<string>();
    for (const f of findSealed(value)) {
      const ref = parseKeyRef(f.sealed.key);
      if (ref?.kind === 'subject') ids.add(ref.id);
    }
    return [...ids];
  }

  private seal(value: JsonValue, rule: ProtectionRule, key: WriteKey, location: string): JsonValue {
    return sealAtPaths(value, rule.fields, (v, pointer) =>
      sealValue(v, key.key, key.ref, location, pointer),
    ).value;
  }

  private async writeKey(
    rule: ProtectionRule,
    source: JsonValue,
    what: string,
    tx?: Tx,
  ): Promise<WriteKey> {
    if (!rule.subject) {
      const id = this.settings.keys.activeKeyId();
      return { ref: masterKeyRef(id), key: this.settings.keys.key(id)! };
    }
    const raw = 'fn' in rule.subject ? rule.subject.fn(source) : valueAt(source, rule.subject.path);
    const subjectId = typeof raw === 'number' && Number.isFinite(raw) ? String(raw) : raw;
    if (typeof subjectId !== 'string' || subjectId === '' || subjectId.length > 512)
      throw new DataSubjectMissingError(what, rule.subject.text);
    if (!this.subjectKeys)
      throw new DataUnreadableError('no-keys', 'dataProtection.subjectKeys', '');
    const key = await this.subjectKeys.keyFor(subjectId, tx);
    return { ref: subjectKeyRef(key.id), key: key.key };
  }

  private async readKey(
    sealed: SealedValue,
    location: string,
    pointer: string,
    tx?: Tx,
  ): Promise<Uint8Array> {
    const ref = parseKeyRef(sealed.key);
    if (!ref) throw new DataUnreadableError('malformed', location, pointer);
    if (ref.kind === 'master') {
      const key = this.settings.keys.key(ref.id);
      if (!key) throw new DataUnreadableError('key-unavailable', location, pointer);
      return key;
    }
    if (!this.subjectKeys) throw new DataUnreadableError('no-keys', location, pointer);
    return (await this.subjectKeys.keyById(ref.id, location, pointer, tx)).key;
  }
}

/**
 * For a consumer without `dataProtection`: throws DataUnreadableError `no-keys` when the message
 * says it carries encrypted fields, so it is dead-lettered rather than handled as if in clear.
 */
export function refuseEncryptedWithoutKeys(message: ProtectableMessage): void {
  for (const name of Object.keys(message.headers))
    if (name.toLowerCase() === ENCRYPTED_HEADER)
      throw new DataUnreadableError(
        'no-keys',
        ProtectedLocation.message(message.id, message.type),
        '',
      );
}
