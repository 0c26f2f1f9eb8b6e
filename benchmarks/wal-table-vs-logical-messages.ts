/**
 * The prototype behind the WAL relay's design choice (docs/outbox.md, "Why a publication on the
 * table"): an outbox row streamed through a `pgoutput` publication vs a transactional logical
 * message (`pg_logical_emit_message(true, …)`, no row). Same payload, one message per transaction,
 * alternating phases on one database: commits/s of the writers, WAL bytes per message, and the
 * server's decode time for the slot (`pg_logical_slot_get_binary_changes`). Prints loadavg.
 *
 *   eval "$(bash scripts/services.sh env postgres)"
 *   node -r ts-node/register/transpile-only -r tsconfig-paths/register benchmarks/wal-table-vs-logical-messages.ts [messages] [rounds]
 */
import 'reflect-metadata';
import { loadavg } from 'node:os';
import { Pool } from 'pg';
import { createWalTestDatabase } from '../test/support/wal-postgres';

const MESSAGES = Number(process.argv[2] ?? 2000);
const ROUNDS = Number(process.argv[3] ?? 2);
const WRITERS = 4;

const payload = (i: number): string => JSON.stringify({ orderId: i, pad: 'x'.repeat(200) });

async function main(): Promise<void> {
  const db = await createWalTestDatabase();
  const pool = new Pool({ ...db.connection, max: WRITERS + 1 });
  const lsn = async (): Promise<string> =>
    (await pool.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;
  const bytes = async (from: string): Promise<number> =>
    Number(
      (
        await pool.query<{ b: string }>(
          'SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::text AS b',
          [from],
        )
      ).rows[0]!.b,
    );
  const results: Record<string, { tps: number[]; walBytes: number[]; decodeMs: number[] }> = {
    table: { tps: [], walBytes: [], decodeMs: [] },
    'table-no-notify': { tps: [], walBytes: [], decodeMs: [] },
    message: { tps: [], walBytes: [], decodeMs: [] },
  };
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const kinds = ['table', 'table-no-notify', 'message'] as const;
      for (const kind of r % 2 ? [...kinds].reverse() : kinds) {
        // The outbox's NOTIFY trigger (a hint for polling relays) serialises commits on the
        // notification queue; the WAL relay does not need it.
        await pool.query(
          `ALTER TABLE sage.outbox_message ${kind === 'table-no-notify' ? 'DISABLE' : 'ENABLE'} TRIGGER outbox_message_notify`,
        );
        const slot = `proto_${kind.replace(/-/g, '_')}_${r}`;
        await pool.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
        const from = await lsn();
        const t0 = performance.now();
        let next = 0;
        await Promise.all(
          Array.from({ length: WRITERS }, async () => {
            for (let i = next++; i < MESSAGES; i = next++) {
              if (kind !== 'message')
                await pool.query(
                  `INSERT INTO sage.outbox_message (id, destination, type, key, payload, headers)
                   VALUES (gen_random_uuid(), 'orders', 'order.placed', $1, $2::jsonb, '{}'::jsonb)`,
                  [`k${i % 50}`, payload(i)],
                );
              else
                await pool.query(`SELECT pg_logical_emit_message(true, 'sage', $1::text)`, [
                  JSON.stringify({
                    destination: 'orders',
                    type: 'order.placed',
                    key: `k${i % 50}`,
                    payload: payload(i),
                  }),
                ]);
            }
          }),
        );
        const ms = performance.now() - t0;
        const wal = await bytes(from);
        const d0 = performance.now();
        await pool.query(
          `SELECT count(*) FROM pg_logical_slot_get_binary_changes($1, NULL, NULL,
             'proto_version', '1', 'publication_names', 'sage_outbox', 'messages', 'true')`,
          [slot],
        );
        const decodeMs = performance.now() - d0;
        await pool.query('SELECT pg_drop_replication_slot($1)', [slot]);
        results[kind]!.tps.push((MESSAGES / ms) * 1000);
        results[kind]!.walBytes.push(wal / MESSAGES);
        results[kind]!.decodeMs.push(decodeMs);
        console.log(
          `${kind.padEnd(15)} ${Math.round((MESSAGES / ms) * 1000)} commits/s, ${Math.round(wal / MESSAGES)} WAL bytes/msg, decode ${Math.round(decodeMs)} ms / ${MESSAGES}  load ${loadavg()[0]!.toFixed(2)}`,
        );
      }
    }
    const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    const m = results.message!;
    for (const kind of ['table', 'table-no-notify'] as const) {
      const t = results[kind]!;
      console.log(
        `logical message / ${kind}: commits/s ${(avg(m.tps) / avg(t.tps)).toFixed(2)}, WAL bytes ${(avg(m.walBytes) / avg(t.walBytes)).toFixed(2)}, decode time ${(avg(m.decodeMs) / avg(t.decodeMs)).toFixed(2)}`,
      );
    }
  } finally {
    await pool.end();
    await db.cleanup();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
