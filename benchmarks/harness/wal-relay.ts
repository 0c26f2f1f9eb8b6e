import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { DataSource, QueryRunner } from 'typeorm';
import {
  outboxWalPublicationMigration,
  PostgresWalSource,
  replicationConnectionOf,
  WalOutboxRelay,
  type Broker,
} from '@sage/saga-outbox';
import { MAX_IN_FLIGHT, PUBLISH_BATCH_SIZE } from './relay-defaults';

/**
 * The WAL-streaming relay (`outbox.relay.mode: 'wal'`) as the bench runs it: the publication
 * created by its opt-in migration, one replication slot per measured run, created fresh so the
 * relay streams only what is committed after it (a slot left from an earlier slice would replay
 * every other variant's rows), and always dropped afterwards (a leftover slot retains WAL and
 * keeps the bench database from being dropped).
 */

/** Every bench slot starts with this; prepareDatabase drops leftovers of a crashed run. */
export const BENCH_SLOT_PREFIX = 'sage_bench_';

/** Runs outboxWalPublicationMigration (idempotent) on the bench database. */
export async function ensureWalPublication(dataSource: DataSource): Promise<void> {
  const Migration = outboxWalPublicationMigration();
  const runner: QueryRunner = dataSource.createQueryRunner();
  try {
    await new Migration().up(runner);
  } finally {
    await runner.release();
  }
}

/** wal_level of the server, so a scenario can say why it did not run the WAL relay. */
export async function walLevel(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ wal_level: string }>('SHOW wal_level');
  return rows[0]?.wal_level ?? 'unknown';
}

/** Drops `slot` if it exists, waiting (up to 10 s) for its walsender to let go of it. */
export async function dropSlot(client: pg.Client, slot: string): Promise<void> {
  const end = performance.now() + 10_000;
  for (;;) {
    const { rows } = await client.query<{ active: boolean }>(
      'SELECT active FROM pg_replication_slots WHERE slot_name = $1',
      [slot],
    );
    if (!rows.length) return;
    if (!rows[0]!.active || performance.now() > end) {
      await client.query('SELECT pg_drop_replication_slot($1)', [slot]);
      return;
    }
    await sleep(20);
  }
}

/** Drops every inactive bench slot of `database` (left by a run that died before its cleanup). */
export async function dropLeftoverBenchSlots(client: pg.Client, database: string): Promise<void> {
  await client.query(
    `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
     WHERE database = $1 AND slot_name LIKE $2 AND NOT active`,
    [database, `${BENCH_SLOT_PREFIX}%`],
  );
}

/**
 * A WAL relay with the polling relay's publish settings on a fresh `slot` (dropped first if left
 * over, then created by `check()`): what it streams is what is committed from now on.
 */
export async function freshWalRelay(opts: {
  admin: pg.Client;
  dataSource: DataSource;
  broker: Broker;
  slot: string;
  relayId?: string;
}): Promise<WalOutboxRelay> {
  await dropSlot(opts.admin, opts.slot);
  const relay = new WalOutboxRelay({
    source: new PostgresWalSource(opts.dataSource, replicationConnectionOf(opts.dataSource), {
      slot: opts.slot,
    }),
    broker: opts.broker,
    relayId: opts.relayId,
    publishBatchSize: PUBLISH_BATCH_SIZE,
    maxInFlight: MAX_IN_FLIGHT,
    standbyRetryMs: 50,
  });
  await relay.check();
  return relay;
}

/** Starts `relay` and resolves once it holds the slot and streams (timeout 15 s). */
export async function startStreaming(relay: WalOutboxRelay): Promise<void> {
  relay.start();
  const end = performance.now() + 15_000;
  while (!relay.stats.leader) {
    if (performance.now() > end) throw new Error('WAL relay: not streaming within 15 s');
    await sleep(5);
  }
}
