/**
 * A data subject's key as stored: the 32-byte data key itself never is, only `wrapped` (encrypted
 * with the master key `masterKeyId` of `dataProtection.keys`, AES-256-GCM, bound to `id` and
 * `subjectId`). Erasing the subject deletes the row, which makes every value encrypted with the
 * key unreadable wherever it was copied: crypto-shredding.
 */
export interface StoredSubjectKey {
  /** UUID: what envelopes name (`s:<id>`), so stored and published values never carry the subject id. */
  id: string;
  subjectId: string;
  masterKeyId: string;
  /** base64 of nonce (12 bytes) + ciphertext (32 bytes) + tag (16 bytes). */
  wrapped: string;
  createdAt?: Date;
}

/**
 * Where data-subject keys live. Every service that reads a subject's data must use the same store
 * (the same table, or a KMS / Vault behind an implementation of your own), so one erasure shreds
 * every copy. Implementations: `PostgresSubjectKeyStore` (the package's `subject_key` table) and
 * `InMemorySubjectKeyStore` (testing); `subjectKeyStoreConformance` (testing) checks one.
 *
 * `tx` is the caller's transaction handle, when there is one (a TypeORM EntityManager for the
 * PostgreSQL store): a store in the same database as the caller's data runs in it, so a key made for
 * a write commits with it, and embedded PGlite (one session) never waits on a second connection. A
 * store elsewhere ignores it.
 */
export interface SubjectKeyStore<Tx = unknown> {
  /** The subject's key, or undefined when it has none (never had one, or was erased). */
  findBySubject(subjectId: string, tx?: Tx): Promise<StoredSubjectKey | undefined>;
  /** A key by id, or undefined when it does not exist (erased, or another store's). */
  findById(id: string, tx?: Tx): Promise<StoredSubjectKey | undefined>;
  /**
   * Stores `key` unless the subject already has one, and returns the subject's key: `key`, or the
   * one a concurrent writer stored first (one key per subject, whoever wins).
   */
  insertIfAbsent(key: StoredSubjectKey, tx?: Tx): Promise<StoredSubjectKey>;
  /** Deletes the subject's keys; returns their ids (empty when there were none). */
  erase(subjectId: string): Promise<string[]>;
  /**
   * Keys wrapped with another master key than `masterKeyId`, ordered by id after `afterId`, at
   * most `limit`: what rotation rewraps.
   */
  wrappedWithOther(
    masterKeyId: string,
    afterId: string | null,
    limit: number,
  ): Promise<StoredSubjectKey[]>;
  /**
   * Replaces a key's wrapping, only if it is still wrapped with `fromMasterKeyId` (a concurrent
   * rotation or erasure wins). Returns whether it changed.
   */
  rewrap(
    id: string,
    fromMasterKeyId: string,
    to: { masterKeyId: string; wrapped: string },
  ): Promise<boolean>;
}
