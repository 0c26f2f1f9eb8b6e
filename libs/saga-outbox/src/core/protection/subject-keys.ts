import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import { SagaOutboxError } from '../errors';
import type { KeyProvider } from '../ports/key-provider';
import type { StoredSubjectKey, SubjectKeyStore } from '../ports/subject-key-store';
import { DataUnreadableError, SubjectKeyStoreUnavailableError } from './protection-errors';

/** How long an unwrapped subject key is kept in memory by default (erasure reaches other processes within it). */
export const DEFAULT_SUBJECT_KEY_CACHE_MS = 30_000;
const MAX_CACHED = 10_000;

/** A subject's usable key. */
export interface SubjectKey {
  id: string;
  key: Uint8Array;
}

/**
 * Data-subject keys over a SubjectKeyStore: creates a subject's key on first use (32 random bytes,
 * wrapped with the active master key), unwraps keys by id, and keeps unwrapped keys in memory for
 * `cacheMs` (0: never), so the hot path does not query the store for every value. An erasure
 * through this object forgets the keys here at once; other processes forget them within `cacheMs`.
 */
export class SubjectKeys<Tx = unknown> {
  private readonly byId = new Map<string, { key: SubjectKey; subjectId: string; until: number }>();
  private readonly bySubject = new Map<string, string>();

  constructor(
    readonly store: SubjectKeyStore<Tx>,
    private readonly masterKeys: KeyProvider,
    private readonly cacheMs = DEFAULT_SUBJECT_KEY_CACHE_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** The subject's key, made (and stored, in `tx` when given) if it has none. */
  async keyFor(subjectId: string, tx?: Tx): Promise<SubjectKey> {
    const cachedId = this.bySubject.get(subjectId);
    const cached = cachedId === undefined ? undefined : this.cached(cachedId);
    if (cached) return cached;
    const stored =
      (await this.call(() => this.store.findBySubject(subjectId, tx))) ??
      (await this.call(() => this.store.insertIfAbsent(this.newKey(subjectId), tx)));
    return this.remember(stored);
  }

  /**
   * The key `id` names. Throws DataUnreadableError `subject-erased` when the store has no such key,
   * `key-unavailable` when its master key is not held, SubjectKeyStoreUnavailableError when the
   * store cannot be reached.
   */
  async keyById(id: string, location: string, pointer: string, tx?: Tx): Promise<SubjectKey> {
    const cached = this.cached(id);
    if (cached) return cached;
    const stored = await this.call(() => this.store.findById(id, tx));
    if (!stored) throw new DataUnreadableError('subject-erased', location, pointer);
    return this.remember(stored, location, pointer);
  }

  /** Erases the subject's keys (crypto-shredding) and forgets them here; returns their ids. */
  async erase(subjectId: string): Promise<string[]> {
    const ids = await this.call(() => this.store.erase(subjectId));
    for (const id of ids) this.byId.delete(id);
    const cachedId = this.bySubject.get(subjectId);
    if (cachedId !== undefined) this.byId.delete(cachedId);
    this.bySubject.delete(subjectId);
    return ids;
  }

  /** Forgets every unwrapped key held in memory. */
  forget(): void {
    this.byId.clear();
    this.bySubject.clear();
  }

  /** Rewraps one stored key with the active master key (rotation); false when it changed meanwhile. */
  async rewrap(stored: StoredSubjectKey): Promise<boolean> {
    const key = this.unwrap(stored, `subject-key/${stored.id}`, '');
    const active = this.masterKeys.activeKeyId();
    return this.call(() =>
      this.store.rewrap(stored.id, stored.masterKeyId, {
        masterKeyId: active,
        wrapped: this.wrap(key, stored.id, stored.subjectId, active),
      }),
    );
  }

  private cached(id: string): SubjectKey | undefined {
    const entry = this.byId.get(id);
    if (!entry) return undefined;
    if (entry.until <= this.now()) {
      this.byId.delete(id);
      if (this.bySubject.get(entry.subjectId) === id) this.bySubject.delete(entry.subjectId);
      return undefined;
    }
    return entry.key;
  }

  private remember(stored: StoredSubjectKey, location?: string, pointer?: string): SubjectKey {
    const key = {
      id: stored.id,
      key: this.unwrap(stored, location ?? `subject-key/${stored.id}`, pointer ?? ''),
    };
    if (this.cacheMs > 0) {
      if (this.byId.size >= MAX_CACHED) this.forget();
      this.byId.set(stored.id, {
        key,
        subjectId: stored.subjectId,
        until: this.now() + this.cacheMs,
      });
      this.bySubject.set(stored.subjectId, stored.id);
    }
    return key;
  }

  private newKey(subjectId: string): StoredSubjectKey {
    const id = randomUUID();
    const masterKeyId = this.masterKeys.activeKeyId();
    return {
      id,
      subjectId,
      masterKeyId,
      wrapped: this.wrap(randomBytes(32), id, subjectId, masterKeyId),
    };
  }

  private wrap(key: Uint8Array, id: string, subjectId: string, masterKeyId: string): string {
    const master = this.masterKeys.key(masterKeyId);
    if (!master) throw new DataUnreadableError('key-unavailable', `subject-key/${id}`, '');
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', master, iv);
    cipher.setAAD(wrapAad(id, subjectId, masterKeyId));
    const body = Buffer.concat([cipher.update(key), cipher.final(), cipher.getAuthTag()]);
    return Buffer.concat([iv, body]).toString('base64');
  }

  private unwrap(stored: StoredSubjectKey, location: string, pointer: string): Uint8Array {
    const master = this.masterKeys.key(stored.masterKeyId);
    if (!master) throw new DataUnreadableError('key-unavailable', location, pointer);
    const bytes = Buffer.from(stored.wrapped, 'base64');
    if (bytes.length !== 12 + 32 + 16)
      throw new DataUnreadableError('malformed', location, pointer);
    try {
      const decipher = createDecipheriv('aes-256-gcm', master, bytes.subarray(0, 12), {
        authTagLength: 16,
      });
      decipher.setAAD(wrapAad(stored.id, stored.subjectId, stored.masterKeyId));
      decipher.setAuthTag(bytes.subarray(12 + 32));
      return Buffer.concat([decipher.update(bytes.subarray(12, 12 + 32)), decipher.final()]);
    } catch (error) {
      throw new DataUnreadableError('tampered', location, pointer, { cause: error });
    }
  }

  /** Store failures become SubjectKeyStoreUnavailableError; Sage's own errors pass. */
  private async call<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof SagaOutboxError) throw error;
      throw new SubjectKeyStoreUnavailableError(error);
    }
  }
}

function wrapAad(id: string, subjectId: string, masterKeyId: string): Buffer {
  return Buffer.from(
    ['sage:subject-key:v1', id, subjectId, masterKeyId].map((p) => `${p.length}:${p}`).join('|'),
    'utf8',
  );
}
