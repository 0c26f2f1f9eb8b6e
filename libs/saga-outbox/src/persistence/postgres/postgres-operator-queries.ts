import type { DataSource } from 'typeorm';
import { InvalidOptionsError } from '../../core/errors';
import type { SagaStatus } from '../../core/ports/saga-store';
import { inboxTables, type InboxTables } from './inbox-tables';
import * as q from './operator-queries.sql';
import type { SagaListCursor } from './operator-queries.sql';
import { outboxTables, type OutboxTables } from './outbox-tables';
import { queryOnce } from './run-statement';
import { sagaSchema, type SagaSchema } from './schema-name';
import { SAGA_STATUSES } from '../../core/saga/saga-transitions';

export { SAGA_STATUSES } from '../../core/saga/saga-transitions';

/** How long a due saga may go unclaimed before it counts as stalled, by default (seconds). */
export const DEFAULT_STALLED_AFTER_SECONDS = 60;

export interface PostgresOperatorQueriesOptions {
  /** Schema holding Sage's tables (default `sage`). */
  schema?: string;
  /** Grace before a due, unclaimed live saga counts as stalled (default 60 s). */
  stalledAfterSeconds?: number;
}

/** Live (non-terminal) sagas of one name, version and status. */
export interface LiveSagaGroup {
  name: string;
  version: string;
  status: SagaStatus;
  count: number;
  /** Due (unowned, lease expired, or wake time passed) and unclaimed for longer than the grace. */
  stalled: number;
  oldestAgeSeconds: number;
}

/** One saga as listings show it (no input or step results). */
export interface SagaSummary {
  id: string;
  name: string;
  version: string;
  status: SagaStatus;
  owner: string | null;
  leaseUntil: Date | null;
  wakeAt: Date | null;
  deadlineAt: Date | null;
  error: string | null;
  failedStep: string | null;
  createdAt: Date;
  updatedAt: Date;
  ageSeconds: number;
  stalled: boolean;
  awaitingSteps: string[];
  replyDeadline: Date | null;
}

/** What sagaPage filters on (all optional, combined with AND). */
export interface SagaPageFilter {
  status?: SagaStatus;
  name?: string;
  idempotencyKey?: string;
  /** Only sagas started at least this many seconds ago. */
  olderThanSeconds?: number;
}

export type { SagaListCursor } from './operator-queries.sql';

export interface OutboxPendingBreakdown {
  due: number;
  backingOff: number;
  /** Pending behind an earlier unsent message of their key (the relay's head-of-key rule). */
  behindKey: number;
  expiredClaims: number;
}

export interface OutboxDeadLetterGroup {
  destination: string;
  type: string;
  count: number;
  oldestCreatedAt: Date;
  newestCreatedAt: Date;
  lastError: string | null;
}

export interface InboxDeadLetterGroup {
  consumer: string;
  count: number;
  oldestAt: Date;
  newestAt: Date;
}

export interface OldestTransaction {
  pid: number;
  database: string | null;
  applicationName: string | null;
  state: string | null;
  ageSeconds: number;
}

/**
 * Read-only questions operators ask of Sage's tables (the `sage` CLI's status and listings), each
 * one statement in its own implicit transaction. Changes go through the stores' operator methods
 * (OutboxDeadLetters, PostgresInboxStore.deleteDeadLetters), never through here.
 * SQL: operator-queries.sql.ts.
 */
export class PostgresOperatorQueries {
  private readonly schema: SagaSchema;
  private readonly outbox: OutboxTables;
  private readonly inbox: InboxTables;
  private readonly stalledAfterSeconds: number;

  constructor(
    private readonly dataSource: DataSource,
    options: PostgresOperatorQueriesOptions = {},
  ) {
    if (dataSource.options.type !== 'postgres') {
      throw new InvalidOptionsError(
        'dataSource',
        `PostgresOperatorQueries needs a TypeORM DataSource of type "postgres", got "${dataSource.options.type}".`,
      );
    }
    this.schema = sagaSchema(options.schema);
    this.outbox = outboxTables(this.schema);
    this.inbox = inboxTables(this.schema);
    const stalled = options.stalledAfterSeconds ?? DEFAULT_STALLED_AFTER_SECONDS;
    if (!Number.isFinite(stalled) || stalled < 0)
      throw new InvalidOptionsError(
        'stalledAfterSeconds',
        `must be a number of seconds >= 0, got ${String(stalled)}`,
      );
    this.stalledAfterSeconds = stalled;
  }

  /** The database clock now (ages are relative to it). */
  async databaseNow(): Promise<Date> {
    const [row] = await queryOnce(this.dataSource, q.selectDatabaseNow());
    return row?.now ?? new Date();
  }

  /** Every saga status with its count (0 when none), terminal ones included. Scans the table. */
  async sagaStatusCounts(): Promise<Record<SagaStatus, number>> {
    const rows = await queryOnce(this.dataSource, q.selectSagaStatusCounts(this.schema));
    const counts = Object.fromEntries(SAGA_STATUSES.map((s) => [s, 0])) as Record<
      SagaStatus,
      number
    >;
    for (const row of rows) counts[row.status as SagaStatus] = Number(row.count);
    return counts;
  }

  async liveSagaGroups(): Promise<LiveSagaGroup[]> {
    const rows = await queryOnce(
      this.dataSource,
      q.selectLiveSagaGroups(this.schema, { stalledAfterSeconds: this.stalledAfterSeconds }),
    );
    return rows.map((r) => ({
      name: r.name,
      version: r.version,
      status: r.status as SagaStatus,
      count: Number(r.count),
      stalled: Number(r.stalled),
      oldestAgeSeconds: Math.max(0, r.oldest_age_seconds),
    }));
  }

  /** Newest first, optionally filtered by status and/or saga name. */
  async listSagas(
    filter: { status?: SagaStatus; name?: string },
    limit: number,
  ): Promise<SagaSummary[]> {
    const rows = await queryOnce(
      this.dataSource,
      q.selectSagaList(this.schema, {
        status: filter.status ?? null,
        name: filter.name ?? null,
        limit: checkLimit(limit),
        stalledAfterSeconds: this.stalledAfterSeconds,
      }),
    );
    return rows.map(toSummary);
  }

  /**
   * One page of sagas, newest first, for a console: filters as listSagas plus an idempotency key
   * and a minimum age, and keyset paging on (created_at, id), the order of the indexes the
   * listing reads (pass `next` back as `before`). A page costs the same at any depth.
   */
  async sagaPage(
    filter: SagaPageFilter,
    page: { limit: number; before?: SagaListCursor | null },
  ): Promise<{ sagas: SagaSummary[]; next: SagaListCursor | null }> {
    const limit = checkLimit(page.limit);
    const rows = await queryOnce(
      this.dataSource,
      q.selectSagaList(this.schema, {
        status: filter.status ?? null,
        name: filter.name ?? null,
        idempotencyKey: filter.idempotencyKey ?? null,
        olderThanSeconds: filter.olderThanSeconds ?? null,
        before: page.before ?? null,
        // One more than asked: whether a next page exists, without a count.
        limit: limit + 1,
        stalledAfterSeconds: this.stalledAfterSeconds,
      }),
    );
    const shown = rows.slice(0, limit);
    const last = shown[shown.length - 1];
    return {
      sagas: shown.map(toSummary),
      next:
        rows.length > limit && last
          ? { createdAtMicros: last.created_at_micros, id: last.id }
          : null,
    };
  }

  /** Live sagas, oldest first: the likeliest to be stuck. */
  async oldestLiveSagas(limit: number): Promise<SagaSummary[]> {
    const rows = await queryOnce(
      this.dataSource,
      q.selectOldestLiveSagas(this.schema, {
        limit: checkLimit(limit),
        stalledAfterSeconds: this.stalledAfterSeconds,
      }),
    );
    return rows.map(toSummary);
  }

  async outboxPendingBreakdown(): Promise<OutboxPendingBreakdown> {
    const [row] = await queryOnce(this.dataSource, q.selectOutboxPendingBreakdown(this.outbox));
    return {
      due: Number(row?.due ?? 0),
      backingOff: Number(row?.backing_off ?? 0),
      behindKey: Number(row?.behind_key ?? 0),
      expiredClaims: Number(row?.expired_claims ?? 0),
    };
  }

  /** Dead letters per (destination, type), biggest groups first. */
  async outboxDeadLetterGroups(limit: number): Promise<OutboxDeadLetterGroup[]> {
    const rows = await queryOnce(
      this.dataSource,
      q.selectOutboxDeadLetterGroups(this.outbox, { limit: checkLimit(limit) }),
    );
    return rows.map((r) => ({
      destination: r.destination,
      type: r.type,
      count: Number(r.count),
      oldestCreatedAt: r.oldest_created_at,
      newestCreatedAt: r.newest_created_at,
      lastError: r.last_error,
    }));
  }

  async inboxDeadLetterGroups(): Promise<InboxDeadLetterGroup[]> {
    const rows = await queryOnce(this.dataSource, q.selectInboxDeadLetterGroups(this.inbox));
    return rows.map((r) => ({
      consumer: r.consumer,
      count: Number(r.count),
      oldestAt: r.oldest_at,
      newestAt: r.newest_at,
    }));
  }

  /** The server's oldest open transaction holding an xid or snapshot (other than ours), if visible. */
  async oldestTransaction(): Promise<OldestTransaction | undefined> {
    const [row] = await queryOnce(this.dataSource, q.selectOldestTransaction());
    return row
      ? {
          pid: row.pid,
          database: row.database,
          applicationName: row.application_name,
          state: row.state,
          ageSeconds: Math.max(0, row.age_seconds),
        }
      : undefined;
  }
}

const MAX_LIMIT = 1000;

function checkLimit(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT)
    throw new InvalidOptionsError(
      'limit',
      `must be an integer between 1 and ${MAX_LIMIT}, got ${String(limit)}`,
    );
  return limit;
}

function toSummary(r: q.SagaSummaryRow): SagaSummary {
  return {
    id: r.id,
    name: r.name,
    version: r.version,
    status: r.status as SagaStatus,
    owner: r.owner,
    leaseUntil: r.lease_until,
    wakeAt: r.wake_at,
    deadlineAt: r.deadline_at,
    error: r.error,
    failedStep: r.failed_step,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    ageSeconds: Math.max(0, r.age_seconds),
    stalled: r.stalled,
    awaitingSteps: r.awaiting_steps,
    replyDeadline: r.reply_deadline,
  };
}
