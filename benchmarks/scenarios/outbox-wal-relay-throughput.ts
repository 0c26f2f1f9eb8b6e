import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import {
  OutboxRelay,
  PostgresOutboxStore,
  uuidv7,
  type Broker,
  type BrokerMessage,
} from '@sage/saga-outbox';
import { forEachBroker, type BrokerTarget, type RawPublisher } from '../harness/brokers';
import { clientConfig, sagaDataSource } from '../harness/database';
import { CpuMeter, meanCpu, type CpuPerMessage } from '../harness/cpu-meter';
import {
  benchMessage,
  BENCH_KEYS,
  OUTBOX_TABLES,
  payloadBytes,
  preloadOutbox,
  resetOutboxTables,
} from '../harness/outbox-load';
import {
  BATCH_SIZE,
  CALLS_IN_FLIGHT,
  MAX_IN_FLIGHT,
  PUBLISH_BATCH_SIZE,
} from '../harness/relay-defaults';
import type { BrokerKindName } from '../harness/results';
import type {
  DrainMode,
  ModeDrain,
  OutboxWalRelayScenarioResult,
  RelayModesProfile,
  WalRelayRun,
} from '../harness/results-relay-modes';
import { round } from '../harness/stats';
import {
  BENCH_SLOT_PREFIX,
  dropSlot,
  ensureWalPublication,
  freshWalRelay,
  walLevel,
} from '../harness/wal-relay';
import { windowed } from './outbox-broker-throughput';
import type { Scenario, ScenarioContext } from './scenario';

const NAME = 'outbox-wal-relay-throughput';
const POLLING_APP = 'sage-bench-mode-polling';
const WAL_APP = 'sage-bench-mode-wal';
const SLOT = `${BENCH_SLOT_PREFIX}wal_throughput`;

/** Sizes when the profile has no relayModes block (older --profile files, ad-hoc runs). */
export const RELAY_MODES_FALLBACK: RelayModesProfile = {
  drainMessages: 5_000,
  drainRepetitions: 1,
  backlogLarge: 10_000,
  backlogSmall: 1_000,
  backlogRelayCounts: [1, 2, 4],
  backlogSmallRepetitions: 3,
};

function built(count: number, destination: string): BrokerMessage[] {
  const now = new Date();
  return Array.from({ length: count }, (_, i) => {
    const m = benchMessage(i, uuidv7(), destination);
    return {
      id: m.id!,
      destination,
      key: m.key ?? null,
      type: m.type,
      payload: m.payload,
      headers: {},
      time: now,
    };
  });
}

async function waitFor(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > end) throw new Error(`${what}: not done within ${timeoutMs} ms`);
    await sleep(2);
  }
}

export const outboxWalRelayThroughput: Scenario = {
  name: NAME,
  description:
    'The same backlog (N messages, 1,000 keys) drained per broker by one relay of each mode, through ' +
    'the same Sage adapter: the polling relay (claim → publish → mark, batch 500), the WAL-streaming ' +
    "relay (`outbox.relay.mode: 'wal'`: pgoutput stream of the outbox INSERTs → publish → mark; its " +
    'slot is created before the backlog is committed, so it decodes all of it while timed), and the raw ' +
    'client publishing the same messages from memory with the same window (no database). Modes ' +
    'alternate per repetition. CPU per message: this Node process, the PostgreSQL processes of the ' +
    "mode's own connections (for WAL: its DataSource and its walsender), and the whole server.",

  async run(ctx: ScenarioContext): Promise<OutboxWalRelayScenarioResult> {
    const { target, poolSize } = ctx;
    const rm = ctx.profile.relayModes ?? RELAY_MODES_FALLBACK;
    const n = rm.drainMessages;
    const runId = `${Date.now().toString(36)}-w`;
    const loader = new pg.Client(clientConfig(target, 'sage-bench-loader'));
    const monitor = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    await Promise.all([loader.connect(), monitor.connect()]);
    const level = await walLevel(loader);
    const walNotRun =
      level === 'logical'
        ? undefined
        : `wal_level is ${level}; the WAL relay needs wal_level = logical`;
    if (walNotRun) ctx.log(`  wal: not run (${walNotRun})`);
    const pollingDs: DataSource = sagaDataSource(target, poolSize, POLLING_APP);
    const walDs: DataSource = sagaDataSource(target, poolSize, WAL_APP);
    await pollingDs.initialize();
    await walDs.initialize();
    if (!walNotRun) await ensureWalPublication(walDs);
    const drainTimeoutMs = Math.max(120_000, n * 10);
    const modes: DrainMode[] = walNotRun ? ['polling', 'raw'] : ['polling', 'wal', 'raw'];

    const measureBroker = async (bt: BrokerTarget): Promise<WalRelayRun> => {
      const broker: Broker = bt.sage();
      const raw: RawPublisher = await bt.raw();
      const trials = new Map<DrainMode, ModeDrain['trials']>(modes.map((m) => [m, []]));
      const cpu = new Map<DrainMode, CpuPerMessage[]>(modes.map((m) => [m, []]));
      try {
        // Connect and provision outside any timed drain.
        await broker.publish(built(1, bt.destination));
        await raw.publish(built(1, bt.destination));

        const load = async (): Promise<void> => {
          await preloadOutbox(loader, n, 1000, bt.destination);
          await loader.query(`VACUUM (ANALYZE) ${OUTBOX_TABLES.outboxMessage}`);
          await loader.query('CHECKPOINT');
        };

        const drain = async (mode: DrainMode): Promise<void> => {
          await resetOutboxTables(loader);
          await bt.purge();
          const meter = new CpuMeter(
            monitor,
            mode === 'polling' ? [POLLING_APP] : mode === 'wal' ? [WAL_APP] : [],
          );
          const loadAvg1m = round(os.loadavg()[0]!, 2);
          let elapsedMs: number;
          let used: CpuPerMessage;
          if (mode === 'raw') {
            const all = built(n, bt.destination);
            meter.start();
            const t0 = performance.now();
            await windowed(raw, all);
            elapsedMs = performance.now() - t0;
            used = await meter.stop(n);
          } else if (mode === 'polling') {
            await load();
            let sent = 0;
            const relay = new OutboxRelay({
              store: new PostgresOutboxStore(pollingDs),
              broker,
              relayId: `bench-polling-${bt.kind}`,
              batchSize: BATCH_SIZE,
              publishBatchSize: PUBLISH_BATCH_SIZE,
              maxInFlight: MAX_IN_FLIGHT,
              onBatch: (r) => (sent += r.sent),
            });
            meter.start();
            const t0 = performance.now();
            relay.start();
            try {
              await waitFor(`polling relay → ${bt.kind}`, () => sent >= n, drainTimeoutMs);
              elapsedMs = performance.now() - t0;
              used = await meter.stop(n);
            } finally {
              await relay.stop();
            }
          } else {
            const relay = await freshWalRelay({
              admin: loader,
              dataSource: walDs,
              broker,
              slot: SLOT,
              relayId: `bench-wal-${bt.kind}`,
            });
            try {
              await load(); // committed after the slot exists: streamed, decoded while timed
              meter.start();
              const t0 = performance.now();
              relay.start();
              try {
                await waitFor(
                  `WAL relay → ${bt.kind}`,
                  () => relay.stats.sent >= n,
                  drainTimeoutMs,
                );
                elapsedMs = performance.now() - t0;
                used = await meter.stop(n);
              } finally {
                await relay.stop();
              }
            } finally {
              await dropSlot(loader, SLOT);
            }
          }
          trials.get(mode)!.push({
            messages: n,
            elapsedMs: round(elapsedMs, 1),
            perSec: round(n / (elapsedMs / 1000), 1),
            loadAvg1m,
          });
          cpu.get(mode)!.push(used);
        };

        for (let rep = 0; rep < rm.drainRepetitions; rep++)
          for (const mode of rep % 2 === 0 ? modes : [...modes].reverse()) await drain(mode);

        const result: Partial<Record<DrainMode, ModeDrain>> = {};
        for (const mode of modes) {
          const t = trials.get(mode)!;
          const ms = t.reduce((a, x) => a + x.elapsedMs, 0);
          result[mode] = {
            trials: t,
            throughputPerSec: round((t.length * n) / (ms / 1000), 1),
            cpuPerMsg: meanCpu(cpu.get(mode)!),
          };
        }
        const rate = (m: DrainMode): number => result[m]?.throughputPerSec ?? NaN;
        const ratio = {
          walToRaw: round(rate('wal') / rate('raw'), 3),
          pollingToRaw: round(rate('polling') / rate('raw'), 3),
          walToPolling: round(rate('wal') / rate('polling'), 3),
        };
        ctx.log(
          `  ${bt.kind}: ` +
            modes
              .map((m) => {
                const c = result[m]!.cpuPerMsg;
                return `${m} ${rate(m)} msg/s (node ${c.nodeUs} µs, pg own ${c.pgOwnUs ?? '?'} µs, pg all ${c.pgServerUs ?? '?'} µs per msg)`;
              })
              .join(' | ') +
            ` | wal/raw ${ratio.walToRaw}, polling/raw ${ratio.pollingToRaw}, load ${round(os.loadavg()[0]!, 2)}`,
        );
        return {
          broker: bt.kind as BrokerKindName,
          address: bt.address,
          client: bt.client,
          modes: result,
          ratio,
        };
      } finally {
        await broker.close().catch(() => undefined);
        await raw.close().catch(() => undefined);
      }
    };

    try {
      const { results, skipped } = await forEachBroker(runId, ctx.log, measureBroker);
      return {
        kind: 'outbox-wal-relay-throughput',
        name: NAME,
        description: this.description,
        labels: {
          polling:
            'one OutboxRelay (polling, batch 500, own DataSource) → Sage adapter; timed to the last batch recorded sent',
          wal: "one WalOutboxRelay (`outbox.relay.mode: 'wal'`, own DataSource + replication connection) → Sage adapter; timed to the last message recorded sent",
          raw: `the adapter's client library publishing the same messages built in memory, ${CALLS_IN_FLIGHT} calls of ${PUBLISH_BATCH_SIZE} in flight, no database`,
        },
        config: {
          messages: n,
          repetitions: rm.drainRepetitions,
          keys: BENCH_KEYS,
          payloadBytes: payloadBytes(),
          batchSize: BATCH_SIZE,
          publishBatchSize: PUBLISH_BATCH_SIZE,
          maxInFlight: MAX_IN_FLIGHT,
          poolSize,
          walLevel: level,
        },
        brokers: results.map(
          (r): WalRelayRun =>
            r.result ?? {
              broker: r.target.kind as BrokerKindName,
              address: r.target.address,
              client: r.target.client,
              modes: {},
              error: r.error,
            },
        ),
        ...(walNotRun ? { walNotRun } : {}),
        skipped,
      };
    } finally {
      await dropSlot(loader, SLOT).catch(() => undefined);
      await pollingDs.destroy();
      await walDs.destroy();
      await Promise.all([loader.end(), monitor.end()]);
    }
  },
};
