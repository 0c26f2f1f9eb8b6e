/**
 * WAL-streaming relay vs polling relay, same run, same broker adapter, same backlog: N messages
 * (transactions of 100, 50 keys) committed while no relay runs (the WAL relay's slot already
 * exists), then one relay drains them; rounds alternate polling / WAL on fresh databases. Prints
 * messages/s per round, the WAL/polling ratio of the medians and the load average around each
 * round. Needs wal_level = logical (scripts/services.sh).
 *
 *   eval "$(bash scripts/services.sh env postgres rabbitmq nats kafka)"
 *   node -r ts-node/register/transpile-only -r tsconfig-paths/register benchmarks/wal-relay-vs-polling.ts [messages] [rounds] [brokers: memory,kafka,rabbitmq,nats]
 */
import 'reflect-metadata';
import { loadavg } from 'node:os';
import { randomUUID } from 'node:crypto';
import { InMemoryBroker } from '../libs/saga-outbox/src/brokers/memory/in-memory-broker';
import { OutboxRelay } from '../libs/saga-outbox/src/core/outbox/outbox-relay';
import { WalOutboxRelay } from '../libs/saga-outbox/src/core/outbox/wal-outbox-relay';
import type { Broker } from '../libs/saga-outbox/src/core/ports/broker';
import {
  PostgresWalSource,
  replicationConnectionOf,
} from '../libs/saga-outbox/src/persistence/postgres/postgres-wal-source';
import { openOutboxTestContext, type OutboxTestContext } from '../test/support/outbox-test-support';
import { createWalTestDatabase } from '../test/support/wal-postgres';
import { brokerTargets, type BrokerTarget } from './harness/brokers';

const MESSAGES = Number(process.argv[2] ?? 5000);
const ROUNDS = Number(process.argv[3] ?? 2);
const WANTED = (process.argv[4] ?? 'memory,rabbitmq').split(',');

interface Round {
  broker: string;
  mode: 'polling' | 'wal';
  perSecond: number;
  load: number;
}

async function backlog(ctx: OutboxTestContext, destination: string): Promise<void> {
  for (let t = 0; t < MESSAGES / 100; t++)
    await ctx.commit(
      Array.from({ length: 100 }, (_, i) => ({
        destination,
        type: 'bench',
        key: `k${i % 50}`,
        payload: { t, i, pad: 'x'.repeat(200) },
      })),
    );
}

async function waitSent(ctx: OutboxTestContext): Promise<void> {
  for (;;) {
    const [row] = (await ctx.dataSource.query(
      `SELECT count(*)::int AS n FROM sage.outbox_message WHERE status = 'sent'`,
    )) as [{ n: number }];
    if (row.n >= MESSAGES) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function round(
  label: string,
  mode: 'polling' | 'wal',
  broker: Broker,
  destination: string,
): Promise<Round> {
  const db = await createWalTestDatabase();
  const ctx = await openOutboxTestContext(db.connection, 8);
  try {
    let start: () => void;
    let stop: () => Promise<void>;
    if (mode === 'wal') {
      const relay = new WalOutboxRelay({
        source: new PostgresWalSource(ctx.dataSource, replicationConnectionOf(ctx.dataSource), {
          slot: `bench_${randomUUID().replace(/-/g, '').slice(0, 12)}`,
        }),
        broker,
        standbyRetryMs: 20,
      });
      await relay.check(); // creates the slot: the backlog below is streamed
      start = () => relay.start();
      stop = () => relay.stop();
    } else {
      const relay = new OutboxRelay({ store: ctx.store, broker, pollIntervalMs: 20 });
      start = () => relay.start();
      stop = () => relay.stop();
    }
    await backlog(ctx, destination);
    const load0 = loadavg()[0]!;
    const t0 = performance.now();
    start();
    await waitSent(ctx);
    const ms = performance.now() - t0;
    await stop();
    const load = (load0 + loadavg()[0]!) / 2;
    const r = { broker: label, mode, perSecond: Math.round((MESSAGES / ms) * 1000), load };
    console.log(
      `${label.padEnd(9)} ${mode.padEnd(7)} ${String(r.perSecond).padStart(7)} msg/s  load ${load.toFixed(2)}`,
    );
    return r;
  } finally {
    await ctx.close();
    await db.cleanup();
  }
}

async function main(): Promise<void> {
  const runId = randomUUID().slice(0, 8);
  const { targets } = brokerTargets(runId);
  const brokers: { label: string; target?: BrokerTarget; make: () => Broker }[] = [];
  if (WANTED.includes('memory'))
    brokers.push({ label: 'memory', make: () => new InMemoryBroker({ latencyMs: 1 }) });
  for (const t of targets)
    if (WANTED.includes(t.kind)) brokers.push({ label: t.kind, target: t, make: () => t.sage() });
  const results: Round[] = [];
  console.log(`${MESSAGES} messages per round, ${ROUNDS} rounds per mode, loadavg(1m) shown`);
  for (const b of brokers) {
    await b.target?.setup();
    try {
      for (let i = 0; i < ROUNDS; i++)
        for (const mode of i % 2 ? (['wal', 'polling'] as const) : (['polling', 'wal'] as const)) {
          const broker = b.make();
          try {
            results.push(await round(b.label, mode, broker, b.target?.destination ?? 'bench'));
          } finally {
            await broker.close();
          }
          await b.target?.purge();
        }
    } finally {
      await b.target?.teardown();
    }
  }
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)]!;
  };
  for (const b of brokers) {
    const of = (mode: string): number[] =>
      results.filter((r) => r.broker === b.label && r.mode === mode).map((r) => r.perSecond);
    const p = median(of('polling'));
    const w = median(of('wal'));
    console.log(
      `${b.label}: polling ${p} msg/s, WAL ${w} msg/s, WAL/polling ${(w / p).toFixed(2)}`,
    );
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
