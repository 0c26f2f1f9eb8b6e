import type { DataSource, EntityManager } from 'typeorm';
import { InvalidOptionsError } from '../../core/errors';
import type { JsonValue } from '../../core/json';
import type {
  ClaimedOutboxMessage,
  NewOutboxMessage,
  OutboxMessage,
} from '../../core/outbox/outbox-message';
import type { OutboxStatus } from '../../core/outbox/outbox-transitions';
import type {
  ClaimByIdsResult,
  DeadLetterFilter,
  DeadLetterPage,
  OutboxFailure,
  OutboxStats,
  OutboxStore,
  OutboxWakeSubscription,
  OutboxWriter,
} from '../../core/ports/outbox-store';
import * as q from './outbox-queries.sql';
import { deleteExpiredOutboxDeadLetters } from './dead-letter-expiry.sql';
import { archiveSentBatch, purgeArchiveBatch } from './outbox-archive.sql';
import { outboxTables, type OutboxTables } from './outbox-tables';
import { sagaSchema } from './schema-name';
import { queryOnce, runStatement as run } from './run-statement';
import { storableText } from '../../core/error-text';
import { checkedAuditActor, queryAsActor } from './query-as-actor';

export interface PostgresOutboxStoreOptions {
  /** Schema holding the outbox tables (default `sage`); the one the migrations were created with. */
  schema?: string;
  /**
   * The operator named in the audit log for the dead-letter changes this store makes (replay,
   * discard): each runs in a transaction that sets `sage.actor` first. The CLI sets it
   * from `--operator`. Default: none (the audit entries name the database role). 1-128 printable
   * characters.
   */
  auditActor?: string;
}

/** Longest `last_error` stored; broker errors can embed whole payloads. */
const MAX_ERROR_LENGTH = 2000;

/**
 * The outbox on PostgreSQL through a TypeORM DataSource (PostgreSQL 13+, or PGlite over its
 * socket). Write side joins the caller's EntityManager transaction; relay side runs each statement
 * in its own short transaction (never holds one open across a broker call). SQL: outbox-queries.sql.ts.
 */
export class PostgresOutboxStore implements OutboxStore, OutboxWriter<EntityManager> {
  readonly tables: OutboxTables;
  private readonly auditActor: string | undefined;

  constructor(
    private readonly dataSource: DataSource,
    options: PostgresOutboxStoreOptions = {},
  ) {
    if (dataSource.options.type !== 'postgres') {
      throw new InvalidOptionsError(
        'dataSource',
        `PostgresOutboxStore needs a TypeORM DataSource of type "postgres", got "${dataSource.options.type}".`,
      );
    }
    this.tables = outboxTables(sagaSchema(options.schema));
    this.auditActor = checkedAuditActor(options.auditActor);
  }

  // -- write side ------------------------------------------------------------------------------

  isTransaction(tx: EntityManager): boolean {
    return tx?.queryRunner?.isTransactionActive === true && tx.queryRunner.isReleased !== true;
  }

  async insert(tx: EntityManager, messages: readonly NewOutboxMessage[]): Promise<void> {
    if (!messages.length) return;
    const runner = tx.queryRunner;
    if (!runner) throw new Error('EntityManager has no query runner');
    await run(
      runner,
      q.insertOutboxMessages(this.tables, {
        ids: messages.map((m) => m.id),
        destinations: messages.map((m) => m.destination),
        keys: messages.map((m) => m.key),
        types: messages.map((m) => m.type),
        payloads: messages.map((m) => JSON.stringify(m.payload)),
        headers: messages.map((m) => JSON.stringify(m.headers)),
        sagaIds: messages.map((m) => m.sagaId),
      }),
    );
  }

  /**
   * OutboxWriter.insertClaimed: the keys' locks in one statement, then the insert in a second, so
   * that under READ COMMITTED the insert's snapshot sees every earlier commit of those keys and the
   * head-of-key test cannot miss one (outbox-queries.sql.ts insertOutboxMessagesClaimed).
   */
  async insertClaimed(
    tx: EntityManager,
    messages: readonly NewOutboxMessage[],
    claim: { claimToken: string; leaseMs: number; ids: readonly string[] },
  ): Promise<ClaimedOutboxMessage[]> {
    if (!messages.length) return [];
    const runner = tx.queryRunner;
    if (!runner) throw new Error('EntityManager has no query runner');
    // Inside a savepoint (a nested TypeORM transaction) the rows may still be rolled back while
    // the transaction commits: a row claimed at write would then be published although it was
    // never committed. Only rows of the outermost level are claimed.
    if (transactionDepth(runner) > 1) {
      await this.insert(tx, messages);
      return [];
    }
    const keys = messages.map((m) => m.key);
    if (keys.some((k) => k !== null)) await run(runner, q.lockOutboxKeys(this.tables, { keys }));
    const rows = await run(
      runner,
      q.insertOutboxMessagesClaimed(this.tables, {
        ids: messages.map((m) => m.id),
        destinations: messages.map((m) => m.destination),
        keys,
        types: messages.map((m) => m.type),
        payloads: messages.map((m) => JSON.stringify(m.payload)),
        headers: messages.map((m) => JSON.stringify(m.headers)),
        sagaIds: messages.map((m) => m.sagaId),
        claimIds: claim.ids.filter(isUuid),
        claimToken: claim.claimToken,
        leaseMs: claim.leaseMs,
      }),
    );
    rows.sort(byPublishOrder);
    return rows.map(toClaimed);
  }

  // -- relay side ------------------------------------------------------------------------------

  /**
   * The windowed claim first (bounded work however deep the backlog); only when it finds nothing,
   * the unbounded one (eligible rows beyond a window of rows that wait behind their keys).
   */
  async claim(claimToken: string, limit: number, leaseMs: number): Promise<ClaimedOutboxMessage[]> {
    if (limit <= 0) return [];
    const window = Math.max(limit * CLAIM_WINDOW_PER_ROW, MIN_CLAIM_WINDOW);
    let rows = await this.query(
      q.claimOutboxMessagesWindowed(this.tables, { claimToken, limit, leaseMs, window }),
    );
    if (!rows.length)
      rows = await this.query(q.claimOutboxMessages(this.tables, { claimToken, limit, leaseMs }));
    rows.sort(byPublishOrder);
    return rows.map(toClaimed);
  }

  async claimByIds(
    claimToken: string,
    ids: readonly string[],
    leaseMs: number,
  ): Promise<ClaimByIdsResult> {
    const valid = ids.filter(isUuid);
    if (!valid.length) return { claimed: [], waiting: [] };
    const rows = await this.query(
      q.claimOutboxMessagesByIds(this.tables, { claimToken, ids: valid, leaseMs }),
    );
    const claimed = rows.filter((r): r is q.OutboxMessageRow & q.ClaimByIdsRow => r.id !== null);
    claimed.sort(byPublishOrder);
    return { claimed: claimed.map(toClaimed), waiting: rows[0]?.waiting ?? [] };
  }

  async markSent(claimToken: string, ids: readonly string[]): Promise<string[]> {
    if (!ids.length) return [];
    return ids_(await this.query(q.markOutboxSent(this.tables, { claimToken, ids })));
  }

  async markFailed(claimToken: string, failures: readonly OutboxFailure[]): Promise<string[]> {
    if (!failures.length) return [];
    return ids_(
      await this.query(
        q.markOutboxFailed(this.tables, {
          claimToken,
          ids: failures.map((f) => f.id),
          // NUL escaped: an error the store could not record would leave its message claimed, reaped
          // and failed again forever (never counted, never dead-lettered, its key blocked).
          errors: failures.map((f) => storableText(f.error, MAX_ERROR_LENGTH)),
          delaysMs: failures.map((f) => f.delayMs),
          counted: failures.map((f) => f.counted !== false || f.delayMs === null),
        }),
      ),
    );
  }

  async release(claimToken: string, ids: readonly string[]): Promise<string[]> {
    if (!ids.length) return [];
    const released = ids_(
      await this.query(q.releaseOutboxClaims(this.tables, { claimToken, ids })),
    );
    // No INSERT, so no trigger: wake the relays ourselves, or the rows wait for their next poll.
    // Only a hint: if it fails, the rows are released all the same and the next poll finds them.
    if (released.length) await this.query(q.notifyOutbox(this.tables)).catch(() => undefined);
    return released;
  }

  async reapExpired(limit: number): Promise<number> {
    return (await this.query(q.reapExpiredClaims(this.tables, { limit }))).length;
  }

  /**
   * A dedicated connection (taken out of the pool for as long as the subscription lives) LISTENing
   * on the outbox channel. Errors on it are reported through `onError`; the relay keeps polling and
   * subscribes again later.
   */
  async listen(
    onNotify: () => void,
    onError: (error: unknown) => void,
  ): Promise<OutboxWakeSubscription | null> {
    const runner = this.dataSource.createQueryRunner();
    try {
      // PostgresQueryRunner.connect() resolves to its dedicated pg client (public TypeORM API).
      const pg = (await runner.connect()) as PgEventSource | undefined;
      if (!pg || typeof pg.on !== 'function' || typeof pg.off !== 'function') {
        await runner.release();
        return null;
      }
      const channel = this.tables.channel;
      const onNotification = (msg: unknown): void => {
        if ((msg as { channel?: string }).channel === channel) onNotify();
      };
      const onClientError = (error: unknown): void => onError(error);
      const onEnd = (): void => onError(new Error('LISTEN connection ended'));
      pg.on('notification', onNotification);
      pg.on('error', onClientError);
      pg.on('end', onEnd);
      // The channel is [a-z0-9_] (outbox-tables.ts); quoted as an identifier all the same.
      await runner.query(`LISTEN "${channel}"`);
      let closed = false;
      return {
        close: async () => {
          if (closed) return;
          closed = true;
          pg.off('notification', onNotification);
          pg.off('end', onEnd);
          try {
            await runner.query(`UNLISTEN "${channel}"`);
          } catch {
            // A broken connection has no subscription left to cancel.
          } finally {
            pg.off('error', onClientError);
            await runner.release();
          }
        },
      };
    } catch (error) {
      await runner.release();
      throw error;
    }
  }

  // -- dead letters ------------------------------------------------------------------------------

  async get(id: string): Promise<OutboxMessage | undefined> {
    if (!isUuid(id)) return undefined;
    const [row] = await this.query(q.selectOutboxMessage(this.tables, { id }));
    return row ? toMessage(row) : undefined;
  }

  async listDeadLetters(
    filter: DeadLetterFilter,
    limit: number,
    after?: string,
  ): Promise<DeadLetterPage> {
    if (after !== undefined && !isUuid(after))
      throw new InvalidOptionsError('after', 'must be a cursor returned by a previous page');
    const rows = await this.query(
      q.selectDeadLetters(this.tables, { filter, limit: limit + 1, after: after ?? null }),
    );
    const page = rows.slice(0, limit).map(toMessage);
    return {
      messages: page,
      nextCursor: rows.length > limit ? (page[page.length - 1]?.id ?? null) : null,
    };
  }

  async replayDeadLetters(
    selector: { ids: readonly string[] } | { filter: DeadLetterFilter; limit: number },
  ): Promise<string[]> {
    const replayed = ids_(
      await this.asActor(q.replayDeadLetters(this.tables, cleanSelector(selector))),
    );
    if (replayed.length) await this.query(q.notifyOutbox(this.tables));
    return replayed;
  }

  async discardDeadLetters(
    selector: { ids: readonly string[] } | { filter: DeadLetterFilter; limit: number },
  ): Promise<string[]> {
    return ids_(await this.asActor(q.discardDeadLetters(this.tables, cleanSelector(selector))));
  }

  // -- retention / stats ---------------------------------------------------------------------------

  async vacuum(): Promise<void> {
    await this.query(q.vacuumOutbox(this.tables));
  }

  async deleteSentBatch(olderThanMs: number, limit: number): Promise<number | null> {
    const [row] = await this.query(q.deleteSentBatch(this.tables, { olderThanMs, limit }));
    return row?.leader ? row.deleted : null;
  }

  async archiveSentBatch(olderThanMs: number, limit: number): Promise<number | null> {
    const [row] = await this.query(archiveSentBatch(this.tables, { olderThanMs, limit }));
    return row?.leader ? row.archived : null;
  }

  async purgeArchiveBatch(olderThanMs: number, limit: number): Promise<number | null> {
    const [row] = await this.query(purgeArchiveBatch(this.tables, { olderThanMs, limit }));
    return row?.leader ? row.deleted : null;
  }

  async deleteExpiredDeadLetterBatch(olderThanMs: number, limit: number): Promise<number | null> {
    const [row] = await this.query(
      deleteExpiredOutboxDeadLetters(this.tables, { olderThanMs, limit }),
    );
    return row?.leader ? row.deleted : null;
  }

  async stats(): Promise<OutboxStats> {
    const [row] = await this.query(q.selectOutboxStats(this.tables));
    return {
      pending: row?.pending ?? 0,
      claimed: row?.claimed ?? 0,
      sent: row?.sent ?? 0,
      deadLetter: row?.dead_letter ?? 0,
      oldestPendingAgeSeconds: row?.oldest_pending_age_seconds ?? 0,
    };
  }

  /** One statement in its own (implicit) transaction, on a pooled connection. */
  private query<Row>(statement: q.Statement<Row>): Promise<Row[]> {
    return queryOnce(this.dataSource, statement);
  }

  /** An operator's change: as query, naming `auditActor` (when set) for the audit triggers. */
  private asActor<Row>(statement: q.Statement<Row>): Promise<Row[]> {
    return queryAsActor(this.dataSource, this.auditActor, statement);
  }
}

/** The part of a pg Client the LISTEN subscription uses. */
interface PgEventSource {
  on(event: string, fn: (...args: unknown[]) => void): void;
  off(event: string, fn: (...args: unknown[]) => void): void;
}

const ids_ = (rows: { id: string }[]): string[] => rows.map((r) => r.id);

/** The windowed claim reads this many due pending rows per row it may claim (at least MIN_CLAIM_WINDOW). */
const CLAIM_WINDOW_PER_ROW = 10;
const MIN_CLAIM_WINDOW = 1000;

/** TypeORM's nesting level of the runner's transaction (1: outermost; savepoints above). */
function transactionDepth(runner: object): number {
  const depth = (runner as { transactionDepth?: unknown }).transactionDepth;
  return typeof depth === 'number' ? depth : Number.POSITIVE_INFINITY;
}

function byPublishOrder(a: q.OutboxMessageRow, b: q.OutboxMessageRow): number {
  const tx = BigInt(a.txid) - BigInt(b.txid);
  if (tx !== 0n) return tx < 0n ? -1 : 1;
  const seq = BigInt(a.seq) - BigInt(b.seq);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}

function cleanSelector(
  selector: { ids: readonly string[] } | { filter: DeadLetterFilter; limit: number },
): { ids: readonly string[] } | { filter: DeadLetterFilter; limit: number } {
  if ('ids' in selector) return { ids: selector.ids.filter(isUuid) };
  if (selector.filter.sagaId !== undefined && !isUuid(selector.filter.sagaId)) {
    throw new InvalidOptionsError('filter.sagaId', 'must be a UUID');
  }
  return selector;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
function isUuid(id: string): boolean {
  return typeof id === 'string' && UUID.test(id);
}

function toClaimed(row: q.OutboxMessageRow): ClaimedOutboxMessage {
  return {
    id: row.id,
    destination: row.destination,
    key: row.key,
    type: row.type,
    payload: row.payload as JsonValue,
    headers: row.headers ?? {},
    sagaId: row.saga_id,
    attempts: row.attempts,
    createdAt: row.created_at,
  };
}

function toMessage(row: q.OutboxMessageRow): OutboxMessage {
  return {
    ...toClaimed(row),
    status: row.status as OutboxStatus,
    nextAttemptAt: row.next_attempt_at,
    sentAt: row.sent_at,
    lastError: row.last_error,
  };
}
