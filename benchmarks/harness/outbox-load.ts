import type pg from 'pg';
import type { DataSource, EntityManager } from 'typeorm';
import { uuidv7, type OutboxMessageInput, type OutboxPublisher } from '@sage/saga-outbox';
import { BUSINESS_TABLE, inTransaction, INSERT_BUSINESS_ROW } from './database';
import * as q from './raw-sql';

/** The outbox tables of the default schema, as the store and the raw side both address them. */
export const OUTBOX_TABLES: q.BenchTables = q.benchTables('sage');

export const BENCH_DESTINATION = 'orders';
export const BENCH_TYPE = 'order.placed';
/** Distinct ordering keys: at most this many messages can be in flight at once (one per key). */
export const BENCH_KEYS = 1000;

const NOTE = 'benchmark payload padding '.repeat(5);

/**
 * An order-shaped payload of about 300 bytes of JSON (`payloadBytes()` prints the exact size). The
 * payload varies with `n` so nothing downstream can cache it.
 */
export function benchPayload(n: number): {
  orderId: number;
  customerId: string;
  total: number;
  currency: string;
  lines: { sku: string; qty: number; price: number }[];
  note: string;
} {
  return {
    orderId: n,
    customerId: `customer-${n % BENCH_KEYS}`,
    total: (n % 997) * 3.25,
    currency: 'EUR',
    lines: [
      { sku: `sku-${n % 101}`, qty: 1 + (n % 3), price: 12.5 },
      { sku: `sku-${n % 103}`, qty: 1, price: 7.25 },
    ],
    note: NOTE,
  };
}

export function payloadBytes(): number {
  return Buffer.byteLength(JSON.stringify(benchPayload(123_456)));
}

/** Message `n`: keys round-robin over BENCH_KEYS, so consecutive messages have distinct keys. */
export function benchMessage(
  n: number,
  id?: string,
  destination = BENCH_DESTINATION,
): OutboxMessageInput {
  return {
    id,
    destination,
    type: BENCH_TYPE,
    key: `customer-${n % BENCH_KEYS}`,
    payload: benchPayload(n),
  };
}

/** insertOutboxMessages (the store's own INSERT) for messages `from .. from + count - 1`. */
function insertStatement(
  from: number,
  count: number,
  ids: string[],
  destination = BENCH_DESTINATION,
): q.Statement<never> {
  const messages = Array.from({ length: count }, (_, i) =>
    benchMessage(from + i, undefined, destination),
  );
  return q.insertOutboxMessages(OUTBOX_TABLES, {
    ids,
    destinations: messages.map((m) => m.destination),
    keys: messages.map((m) => m.key ?? null),
    types: messages.map((m) => m.type),
    payloads: messages.map((m) => JSON.stringify(m.payload)),
    headers: messages.map((m) => JSON.stringify(m.headers ?? {})),
    sagaIds: messages.map(() => null),
  });
}

/** Inserts `count` pending messages, `perStatement` per statement (each statement its own transaction). */
export async function preloadOutbox(
  client: pg.Client,
  count: number,
  perStatement = 1000,
  destination = BENCH_DESTINATION,
): Promise<void> {
  for (let from = 0; from < count; from += perStatement) {
    const n = Math.min(perStatement, count - from);
    const s = insertStatement(
      from,
      n,
      Array.from({ length: n }, () => uuidv7()),
      destination,
    );
    await client.query(s.text, [...s.values]);
  }
}

/**
 * Empty outbox and business tables, then a CHECKPOINT so no run pays for the previous one's dirty
 * pages; ANALYZE so the planner sees the empty table as it is (the claim plans on its statistics).
 */
export async function resetOutboxTables(admin: pg.Client): Promise<void> {
  await admin.query(`TRUNCATE ${OUTBOX_TABLES.outboxMessage}, ${BUSINESS_TABLE}`);
  await admin.query(`ANALYZE ${OUTBOX_TABLES.outboxMessage}`);
  await admin.query('CHECKPOINT');
}

/** One business transaction: resolves to the message ids it committed once COMMIT returned. */
export type CommitOperation = (n: number) => Promise<string[]>;

/**
 * The Sage write path: `dataSource.transaction` (TypeORM), one business insert through the
 * manager, then `outbox.publish(messages, { manager })` — as an application writes it.
 */
export function sageCommit(
  dataSource: DataSource,
  publisher: OutboxPublisher<EntityManager>,
  messagesPerTx: number,
  destination = BENCH_DESTINATION,
): CommitOperation {
  return (n) =>
    dataSource.transaction(async (manager) => {
      const first = n * messagesPerTx;
      await manager.query(INSERT_BUSINESS_ROW, [uuidv7(), 'order']);
      return publisher.publish(
        Array.from({ length: messagesPerTx }, (_, i) =>
          benchMessage(first + i, undefined, destination),
        ),
        { manager },
      );
    });
}

/** The same transaction through a plain node-postgres Pool: BEGIN, the same two INSERTs, COMMIT. */
export function rawCommit(
  pool: pg.Pool,
  messagesPerTx: number,
  destination = BENCH_DESTINATION,
): CommitOperation {
  return async (n) => {
    const first = n * messagesPerTx;
    const ids = Array.from({ length: messagesPerTx }, () => uuidv7());
    const insert = insertStatement(first, messagesPerTx, ids, destination);
    await inTransaction(pool, async (client) => {
      await client.query(INSERT_BUSINESS_ROW, [uuidv7(), 'order']);
      await client.query(insert.text, [...insert.values]);
    });
    return ids;
  };
}
