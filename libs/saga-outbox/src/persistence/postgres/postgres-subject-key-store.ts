import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { InvalidOptionsError } from '../../core/errors';
import type { StoredSubjectKey, SubjectKeyStore } from '../../core/ports/subject-key-store';
import { runStatement } from './run-statement';
import type { Statement } from './saga-queries.sql';
import { sagaSchema, type SagaSchema } from './schema-name';
import * as q from './subject-key-queries.sql';

export interface PostgresSubjectKeyStoreOptions {
  /** Schema holding `subject_key` (default `sage`); the one the migrations were created with. */
  schema?: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Data-subject keys in the `subject_key` table (migration 1764662400000; SQL in
 * subject-key-queries.sql.ts). Every service sharing this table shares erasures: deleting a row
 * shreds the subject's data wherever it was copied.
 *
 * With `tx` (an EntityManager from `dataSource.transaction(...)`), statements run on its connection,
 * so a key made for a write commits or rolls back with it; without, each statement runs on its own
 * pooled connection.
 */
export class PostgresSubjectKeyStore implements SubjectKeyStore<EntityManager> {
  private readonly schema: SagaSchema;

  constructor(
    private readonly dataSource: DataSource,
    options: PostgresSubjectKeyStoreOptions = {},
  ) {
    if (dataSource.options.type !== 'postgres') {
      throw new InvalidOptionsError(
        'dataSource',
        `PostgresSubjectKeyStore needs a TypeORM DataSource of type "postgres", got "${dataSource.options.type}".`,
      );
    }
    this.schema = sagaSchema(options.schema);
  }

  async findBySubject(
    subjectId: string,
    tx?: EntityManager,
  ): Promise<StoredSubjectKey | undefined> {
    const [row] = await this.run(q.selectSubjectKeyBySubject(this.schema, { subjectId }), tx);
    return row ? q.toStoredSubjectKey(row) : undefined;
  }

  async findById(id: string, tx?: EntityManager): Promise<StoredSubjectKey | undefined> {
    // A malformed id names no key; asking PostgreSQL would only raise 22P02 (and abort `tx`).
    if (!UUID.test(id)) return undefined;
    const [row] = await this.run(q.selectSubjectKeyById(this.schema, { id }), tx);
    return row ? q.toStoredSubjectKey(row) : undefined;
  }

  async insertIfAbsent(key: StoredSubjectKey, tx?: EntityManager): Promise<StoredSubjectKey> {
    // Insert, or read the key a concurrent writer stored first. A read that finds nothing means
    // that key was erased between the two statements: insert again (bounded, then the row must exist).
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const [inserted] = await this.run(q.insertSubjectKeyIfAbsent(this.schema, key), tx);
      if (inserted) return q.toStoredSubjectKey(inserted);
      const existing = await this.findBySubject(key.subjectId, tx);
      if (existing) return existing;
    }
    throw new Error(
      'subject_key: insert conflicted on subject_id but no row for the subject is visible (is the transaction REPEATABLE READ or SERIALIZABLE? subject keys need READ COMMITTED)',
    );
  }

  async erase(subjectId: string): Promise<string[]> {
    const rows = await this.run(q.deleteSubjectKeys(this.schema, { subjectId }));
    return rows.map((row) => row.id);
  }

  async wrappedWithOther(
    masterKeyId: string,
    afterId: string | null,
    limit: number,
  ): Promise<StoredSubjectKey[]> {
    const rows = await this.run(
      q.selectSubjectKeysWrappedWithOther(this.schema, { masterKeyId, afterId, limit }),
    );
    return rows.map(q.toStoredSubjectKey);
  }

  async rewrap(
    id: string,
    fromMasterKeyId: string,
    to: { masterKeyId: string; wrapped: string },
  ): Promise<boolean> {
    if (!UUID.test(id)) return false;
    const rows = await this.run(
      q.rewrapSubjectKey(this.schema, {
        id,
        fromMasterKeyId,
        toMasterKeyId: to.masterKeyId,
        wrapped: to.wrapped,
      }),
    );
    return rows.length > 0;
  }

  /**
   * On the caller's transaction when given and it is on this store's DataSource (its query
   * runner), else on a pooled connection: a transaction of another database (a service whose key
   * store is shared, elsewhere) must never receive the key store's statements.
   */
  private async run<Row>(statement: Statement<Row>, tx?: EntityManager): Promise<Row[]> {
    const joined: QueryRunner | undefined =
      tx?.connection === this.dataSource ? tx.queryRunner : undefined;
    if (joined) return runStatement(joined, statement);
    const runner = this.dataSource.createQueryRunner();
    try {
      return await runStatement(runner, statement);
    } finally {
      await runner.release();
    }
  }
}
