/**
 * The chaos run's two services and the tables they write, in one place: service A (the producer,
 * database `<prefix>_a`) and service B (the consumer, database `<prefix>_b`), each with Sage's own
 * schema created by Sage's migrations and a `chaos` schema for its business tables.
 *
 * The checker trusts only these tables: a message was "produced and committed" iff service A's
 * `a_message` row exists (written in the same transaction as the outbox row), and it was
 * "effected" once per `b_effect` row (written in the same transaction as the inbox row). Neither
 * table has a unique constraint on the message id, so a duplicate shows up instead of failing.
 */
import type { EntityManager } from 'typeorm';

/** Where service A's plain business transactions publish (topic / routing key / subject suffix). */
export const ORDERS = 'orders';
/** Where the steps of service A's sagas publish. */
export const PAYMENTS = 'payments';
export const DESTINATIONS = [ORDERS, PAYMENTS] as const;
/** Service B's inbox consumers (= broker consumer groups), one per destination. */
export const CONSUMERS: Record<(typeof DESTINATIONS)[number], string> = {
  orders: 'chaos-b.orders',
  payments: 'chaos-b.payments',
};
export const SAGA_NAME = 'chaos-order';

/** Service A: per-key version counter (the aggregate), and one row per message it committed. */
export const SERVICE_A_DDL = [
  `CREATE SCHEMA chaos`,
  // The aggregate row: bumping it takes the key's row lock until commit, so per key the sequence
  // numbers are handed out in commit order (the order the outbox must preserve).
  `CREATE TABLE chaos.a_aggregate (
     key     text    PRIMARY KEY,
     version integer NOT NULL
   )`,
  `CREATE TABLE chaos.a_message (
     message_id   uuid        PRIMARY KEY,
     key          text        NOT NULL,
     seq          integer     NOT NULL,
     origin       text        NOT NULL CHECK (origin IN ('order', 'saga')),
     destination  text        NOT NULL,
     producer     text        NOT NULL,
     committed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
     UNIQUE (key, seq)
   )`,
];

/** Service B: per-key apply state (its row lock orders the applies of a key) and the effect log. */
export const SERVICE_B_DDL = [
  `CREATE SCHEMA chaos`,
  `CREATE TABLE chaos.b_key_state (
     key      text    PRIMARY KEY,
     applied  integer NOT NULL,
     max_seq  integer NOT NULL,
     prev_max integer NOT NULL
   )`,
  // Deliberately no unique constraint on (consumer, message_id): an effect applied twice must be
  // counted, not turned into a constraint error and a retry.
  `CREATE TABLE chaos.b_effect (
     id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     consumer         text        NOT NULL,
     message_id       text        NOT NULL,
     key              text        NOT NULL,
     seq              integer     NOT NULL,
     apply_no         integer     NOT NULL,
     prev_max_seq     integer     NOT NULL,
     attempt          integer     NOT NULL,
     delivery_attempt integer     NOT NULL,
     worker           text        NOT NULL,
     applied_at       timestamptz NOT NULL DEFAULT clock_timestamp()
   )`,
  `CREATE INDEX b_effect_applied_at_idx ON chaos.b_effect (applied_at)`,
];

/** What every chaos message carries: its key and per-key sequence number, and where it came from. */
export type ChaosPayload = {
  key: string;
  seq: number;
  origin: 'order' | 'saga';
  type: string;
};

/** One message service A is about to commit, before its sequence number is known. */
export interface ChaosMessage {
  destination: string;
  type: string;
  key: string;
  origin: ChaosPayload['origin'];
}

/**
 * Takes the next sequence number of `key` in the caller's transaction: an upsert that keeps the
 * aggregate row locked until commit, so a later transaction on the key waits and commits after.
 */
async function nextSeq(manager: EntityManager, key: string): Promise<number> {
  const rows: { version: number }[] = await manager.query(
    `INSERT INTO chaos.a_aggregate AS a (key, version) VALUES ($1, 1)
     ON CONFLICT (key) DO UPDATE SET version = a.version + 1
     RETURNING version`,
    [key],
  );
  return rows[0]!.version;
}

/**
 * Service A's write path: per message, the key's next sequence number; then the outbox rows
 * (`publish`: OutboxRepository.publish with `{ manager }`, or a saga step's `ctx.emit`), then the
 * `a_message` rows naming the outbox ids, all in the caller's transaction. Keys must be distinct
 * and sorted (one lock order for every transaction: no deadlocks).
 */
export async function produceMessages(
  manager: EntityManager,
  producer: string,
  messages: readonly ChaosMessage[],
  publish: (
    inputs: { destination: string; type: string; key: string; payload: ChaosPayload }[],
  ) => Promise<string[]>,
): Promise<string[]> {
  const inputs: { destination: string; type: string; key: string; payload: ChaosPayload }[] = [];
  for (const m of messages) {
    const seq = await nextSeq(manager, m.key);
    inputs.push({
      destination: m.destination,
      type: m.type,
      key: m.key,
      payload: { key: m.key, seq, origin: m.origin, type: m.type },
    });
  }
  const ids = await publish(inputs);
  await manager.query(
    `INSERT INTO chaos.a_message (message_id, key, seq, origin, destination, producer)
     SELECT id, key, seq, origin, destination, $6
     FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::text[])
       AS m (id, key, seq, origin, destination)`,
    [
      ids,
      inputs.map((i) => i.key),
      inputs.map((i) => i.payload.seq),
      inputs.map((i) => i.payload.origin),
      inputs.map((i) => i.destination),
      producer,
    ],
  );
  return ids;
}

/**
 * Service B's effect, in the inbox transaction: bump the key's apply state (its row lock orders the
 * applies of one key) and log the effect with the highest sequence number applied before it, so an
 * out-of-order apply is visible afterwards as `seq < prev_max_seq`.
 */
export async function applyEffect(
  manager: EntityManager,
  effect: {
    consumer: string;
    messageId: string;
    payload: ChaosPayload;
    attempt: number;
    deliveryAttempt: number;
    worker: string;
  },
): Promise<void> {
  await manager.query(
    `WITH k AS (
       INSERT INTO chaos.b_key_state AS b (key, applied, max_seq, prev_max) VALUES ($1, 1, $2, 0)
       ON CONFLICT (key) DO UPDATE
         SET applied = b.applied + 1, max_seq = GREATEST(b.max_seq, EXCLUDED.max_seq), prev_max = b.max_seq
       RETURNING applied, prev_max
     )
     INSERT INTO chaos.b_effect
       (consumer, message_id, key, seq, apply_no, prev_max_seq, attempt, delivery_attempt, worker)
     SELECT $3, $4, $1, $2, k.applied, k.prev_max, $5, $6, $7 FROM k`,
    [
      effect.payload.key,
      effect.payload.seq,
      effect.consumer,
      effect.messageId,
      effect.attempt,
      effect.deliveryAttempt,
      effect.worker,
    ],
  );
}

/** A payload as service B receives it, checked (a mangled payload is a finding, not a crash). */
export function parsePayload(payload: unknown): ChaosPayload {
  const p = payload as Partial<ChaosPayload> | null;
  if (
    !p ||
    typeof p.key !== 'string' ||
    typeof p.seq !== 'number' ||
    (p.origin !== 'order' && p.origin !== 'saga') ||
    typeof p.type !== 'string'
  ) {
    throw new Error(`not a chaos payload: ${JSON.stringify(payload)}`);
  }
  return p as ChaosPayload;
}
