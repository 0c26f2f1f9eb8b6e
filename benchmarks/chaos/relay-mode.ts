/**
 * What the chaos run does differently with `--relay-mode wal` (the WAL-streaming relay,
 * docs/outbox.md "WAL-streaming relay"), in one place:
 *
 * - the private PostgreSQL runs with `wal_level = logical` (scripts/services.sh configures every
 *   server it starts that way, the private ones included); the run checks it rather than trusts it;
 * - service A's database gets the publication migration (`outboxWalPublicationMigration()`) after
 *   Sage's own;
 * - the standalone relays run with `SAGE_RELAY_MODE=wal` on one slot per broker run (the private
 *   server outlives a broker's run: a slot of another database would be unusable, and a slot left
 *   behind retains WAL), which is dropped once the relays have stopped. One relay streams, the
 *   others stand by and take over when it dies: that is the behaviour under test;
 * - optimistic sending stays off (it is refused in this mode; service A has no broker anyway);
 * - duplicates: the inbox still must apply every message exactly once, and per key in order, but
 *   the relay may publish again what it had published and not yet confirmed when it (or its
 *   connection, or PostgreSQL) died: at most `maxWindow` plus one transaction's messages per crash,
 *   and after a PostgreSQL restart or crash also what was committed since its last checkpoint (the
 *   slot's position is persisted at checkpoints). The checker compares the duplicate deliveries the inbox
 *   absorbed with that bound.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { sagaDataSource, type PgTarget } from '../harness/database';
import { ensureWalPublication } from '../harness/wal-relay';
import type { FaultRecord, FaultType } from './faults';
import type { ChaosBroker } from './topology';

export type RelayMode = 'polling' | 'wal';
export const RELAY_MODES: readonly RelayMode[] = ['polling', 'wal'];

/**
 * The relays' unconfirmed window (`SAGE_RELAY_WAL_MAX_WINDOW`, `outbox.relay.wal.maxWindow`; the
 * relay's default is 10000): set below the default so the duplicate bound it gives says something
 * at CI's small sizes, and far above what the run's rate keeps unconfirmed (no throughput cost).
 */
export const WAL_MAX_WINDOW = 1000;

/** The replication slot of one broker's run (a plain identifier: see wal-names.ts). */
export function walSlotName(broker: ChaosBroker): string {
  return `sage_outbox_chaos_${broker}`;
}

/** The relay processes' extra environment in `mode`. */
export function relayModeEnv(mode: RelayMode, broker: ChaosBroker): Record<string, string> {
  return mode === 'wal'
    ? {
        SAGE_RELAY_MODE: 'wal',
        SAGE_RELAY_WAL_SLOT: walSlotName(broker),
        SAGE_RELAY_WAL_MAX_WINDOW: String(WAL_MAX_WINDOW),
      }
    : {};
}

/** Checks `wal_level` and runs the publication migration on service A's freshly migrated database. */
export async function prepareWalDatabase(target: PgTarget, client: pg.Client): Promise<void> {
  const { rows } = await client.query<{ wal_level: string }>('SHOW wal_level');
  if (rows[0]?.wal_level !== 'logical')
    throw new Error(
      `--relay-mode wal needs wal_level = logical on the private PostgreSQL, which runs with ${rows[0]?.wal_level}: ` +
        'scripts/services.sh configures it; a server started by an older version restarts once to apply it',
    );
  const dataSource = sagaDataSource(target, 1, 'sage-chaos-migrate');
  await dataSource.initialize();
  try {
    await ensureWalPublication(dataSource);
  } finally {
    await dataSource.destroy();
  }
}

/**
 * Drops the run's slot once every relay stopped (a slot left behind retains WAL for ever), waiting
 * up to `timeoutMs` for the server to notice a killed streamer's connection is gone.
 */
export async function dropWalSlot(
  client: pg.Client,
  broker: ChaosBroker,
  timeoutMs = 10_000,
): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await client.query<{ active: boolean }>(
      `SELECT active FROM pg_replication_slots WHERE slot_name = $1`,
      [walSlotName(broker)],
    );
    if (!rows.length) return false;
    if (!rows[0]!.active || Date.now() >= until) break;
    await sleep(250);
  }
  await client.query(`SELECT pg_drop_replication_slot($1)`, [walSlotName(broker)]);
  return true;
}

export interface DuplicateBound {
  /** maxWindow plus one transaction's messages, per fault. */
  perFault: number;
  /** Faults that may end a streaming session uncleanly or make a publish be retried. */
  faults: number;
  /**
   * PostgreSQL restarts and kills only: what the slot may replay on top, the messages committed
   * since the last checkpoint before the fault. PostgreSQL persists a logical slot's position at
   * checkpoints, so after a crash the slot may go back to it (PostgreSQL docs, "Logical Decoding
   * Concepts"); before PostgreSQL 17 even a clean shutdown does not write a slot whose only change
   * is its confirmed position. Counted over `checkpoint_timeout`, the longest between checkpoints.
   */
  crashRewind: number;
  bound: number;
  /** Deliveries the inbox skipped as already handled (every duplicate that reached service B). */
  observed: number;
  ok: boolean;
}

/**
 * The WAL relay's duplicate bound over a run: per fault, at most `maxWindow` plus one
 * transaction's messages (`perTx`; a saga step's transaction emits one), as docs/outbox.md states
 * it; counted for every fault that may cut a streaming session or a publish short (a relay kill, a
 * broker restart, a PostgreSQL restart or kill), whoever it hit. Plus `crashRewind`: what the
 * slot may replay after PostgreSQL restarts and kills (crashRewindOf).
 */
export function walDuplicateBound(
  records: readonly FaultRecord[],
  perTx: number,
  observed: number,
  crashRewind = 0,
  maxWindow = WAL_MAX_WINDOW,
): DuplicateBound {
  const cutting: ReadonlySet<FaultType> = new Set([
    'relay-kill',
    'broker-restart',
    'pg-restart',
    'pg-kill',
  ]);
  const faults = records.filter((r) => cutting.has(r.type)).length;
  const perFault = maxWindow + Math.max(1, perTx);
  const bound = faults * perFault + crashRewind;
  return { perFault, faults, crashRewind, bound, observed, ok: observed <= bound };
}

/**
 * Per PostgreSQL restart or kill -9, the messages service A committed in the `checkpoint_timeout`
 * before it: at most what the slot, gone back to its position at the last checkpoint, streams again.
 */
export async function crashRewindOf(
  serviceA: pg.Client,
  records: readonly FaultRecord[],
): Promise<number> {
  const kills = records
    .filter((r) => r.type === 'pg-kill' || r.type === 'pg-restart')
    .map((r) => r.startedAt / 1000);
  if (!kills.length) return 0;
  const { rows } = await serviceA.query<{ n: number }>(
    `SELECT count(*)::int AS n
     FROM unnest($1::float8[]) AS k (at)
     JOIN chaos.a_message m
       ON m.committed_at <= to_timestamp(k.at)
      AND m.committed_at > to_timestamp(k.at) - current_setting('checkpoint_timeout')::interval`,
    [kills],
  );
  return rows[0]?.n ?? 0;
}

/**
 * Streaming sessions the relays started (each "outbox WAL relay streaming" line in their logs):
 * the first streamer, then one per takeover after a streamer died or lost its connection.
 */
export function streamingSessions(logDir: string): number {
  let n = 0;
  for (const file of readdirSync(logDir).filter((f) => /^relay-\d+\.log$/.test(f)))
    n +=
      readFileSync(path.join(logDir, file), 'utf8').split('outbox WAL relay streaming').length - 1;
  return n;
}
