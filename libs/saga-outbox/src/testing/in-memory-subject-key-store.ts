import type { StoredSubjectKey, SubjectKeyStore } from '../core/ports/subject-key-store';

/**
 * A SubjectKeyStore in memory, for tests and the embedded demo: one key per subject, ids unique,
 * `insertIfAbsent` race-safe (JavaScript runs each call to its end before the next, so the first
 * writer wins and every other gets its key). Transactions (`tx`) are ignored: a key exists from the
 * moment it is inserted, whether or not the caller's transaction commits (as a key store outside
 * the caller's database would behave). Keys are copied in and out, so callers cannot change what is
 * stored.
 */
export class InMemorySubjectKeyStore implements SubjectKeyStore {
  private readonly byId = new Map<string, StoredSubjectKey>();
  private readonly idBySubject = new Map<string, string>();

  findBySubject(subjectId: string): Promise<StoredSubjectKey | undefined> {
    const id = this.idBySubject.get(subjectId);
    return Promise.resolve(id === undefined ? undefined : copy(this.byId.get(id)));
  }

  findById(id: string): Promise<StoredSubjectKey | undefined> {
    return Promise.resolve(copy(this.byId.get(id)));
  }

  insertIfAbsent(key: StoredSubjectKey): Promise<StoredSubjectKey> {
    const existing = this.idBySubject.get(key.subjectId);
    if (existing !== undefined) return Promise.resolve(copy(this.byId.get(existing))!);
    if (this.byId.has(key.id))
      return Promise.reject(
        new Error(`subject key id ${key.id} is already used by another subject`),
      );
    const stored = { ...key, createdAt: key.createdAt ?? new Date() };
    this.byId.set(stored.id, stored);
    this.idBySubject.set(stored.subjectId, stored.id);
    return Promise.resolve(copy(stored)!);
  }

  erase(subjectId: string): Promise<string[]> {
    const id = this.idBySubject.get(subjectId);
    if (id === undefined) return Promise.resolve([]);
    this.idBySubject.delete(subjectId);
    this.byId.delete(id);
    return Promise.resolve([id]);
  }

  wrappedWithOther(
    masterKeyId: string,
    afterId: string | null,
    limit: number,
  ): Promise<StoredSubjectKey[]> {
    const keys = [...this.byId.values()]
      .filter((k) => k.masterKeyId !== masterKeyId && (afterId === null || k.id > afterId))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .slice(0, Math.max(0, limit));
    return Promise.resolve(keys.map((k) => copy(k)!));
  }

  rewrap(
    id: string,
    fromMasterKeyId: string,
    to: { masterKeyId: string; wrapped: string },
  ): Promise<boolean> {
    const stored = this.byId.get(id);
    if (!stored || stored.masterKeyId !== fromMasterKeyId) return Promise.resolve(false);
    this.byId.set(id, { ...stored, masterKeyId: to.masterKeyId, wrapped: to.wrapped });
    return Promise.resolve(true);
  }

  /** How many keys are held (tests). */
  get size(): number {
    return this.byId.size;
  }
}

function copy(key: StoredSubjectKey | undefined): StoredSubjectKey | undefined {
  return key && { ...key, createdAt: key.createdAt && new Date(key.createdAt.getTime()) };
}
