import type { DataSource } from 'typeorm';
import { InvalidOptionsError } from '../../core/errors';
import type { JsonValue } from '../../core/json';
import type {
  EnvelopeFilter,
  ProtectedDataStore,
  ProtectedRow,
  ProtectedSource,
  ProtectionAuditEntry,
  StoredSagaSnapshot,
} from '../../core/ports/protected-data-store';
import type { SagaStatus, StepStatus } from '../../core/ports/saga-store';
import * as q from './key-rotation-queries.sql';
import { recordAudit } from './postgres-audit-log';
import { queryOnce } from './run-statement';
import { sagaSchema, type SagaSchema } from './schema-name';

export interface PostgresProtectedDataStoreOptions {
  /** Schema holding Sage's tables (default `sage`). */
  schema?: string;
  /** Who the audit entries name (an operator); default the transaction's `sage.actor` or the role. */
  actor?: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Sage's tables as a ProtectedDataStore (SQL and its cost: key-rotation-queries.sql.ts): each scan
 * and each conditional update is one statement on a pooled connection, so rotation and export hold
 * no transaction open across batches. Audit entries go to `audit_log` (recordAudit).
 */
export class PostgresProtectedDataStore implements ProtectedDataStore {
  private readonly schema: SagaSchema;

  constructor(
    private readonly dataSource: DataSource,
    private readonly options: PostgresProtectedDataStoreOptions = {},
  ) {
    if (dataSource.options.type !== 'postgres')
      throw new InvalidOptionsError(
        'dataSource',
        `PostgresProtectedDataStore needs a TypeORM DataSource of type "postgres", got "${dataSource.options.type}".`,
      );
    this.schema = sagaSchema(options.schema);
  }

  async scan(
    source: ProtectedSource,
    filter: EnvelopeFilter,
    after: readonly string[] | null,
    limit: number,
  ): Promise<ProtectedRow[]> {
    let sqlFilter: Parameters<typeof q.scanProtectedRows>[2]['filter'];
    if (filter.kind === 'master-other-than') {
      sqlFilter = { kind: 'master', activeKeyId: filter.activeKeyId };
    } else {
      const ids = filter.keyIds.filter((id) => UUID.test(id));
      if (!ids.length) return [];
      sqlFilter = { kind: 'subject', patterns: q.subjectKeyPatterns(ids) };
    }
    const rows = await queryOnce(
      this.dataSource,
      q.scanProtectedRows(this.schema, source, { filter: sqlFilter, after, limit }),
    );
    return rows.map((row) => ({
      source,
      key: row.k2 === null ? [row.k1] : [row.k1, row.k2],
      value: JSON.parse(row.value_text) as JsonValue,
      version: row.value_text,
      ...(row.type !== null
        ? {
            message: {
              type: row.type,
              destination: row.destination ?? '',
              key: row.key,
              headers: row.headers ?? {},
              status: row.status ?? '',
            },
          }
        : {}),
    }));
  }

  async replace(
    row: ProtectedRow,
    value: JsonValue,
    headers?: Record<string, string>,
  ): Promise<boolean> {
    const updated = await queryOnce(
      this.dataSource,
      q.replaceProtectedValue(this.schema, row.source, {
        key: row.key,
        value: JSON.stringify(value),
        expected: row.version,
        ...(headers && row.message
          ? {
              headers: {
                value: JSON.stringify(headers),
                expected: JSON.stringify(row.message.headers),
              },
            }
          : {}),
      }),
    );
    return updated.length > 0;
  }

  async sagas(ids: readonly string[]): Promise<StoredSagaSnapshot[]> {
    const valid = [...new Set(ids.filter((id) => UUID.test(id)))];
    if (!valid.length) return [];
    const [sagas, steps] = await Promise.all([
      queryOnce(this.dataSource, q.selectSagasByIds(this.schema, { ids: valid })),
      queryOnce(this.dataSource, q.selectStepsOfSagas(this.schema, { ids: valid })),
    ]);
    const stepsBySaga = new Map<string, StoredSagaSnapshot['steps']>();
    for (const step of steps) {
      const list = stepsBySaga.get(step.saga_id) ?? [];
      list.push({
        name: step.name,
        status: step.status as StepStatus,
        result: step.result_text === null ? null : (JSON.parse(step.result_text) as JsonValue),
      });
      stepsBySaga.set(step.saga_id, list);
    }
    return sagas.map((saga) => ({
      id: saga.id,
      name: saga.name,
      status: saga.status as SagaStatus,
      input: JSON.parse(saga.input_text) as JsonValue,
      steps: stepsBySaga.get(saga.id) ?? [],
    }));
  }

  async recordAudit(entry: ProtectionAuditEntry): Promise<void> {
    await this.dataSource.transaction((manager) =>
      recordAudit(
        manager,
        {
          action: entry.action,
          targetType: entry.targetType,
          targetId: entry.targetId,
          detail: entry.detail,
          ...(this.options.actor ? { actor: this.options.actor } : {}),
        },
        { schema: this.schema.name },
      ),
    );
  }
}
