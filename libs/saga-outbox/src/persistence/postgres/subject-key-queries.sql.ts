/**
 * Data-subject keys (crypto-shredding): one row per subject in `subject_key`, holding the subject's
 * data key wrapped with a master key (core/protection/subject-keys.ts). Used by
 * PostgresSubjectKeyStore; every statement is parameterised, table names come from a validated
 * SagaSchema (schema-name.ts).
 */
import type { StoredSubjectKey } from '../../core/ports/subject-key-store';
import type { Statement } from './saga-queries.sql';
import type { SagaSchema } from './schema-name';

/** `"sage"."subject_key"`, from a validated schema (see schema-name.ts). */
export function subjectKeyTable(schema: SagaSchema): string {
  return `${schema.quoted}."subject_key"`;
}

/** A `subject_key` row as selected. */
export interface SubjectKeyRow {
  id: string;
  subject_id: string;
  master_key_id: string;
  wrapped: string;
  created_at: Date;
}

const COLUMNS = 'id, subject_id, master_key_id, wrapped, created_at';

/** The row as the port's StoredSubjectKey. */
export function toStoredSubjectKey(row: SubjectKeyRow): StoredSubjectKey {
  return {
    id: row.id,
    subjectId: row.subject_id,
    masterKeyId: row.master_key_id,
    wrapped: row.wrapped,
    createdAt: row.created_at,
  };
}

/** The subject's key, through the unique index on `subject_id`. */
export function selectSubjectKeyBySubject(
  schema: SagaSchema,
  p: { subjectId: string },
): Statement<SubjectKeyRow> {
  return {
    text: `SELECT ${COLUMNS} FROM ${subjectKeyTable(schema)} WHERE subject_id = $1`,
    values: [p.subjectId],
  };
}

/** A key by id (the primary key): what decrypting an `s:<id>` envelope looks up. */
export function selectSubjectKeyById(
  schema: SagaSchema,
  p: { id: string },
): Statement<SubjectKeyRow> {
  return {
    text: `SELECT ${COLUMNS} FROM ${subjectKeyTable(schema)} WHERE id = $1::uuid`,
    values: [p.id],
  };
}

/**
 * Stores a subject's first key. ON CONFLICT (subject_id) DO NOTHING: when a concurrent writer
 * inserts the same subject first, this waits for its transaction and then returns no row (instead of
 * failing the caller's transaction with a unique violation); the caller then reads the winner's key
 * with selectSubjectKeyBySubject, in a new statement whose snapshot sees that commit.
 */
export function insertSubjectKeyIfAbsent(
  schema: SagaSchema,
  key: StoredSubjectKey,
): Statement<SubjectKeyRow> {
  return {
    text: `INSERT INTO ${subjectKeyTable(schema)} (id, subject_id, master_key_id, wrapped)
      VALUES ($1::uuid, $2, $3, $4)
      ON CONFLICT (subject_id) DO NOTHING
      RETURNING ${COLUMNS}`,
    values: [key.id, key.subjectId, key.masterKeyId, key.wrapped],
  };
}

/**
 * Erasure: deletes the subject's key (crypto-shredding) and returns its id. Once this commits, every
 * value encrypted with it is unreadable wherever it was copied (caches aside, see SubjectKeys).
 */
export function deleteSubjectKeys(
  schema: SagaSchema,
  p: { subjectId: string },
): Statement<{ id: string }> {
  return {
    text: `DELETE FROM ${subjectKeyTable(schema)} WHERE subject_id = $1 RETURNING id`,
    values: [p.subjectId],
  };
}

/**
 * Rotation: the next keys wrapped with another master key than the active one, in primary-key order
 * after `afterId` (keyset pagination: each batch is an index range scan of the primary key starting
 * at `afterId`, so a whole pass reads the table once, however many batches it takes; no index on
 * `master_key_id` would help a `<>` filter). The nil uuid sorts first (uuid order is byte order).
 */
export function selectSubjectKeysWrappedWithOther(
  schema: SagaSchema,
  p: { masterKeyId: string; afterId: string | null; limit: number },
): Statement<SubjectKeyRow> {
  return {
    text: `SELECT ${COLUMNS} FROM ${subjectKeyTable(schema)}
      WHERE master_key_id <> $1
        AND id > coalesce($2::uuid, '00000000-0000-0000-0000-000000000000'::uuid)
      ORDER BY id
      LIMIT $3`,
    values: [p.masterKeyId, p.afterId, p.limit],
  };
}

/**
 * Rotation: replaces a key's wrapping only if it is still wrapped with `fromMasterKeyId` (a
 * concurrent rotation already did it, or an erasure deleted the row: no row updated, nothing lost).
 */
export function rewrapSubjectKey(
  schema: SagaSchema,
  p: { id: string; fromMasterKeyId: string; toMasterKeyId: string; wrapped: string },
): Statement<{ id: string }> {
  return {
    text: `UPDATE ${subjectKeyTable(schema)}
      SET master_key_id = $3, wrapped = $4
      WHERE id = $1::uuid AND master_key_id = $2
      RETURNING id`,
    values: [p.id, p.fromMasterKeyId, p.toMasterKeyId, p.wrapped],
  };
}
