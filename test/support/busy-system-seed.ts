/**
 * A million-row Sage database for plan tests: the status and key mix a busy system has, loaded
 * with INSERT ... SELECT generate_series (in short chunks), then analysed.
 */
import { inboxTables } from '../../libs/saga-outbox/src/persistence/postgres/inbox-tables';
import { outboxTables } from '../../libs/saga-outbox/src/persistence/postgres/outbox-tables';
import { sagaSchema } from '../../libs/saga-outbox/src/persistence/postgres/schema-name';

const schema = sagaSchema();
const outbox = outboxTables(schema);
const inbox = inboxTables(schema);

export const SAGA_NAMES = ['order-fulfilment', 'payment-capture', 'shipment', 'refund', 'signup'];
export const SAGA_VERSIONS = ['v1', 'v2'];

/**
 * A version 7 UUID for the instant `at` (an SQL expression), as Sage's ids are: time-ordered, so a
 * load appends to the primary keys' right edge, as production inserts do, and in a fraction of the
 * time random UUIDs take.
 */
const uuidv7At = (at: string): string =>
  `(SELECT (substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7' || substr(r, 16))::uuid
    FROM (SELECT lpad(to_hex((extract(epoch FROM ${at}) * 1000)::bigint), 12, '0') AS h,
                 gen_random_uuid()::text AS r) AS v7)`;

/**
 * The load, as statement lists that can run in parallel on separate connections (each starts by
 * turning triggers off for its session), to be followed by `busySystemAnalyze`. INSERT ... SELECT
 * generate_series, in chunks of at most `chunk` rows per transaction: one 20-second transaction
 * would hold back vacuum on the shared server for the int-specs running beside it (a chunk of
 * 25,000 rows commits in well under a second on an idle machine). Triggers (audit rows,
 * NOTIFY) and foreign-key checks are off for the load only (session_replication_role), which
 * changes nothing in the plans. Mixes, of `n` rows:
 * - outbox: ~97.2% sent, ~1.3% pending and due, ~0.4% pending backing off, ~0.3% claimed (a third
 *   with an expired lease), ~0.8% dead letters; 10 destinations, 20 types, 50,000 keys, 10% no key;
 *   the unsent rows are the newest, as behind a relay that keeps up;
 * - sagas: 95% completed, 2% compensated, 0.5% failed, 1% running, 1% waiting (a tenth due), 0.5%
 *   compensating (of the driven ones a fifth unowned, a fifth with an expired lease); 5 names, 2
 *   versions, half with an idempotency key; one step row each;
 * - inbox: 99.5% processed, 0.5% dead letters over 8 consumers; failure records for n / 500.
 */
export const busySystemSeed = (n: number, chunk = 25_000): string[][] => [
  [
    `SET session_replication_role = replica`,
    ...ranges(n, chunk).map(
      ([from, to]) => `INSERT INTO ${outbox.outboxMessage}
     (id, txid, destination, key, type, payload, headers, status, attempts, next_attempt_at,
      claim_token, lease_until, created_at, sent_at, last_error, dead_lettered_at)
   SELECT ${uuidv7At('c.at')},
          greatest(3, pg_current_xact_id()::text::bigint - 1 - (${n} - i) / 8)::text::xid8,
          'topic-' || (i % 10),
          CASE WHEN i % 10 = 0 THEN NULL ELSE 'order-' || (i % 50000) END,
          'order.event.' || (i % 20),
          jsonb_build_object('n', i),
          '{}'::jsonb,
          s.status,
          CASE s.status WHEN 'dead_letter' THEN 10 WHEN 'sent' THEN 1 ELSE i % 3 END,
          CASE WHEN s.status = 'pending' AND i % 4 = 0 THEN clock_timestamp() + interval '30 seconds'
               ELSE c.at END,
          CASE WHEN s.status = 'claimed' THEN gen_random_uuid() END,
          CASE WHEN s.status = 'claimed'
               THEN clock_timestamp() + CASE WHEN i % 3 = 0 THEN interval '-1 minute' ELSE interval '30 seconds' END END,
          c.at,
          CASE WHEN s.status = 'sent' THEN c.at + interval '20 milliseconds' END,
          CASE WHEN s.status = 'dead_letter' THEN 'broker refused the message' END,
          CASE WHEN s.status = 'dead_letter' THEN c.at END
   FROM generate_series(${from}, ${to}) AS i
   CROSS JOIN LATERAL (SELECT clock_timestamp() - (${n} - i) * interval '50 milliseconds' AS at) c
   CROSS JOIN LATERAL (SELECT CASE
            WHEN i > ${n} - ${n} * 20 / 1000 THEN CASE WHEN i % 7 = 0 THEN 'claimed' ELSE 'pending' END
            WHEN i % 125 = 0 THEN 'dead_letter'
            ELSE 'sent' END AS status) s`,
    ),
  ],
  [
    `SET session_replication_role = replica`,
    // One step row per saga, in the same statement (the listing's awaiting-steps probe reads
    // saga_step by primary key).
    ...ranges(n, chunk).map(
      ([from, to]) => `WITH instance AS (
   INSERT INTO ${schema.sagaInstance}
     (id, name, version, status, input, idempotency_key, owner, lease_until, created_at, updated_at,
      wake_at, error, failed_step)
   SELECT ${uuidv7At('c.at')},
          (ARRAY['${SAGA_NAMES.join("','")}'])[1 + i % ${SAGA_NAMES.length}],
          CASE WHEN i > ${n} / 2 THEN 'v2' ELSE 'v1' END,
          s.status,
          jsonb_build_object('orderId', i),
          CASE WHEN i % 2 = 0 THEN 'key-' || i END,
          CASE WHEN s.status IN ('running', 'compensating') AND (i / 5) % 5 <> 0 THEN 'worker-' || (i % 4) END,
          CASE WHEN s.status IN ('running', 'compensating') AND (i / 5) % 5 <> 0
               THEN clock_timestamp() + CASE WHEN (i / 5) % 5 = 1 THEN interval '-1 minute' ELSE interval '30 seconds' END END,
          c.at, c.at + interval '2 seconds',
          CASE WHEN s.status = 'waiting'
               THEN clock_timestamp() + CASE WHEN (i / 5) % 10 = 0 THEN interval '-5 seconds' ELSE interval '10 minutes' END END,
          CASE WHEN s.status = 'failed' THEN 'card declined' END,
          CASE WHEN s.status = 'failed' THEN 'capture' END
   FROM generate_series(${from}, ${to}) AS i
   CROSS JOIN LATERAL (SELECT clock_timestamp() - (${n} - i) * interval '100 milliseconds' AS at) c
   CROSS JOIN LATERAL (SELECT CASE
            WHEN i > ${n} - ${n} * 25 / 1000 THEN (ARRAY['running', 'running', 'waiting', 'waiting', 'compensating'])[1 + i % 5]
            WHEN i % 200 = 0 THEN 'failed'
            WHEN i % 50 = 1 THEN 'compensated'
            ELSE 'completed' END AS status) s
   RETURNING id, status, created_at, updated_at, wake_at)
   INSERT INTO ${schema.sagaStep} (saga_id, name, position, status, attempts, started_at, completed_at, reply_deadline)
   SELECT id, 'capture', 0,
          CASE status WHEN 'completed' THEN 'completed' WHEN 'waiting' THEN 'waiting'
                      WHEN 'compensated' THEN 'compensated' WHEN 'failed' THEN 'failed' ELSE 'pending' END,
          1, created_at, CASE WHEN status = 'completed' THEN updated_at END,
          CASE WHEN status = 'waiting' THEN wake_at END
   FROM instance`,
    ),
  ],
  [
    `SET session_replication_role = replica`,
    ...ranges(n, chunk).map(
      ([
        from,
        to,
      ]) => `INSERT INTO ${inbox.inboxMessage} (consumer, message_id, processed_at, status, attempts, last_error, message)
   SELECT 'consumer-' || (i % 8), ${uuidv7At(`clock_timestamp() - (${n} - i) * interval '50 milliseconds'`)}::text,
          clock_timestamp() - (${n} - i) * interval '50 milliseconds',
          CASE WHEN i % 200 = 0 THEN 'dead_letter' ELSE 'processed' END,
          CASE WHEN i % 200 = 0 THEN 5 ELSE 1 END,
          CASE WHEN i % 200 = 0 THEN 'handler rejected the message' END,
          CASE WHEN i % 200 = 0 THEN jsonb_build_object('n', i) END
   FROM generate_series(${from}, ${to}) AS i`,
    ),
    `INSERT INTO ${inbox.inboxFailure} (consumer, message_id, attempts, last_error)
   SELECT 'consumer-' || (i % 8), gen_random_uuid()::text, 1 + i % 4, 'handler threw'
   FROM generate_series(1, ${n} / 500) AS i`,
  ],
];

/** [from, to] ranges (1-based, inclusive) of at most `size` covering 1..n. */
function ranges(n: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  for (let from = 1; from <= n; from += size) out.push([from, Math.min(n, from + size - 1)]);
  return out;
}

/** Fresh statistics for the planner, after the load. */
export const busySystemAnalyze = `ANALYZE ${outbox.outboxMessage}, ${schema.sagaInstance}, ${schema.sagaStep}, ${inbox.inboxMessage}, ${inbox.inboxFailure}`;
