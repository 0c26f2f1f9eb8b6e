/**
 * Chaos: PostgreSQL shut down (pg_ctl stop -m fast) and started again under a streaming WAL relay,
 * with publishes in flight at the moment it goes down.
 *
 * A server shutting down keeps its logical walsender until the client has confirmed everything it
 * was sent, and the relay confirms only after recording the outcomes, which the shutting-down
 * server refuses: the relay must end its replication session then (rather than retry the record
 * on it for ever), so the server stops, and stream again from the confirmed position once the
 * server is back: every message delivered, per key in commit order.
 *
 * The server is a private one (test/support/private-postgres.ts): other tests must not see it go.
 */
import { runMigrationsLocked } from '@sage/saga-outbox';
import { waitUntil } from '@sage/saga-outbox/testing';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';
import { PrivatePostgres } from '@test/support/private-postgres';
import { runWalPublicationMigration } from '@test/support/wal-postgres';
import { InMemoryBroker } from '../../libs/saga-outbox/src/brokers/memory/in-memory-broker';
import type { BrokerMessage, PublishResult } from '../../libs/saga-outbox/src/core/ports/broker';
import { WalOutboxRelay } from '../../libs/saga-outbox/src/core/outbox/wal-outbox-relay';
import {
  PostgresWalSource,
  replicationConnectionOf,
} from '../../libs/saga-outbox/src/persistence/postgres/postgres-wal-source';

jest.setTimeout(90_000);

/** Far above a fast shutdown's few hundred milliseconds; before the fix it never finished. */
const STOP_BOUND_MS = 20_000;

/** An in-memory broker whose publishes wait at a gate while it is closed. */
class GatedBroker extends InMemoryBroker {
  private open = true;
  private readonly waiting: (() => void)[] = [];
  entered = 0;

  hold(): void {
    this.open = false;
  }

  release(): void {
    this.open = true;
    for (const w of this.waiting.splice(0)) w();
  }

  override async publish(
    batch: readonly BrokerMessage[],
    signal?: AbortSignal,
  ): Promise<PublishResult[]> {
    this.entered++;
    if (!this.open) await new Promise<void>((resolve) => this.waiting.push(resolve));
    return super.publish(batch, signal);
  }
}

let pg: PrivatePostgres;
let ctx: OutboxTestContext;
let relay: WalOutboxRelay | undefined;

beforeAll(async () => {
  pg = await PrivatePostgres.start();
  ctx = await openOutboxTestContext(pg.connection, 4);
  await runMigrationsLocked(ctx.dataSource);
  await runWalPublicationMigration(ctx.dataSource);
});
afterAll(async () => {
  await relay?.stop();
  await ctx?.close();
  await pg?.destroy();
});

it('fast shutdown with publishes in flight: the relay lets the server stop, and delivers everything in key order after the restart', async () => {
  const broker = new GatedBroker();
  const source = new PostgresWalSource(ctx.dataSource, replicationConnectionOf(ctx.dataSource), {
    slot: 'restart_test',
    statusIntervalMs: 500,
  });
  relay = new WalOutboxRelay({ source, broker, standbyRetryMs: 100, publishBatchSize: 10 });
  await relay.check();
  relay.start();
  await waitUntil(() => relay!.stats.leader, 'streaming', 30_000);

  const keys = ['k0', 'k1', 'k2', 'k3'];
  const commitRound = (round: number): Promise<string[]> =>
    ctx.commit(
      keys.flatMap((key) =>
        [0, 1].map((i) => ({ destination: 'wal-restart', type: 't', key, payload: { round, i } })),
      ),
    );
  const ids = await commitRound(0);
  await waitUntil(() => relay!.stats.sent === 8, 'round 0');

  // Publishes held at the broker, then the server is told to stop: they are acked while it shuts
  // down, and their outcomes cannot be recorded any more.
  broker.hold();
  const entered = broker.entered;
  ids.push(...(await commitRound(1)));
  await waitUntil(() => broker.entered > entered, 'publishes in flight');
  const stopped = pg.stop().then(() => 'stopped' as const);
  setTimeout(() => broker.release(), 500).unref();
  let bound: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    stopped,
    new Promise<'hung'>((resolve) => (bound = setTimeout(() => resolve('hung'), STOP_BOUND_MS))),
  ]);
  clearTimeout(bound);
  if (outcome === 'hung') {
    // Let the server finish stopping (the relay's connection closed) before failing.
    await relay.stop();
    await stopped;
  }
  expect(outcome).toBe('stopped');
  expect(relay.stats.sessionsLost).toBeGreaterThanOrEqual(1);

  await pg.resume();
  ids.push(...(await commitRound(2)));
  await waitUntil(
    async () => (await ctx.store.stats()).sent === ids.length,
    'every message marked sent after the restart',
    45_000,
  );
  const published = broker.published.map((m) => m.id);
  expect(new Set(published)).toEqual(new Set(ids));
  // Per key, first deliveries in commit order.
  const firstSeen = [...new Set(published)];
  const position = new Map(firstSeen.map((id, i) => [id, i]));
  const committed = ids.map((id, i) => ({ id, key: keys[Math.floor((i % 8) / 2)]! }));
  for (const key of keys) {
    const positions = committed.filter((c) => c.key === key).map((c) => position.get(c.id)!);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
  }
});
