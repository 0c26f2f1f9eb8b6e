import type { DataSource } from 'typeorm';
import * as q from './observability-queries.sql';
import { outboxTables, type OutboxTables } from './outbox-tables';
import { queryOnce } from './run-statement';
import { sagaSchema, type SagaSchema } from './schema-name';

export interface OutboxBacklog {
  /** Unsent messages (pending or claimed). */
  pending: number;
  /** Age of the oldest pending message in seconds (database clock); 0 when there is none. */
  oldestPendingAgeSeconds: number;
  deadLetters: number;
}

/** Connections of the DataSource's pool (node-postgres Pool counters). */
export interface PoolStats {
  total: number;
  idle: number;
  waiting: number;
}

/**
 * Read-only probes of Sage's tables for metrics and health: each one statement on a pooled
 * connection, in its own implicit transaction. SQL: observability-queries.sql.ts.
 */
export class PostgresObservabilityProbe {
  private readonly tables: OutboxTables;
  private readonly schema: SagaSchema;

  constructor(
    private readonly dataSource: DataSource,
    options: { schema?: string } = {},
  ) {
    this.schema = sagaSchema(options.schema);
    this.tables = outboxTables(this.schema);
  }

  async ping(): Promise<void> {
    await queryOnce(this.dataSource, q.selectOne());
  }

  async outboxBacklog(): Promise<OutboxBacklog> {
    const [row] = await queryOnce(this.dataSource, q.selectOutboxBacklog(this.tables));
    return {
      pending: Number(row?.pending ?? 0),
      oldestPendingAgeSeconds: Math.max(0, Number(row?.oldest_pending_age_seconds ?? 0)),
      deadLetters: Number(row?.dead_letters ?? 0),
    };
  }

  /** Running or compensating sagas per saga name. */
  async activeSagas(): Promise<Map<string, number>> {
    const rows = await queryOnce(this.dataSource, q.selectActiveSagas(this.schema));
    return new Map(rows.map((r) => [r.name, Number(r.active)]));
  }

  /**
   * The pool's counters, or undefined when the driver has none. TypeORM's PostgresDriver keeps its
   * node-postgres Pool as `master`; read duck-typed (no import of driver internals).
   */
  poolStats(): PoolStats | undefined {
    const pool = (this.dataSource.driver as { master?: unknown }).master as
      { totalCount?: unknown; idleCount?: unknown; waitingCount?: unknown } | undefined;
    if (!pool || typeof pool.totalCount !== 'number') return undefined;
    return {
      total: pool.totalCount,
      idle: Number(pool.idleCount ?? 0),
      waiting: Number(pool.waitingCount ?? 0),
    };
  }
}
