import type { DataSource } from 'typeorm';
import { InvalidOptionsError } from '../../core/errors';
import type { SagaRetentionStore } from '../../core/ports/saga-retention-store';
import { queryOnce } from './run-statement';
import { deleteTerminalSagaBatch, vacuumSagaTables } from './saga-retention.sql';
import { sagaSchema, type SagaSchema } from './schema-name';

export interface PostgresSagaRetentionStoreOptions {
  /** Schema holding the saga tables (default `sage`); the one the migrations were created with. */
  schema?: string;
}

/**
 * Saga retention on PostgreSQL (SQL: saga-retention.sql.ts): each batch is one statement in its own
 * transaction, on a pooled connection, under the saga maintenance advisory lock.
 */
export class PostgresSagaRetentionStore implements SagaRetentionStore {
  private readonly schema: SagaSchema;

  constructor(
    private readonly dataSource: DataSource,
    options: PostgresSagaRetentionStoreOptions = {},
  ) {
    if (dataSource.options.type !== 'postgres')
      throw new InvalidOptionsError(
        'dataSource',
        `PostgresSagaRetentionStore needs a TypeORM DataSource of type "postgres", got "${dataSource.options.type}".`,
      );
    this.schema = sagaSchema(options.schema);
  }

  async deleteTerminalSagaBatch(olderThanMs: number, limit: number): Promise<number | null> {
    const [row] = await queryOnce(
      this.dataSource,
      deleteTerminalSagaBatch(this.schema, { olderThanMs, limit }),
    );
    return row?.leader ? row.deleted : null;
  }

  async vacuum(): Promise<void> {
    await queryOnce(this.dataSource, vacuumSagaTables(this.schema));
  }
}
