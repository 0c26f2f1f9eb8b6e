import type { DataSource, EntityManager } from 'typeorm';
import { InvalidOptionsError } from '../../core/errors';
import { mapJsonStrings, type JsonValue } from '../../core/json';
import type {
  InboxDeadLetterPage,
  InboxEntry,
  InboxFailure,
  InboxFailureOutcome,
  InboxFailureRecord,
  InboxKey,
  InboxStatus,
  InboxStore,
} from '../../core/ports/inbox-store';
import * as q from './inbox-queries.sql';
import { deleteExpiredInboxDeadLetters } from './dead-letter-expiry.sql';
import { inboxTables, type InboxTables } from './inbox-tables';
import { sagaSchema } from './schema-name';
import {
  preparedStatementName,
  queryOnce,
  runPrepared,
  runStatement as run,
} from './run-statement';
import { checkedAuditActor, queryAsActor } from './query-as-actor';

export interface PostgresInboxStoreOptions {
  /** Schema holding the inbox tables (default `sage`); the one the migrations were created with. */
  schema?: string;
  /**
   * The operator named in the audit log for the dead-letter changes this store makes (release): each runs in a transaction that sets `sage.actor` first. The CLI sets it
   * from `--operator`. Default: none (the audit entries name the database role). 1-128 printable
   * characters.
   */
  auditActor?: string;
  /**
   * Run the per-message dedup statement (markInboxProcessed) as a named prepared statement: parsed
   * once per pooled connection, its plan reused, which takes most of that statement's database
   * CPU off each message (see docs/inbox.md). Default false. Leave it off behind a PgBouncer older
   * than 1.21 in transaction mode (prepared statements do not follow the client across server
   * connections there) and on PGlite (one session shared by all connections).
   */
  preparedStatements?: boolean;
}

/**
 * The consumer inbox on PostgreSQL through a TypeORM DataSource (PostgreSQL 13+, or PGlite over its
 * socket). The handler's transaction is a `dataSource.transaction()` (READ COMMITTED: the primary
 * key, not the isolation level, serialises duplicate deliveries); failures are recorded in short
 * transactions of their own. SQL: inbox-queries.sql.ts.
 */
export class PostgresInboxStore implements InboxStore<EntityManager> {
  readonly tables: InboxTables;
  private readonly auditActor: string | undefined;
  /** The prepared statement name of markInboxProcessed, when `preparedStatements` is on. */
  private readonly markName: string | undefined;

  constructor(
    private readonly dataSource: DataSource,
    options: PostgresInboxStoreOptions = {},
  ) {
    if (dataSource.options.type !== 'postgres') {
      throw new InvalidOptionsError(
        'dataSource',
        `PostgresInboxStore needs a TypeORM DataSource of type "postgres", got "${dataSource.options.type}".`,
      );
    }
    this.tables = inboxTables(sagaSchema(options.schema));
    this.auditActor = checkedAuditActor(options.auditActor);
    const prepared = options.preparedStatements ?? false;
    if (typeof prepared !== 'boolean')
      throw new InvalidOptionsError(
        'preparedStatements',
        `must be true or false, got ${typeof prepared}`,
      );
    this.markName = prepared
      ? preparedStatementName(
          'sage_inbox_mark',
          q.markInboxProcessed(this.tables, { consumer: '', messageId: '' }),
        )
      : undefined;
  }

  transaction<T>(body: (tx: EntityManager) => Promise<T>): Promise<T> {
    return this.dataSource.transaction((manager) => body(manager));
  }

  async markProcessed(tx: EntityManager, key: InboxKey): Promise<number | null> {
    const runner = tx.queryRunner;
    if (!runner?.isTransactionActive)
      throw new Error('PostgresInboxStore.markProcessed needs an EntityManager in a transaction');
    const statement = q.markInboxProcessed(this.tables, key);
    const [row] = await (this.markName === undefined
      ? run(runner, statement)
      : runPrepared(runner, this.markName, statement));
    return row?.attempt ?? null;
  }

  async markProcessedBatch(
    tx: EntityManager,
    consumer: string,
    messageIds: readonly string[],
  ): Promise<(number | null)[]> {
    const runner = tx.queryRunner;
    if (!runner?.isTransactionActive)
      throw new Error(
        'PostgresInboxStore.markProcessedBatch needs an EntityManager in a transaction',
      );
    if (new Set(messageIds).size !== messageIds.length)
      throw new Error('PostgresInboxStore.markProcessedBatch: messageIds repeats an id');
    if (messageIds.length === 0) return [];
    const rows = await run(
      runner,
      q.markInboxProcessedBatch(this.tables, { consumer, messageIds }),
    );
    const attempts = new Map(rows.map((r) => [r.message_id, r.attempt]));
    return messageIds.map((id) => attempts.get(id) ?? null);
  }

  async recordFailure(failure: InboxFailure): Promise<InboxFailureOutcome> {
    const key = { consumer: failure.consumer, messageId: failure.messageId };
    return this.dataSource.transaction(async (manager) => {
      const runner = manager.queryRunner!;
      const [counted] = await run(
        runner,
        q.recordInboxFailure(this.tables, { ...key, error: failure.error }),
      );
      if (!counted) return { outcome: 'already-done' as const };
      if (counted.attempts < failure.maxAttempts)
        return { outcome: 'counted' as const, attempts: counted.attempts };
      const [dead] = await run(
        runner,
        q.insertInboxDeadLetter(this.tables, {
          ...key,
          attempts: counted.attempts,
          error: failure.error,
          message: failure.message === null ? null : jsonbText(failure.message),
        }),
      );
      return dead?.dead_lettered
        ? { outcome: 'dead-lettered' as const, attempts: counted.attempts }
        : { outcome: 'already-done' as const };
    });
  }

  async get(key: InboxKey): Promise<InboxEntry | undefined> {
    const [row] = await this.query(q.selectInboxMessage(this.tables, key));
    return row ? toEntry(row) : undefined;
  }

  async getFailure(key: InboxKey): Promise<InboxFailureRecord | undefined> {
    const [row] = await this.query(q.selectInboxFailure(this.tables, key));
    return row
      ? {
          consumer: row.consumer,
          messageId: row.message_id,
          attempts: row.attempts,
          lastError: row.last_error,
          firstFailedAt: row.first_failed_at,
          lastFailedAt: row.last_failed_at,
        }
      : undefined;
  }

  async listDeadLetters(
    filter: { consumer?: string },
    limit: number,
    after?: InboxKey,
  ): Promise<InboxDeadLetterPage> {
    if (!Number.isInteger(limit) || limit < 1)
      throw new InvalidOptionsError('limit', `must be an integer >= 1, got ${String(limit)}`);
    const rows = await this.query(
      q.selectInboxDeadLetters(this.tables, {
        consumer: filter.consumer ?? null,
        limit: limit + 1,
        after: after ?? null,
      }),
    );
    const entries = rows.slice(0, limit).map(toEntry);
    const last = entries[entries.length - 1];
    return {
      entries,
      nextCursor:
        rows.length > limit && last ? { consumer: last.consumer, messageId: last.messageId } : null,
    };
  }

  async deleteDeadLetters(consumer: string, messageIds: readonly string[]): Promise<string[]> {
    if (!messageIds.length) return [];
    const rows = await queryAsActor(
      this.dataSource,
      this.auditActor,
      q.deleteInboxDeadLetters(this.tables, { consumer, messageIds }),
    );
    return rows.map((r) => r.message_id);
  }

  async vacuum(): Promise<void> {
    await this.query(q.vacuumInbox(this.tables));
  }

  async deleteProcessedBatch(olderThanMs: number, limit: number): Promise<number | null> {
    const [row] = await this.query(
      q.deleteProcessedInboxBatch(this.tables, { olderThanMs, limit }),
    );
    return row?.leader ? row.deleted : null;
  }

  async deleteExpiredDeadLetterBatch(olderThanMs: number, limit: number): Promise<number | null> {
    const [row] = await this.query(
      deleteExpiredInboxDeadLetters(this.tables, { olderThanMs, limit }),
    );
    return row?.leader ? row.deleted : null;
  }

  /** One statement in its own (implicit) transaction, on a pooled connection. */
  private query<Row>(statement: q.Statement<Row>): Promise<Row[]> {
    return queryOnce(this.dataSource, statement);
  }
}

function toEntry(row: q.InboxMessageRow): InboxEntry {
  return {
    consumer: row.consumer,
    messageId: row.message_id,
    status: row.status as InboxStatus,
    attempts: row.attempts,
    lastError: row.last_error,
    message: (row.message ?? null) as JsonValue | null,
    processedAt: row.processed_at,
  };
}

/**
 * The dead letter's message as jsonb input. A poison message is exactly the kind that may hold
 * what jsonb rejects (NUL, lone surrogates in strings); those characters become U+FFFD rather than
 * failing the failure record itself, which would leave the message redelivered forever.
 */
function jsonbText(message: JsonValue): string {
  return JSON.stringify(mapJsonStrings(message, toJsonbSafe));
}

function toJsonbSafe(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0) out += '\uFFFD';
    else if (c >= 0xd800 && c <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) out += text[i]! + text[++i]!;
      else out += '\uFFFD';
    } else if (c >= 0xdc00 && c <= 0xdfff) out += '\uFFFD';
    else out += text[i]!;
  }
  return out;
}
