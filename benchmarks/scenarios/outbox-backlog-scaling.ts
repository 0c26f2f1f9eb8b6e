import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { InMemoryBroker, OutboxRelay, PostgresOutboxStore } from '@sage/saga-outbox';
import { clientConfig, openSagaDataSources } from '../harness/database';
import {
  BENCH_KEYS,
  OUTBOX_TABLES,
  payloadBytes,
  preloadOutbox,
  resetOutboxTables,
} from '../harness/outbox-load';
import { BATCH_SIZE, MAX_IN_FLIGHT, PUBLISH_BATCH_SIZE } from '../harness/relay-defaults';
import type {
  BacklogPoint,
  OutboxBacklogScalingScenarioResult,
} from '../harness/results-relay-modes';
import { round } from '../harness/stats';
import { RELAY_MODES_FALLBACK } from './outbox-wal-relay-throughput';
import type { Scenario, ScenarioContext } from './scenario';

const NAME = 'outbox-backlog-scaling';
const RELAY_APP = 'sage-bench-backlog-relay';

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const outboxBacklogScaling: Scenario = {
  name: NAME,
  description:
    'Does the claim slow down when the backlog is large, or when relays compete for it? 1, 2 and 4 ' +
    'polling OutboxRelays (own DataSource each, library defaults: batch 500, NOTIFY off) drain a ' +
    'pre-loaded backlog into the in-memory broker (no broker cost, so the claim and mark are what is ' +
    'measured), once with a large backlog and (several times, median) with a small one. Rate = backlog ' +
    '÷ (start → last batch recorded sent). Every rate is shown as a ratio to one relay draining the ' +
    'small backlog.',

  async run(ctx: ScenarioContext): Promise<OutboxBacklogScalingScenarioResult> {
    const { target, poolSize } = ctx;
    const rm = ctx.profile.relayModes ?? RELAY_MODES_FALLBACK;
    const loader = new pg.Client(clientConfig(target, 'sage-bench-loader'));
    await loader.connect();
    const maxRelays = Math.max(...rm.backlogRelayCounts);
    const dataSources = await openSagaDataSources(target, maxRelays, poolSize, RELAY_APP);

    const drain = async (
      relays: number,
      backlog: number,
      stats: Record<string, number> = {},
    ): Promise<number> => {
      await resetOutboxTables(loader);
      await preloadOutbox(loader, backlog, 1000);
      await loader.query(`VACUUM (ANALYZE) ${OUTBOX_TABLES.outboxMessage}`);
      await loader.query('CHECKPOINT');
      await Promise.all(dataSources.slice(0, relays).map((ds) => ds.query('SELECT 1')));
      let sent = 0;
      // A fresh broker per drain: the in-memory broker keeps what it was given.
      const brokers = dataSources.slice(0, relays).map(() => new InMemoryBroker());
      const running = dataSources.slice(0, relays).map(
        (ds, i) =>
          new OutboxRelay({
            store: new PostgresOutboxStore(ds),
            broker: brokers[i]!,
            relayId: `bench-backlog-${i}`,
            batchSize: BATCH_SIZE,
            publishBatchSize: PUBLISH_BATCH_SIZE,
            maxInFlight: MAX_IN_FLIGHT,
            onBatch: (r) => (sent += r.sent),
          }),
      );
      const timeoutMs = Math.max(120_000, backlog * 5);
      const t0 = performance.now();
      running.forEach((r) => r.start());
      try {
        while (sent < backlog) {
          if (performance.now() - t0 > timeoutMs)
            throw new Error(
              `${relays} relay(s), backlog ${backlog}: ${sent} sent after ${timeoutMs} ms`,
            );
          await sleep(1);
        }
        return round(backlog / ((performance.now() - t0) / 1000), 1);
      } finally {
        await Promise.all(running.map((r) => r.stop()));
        for (const r of running) {
          const st = r.stats;
          const add = (k: string, v: number): void => void (stats[k] = (stats[k] ?? 0) + v);
          add('batches', st.batches);
          add('claimed', st.claimed);
          add('staleMarks', st.staleMarks);
          add('released', st.released);
          add('reaped', st.reaped);
          add('loopErrors', st.loop.errors);
        }
        await Promise.all(brokers.map((b) => b.close()));
      }
    };

    try {
      // Warm-up (JIT, plans, connections): one small drain per relay count, not recorded.
      for (const relays of rm.backlogRelayCounts) await drain(relays, rm.backlogSmall);
      const raw: Omit<BacklogPoint, 'ratioToBaseline'>[] = [];
      for (const relays of rm.backlogRelayCounts) {
        for (const backlog of [rm.backlogSmall, rm.backlogLarge]) {
          const loadAvg1m = round(os.loadavg()[0]!, 2);
          const reps = backlog === rm.backlogSmall ? rm.backlogSmallRepetitions : 1;
          const trialsPerSec: number[] = [];
          const relayStats: Record<string, number> = {};
          for (let i = 0; i < reps; i++)
            trialsPerSec.push(await drain(relays, backlog, relayStats));
          const perSec = round(median(trialsPerSec), 1);
          raw.push({ relays, backlog, trialsPerSec, perSec, loadAvg1m, relayStats });
          ctx.log(
            `  ${relays} relay(s), backlog ${backlog}: ${perSec} msg/s (drains ${trialsPerSec.join(', ')}), load ${loadAvg1m}; ` +
              Object.entries(relayStats)
                .map(([k, v]) => `${k} ${v}`)
                .join(', '),
          );
        }
      }
      const baselinePerSec =
        raw.find((p) => p.relays === 1 && p.backlog === rm.backlogSmall)?.perSec ??
        raw[0]?.perSec ??
        NaN;
      const points = raw.map((p) => ({
        ...p,
        ratioToBaseline: round(p.perSec / baselinePerSec, 3),
      }));
      ctx.log(
        `  ratio to 1 relay on ${rm.backlogSmall}: ` +
          points.map((p) => `${p.relays}×${p.backlog} ${p.ratioToBaseline}`).join(', '),
      );
      return {
        kind: 'outbox-backlog-scaling',
        name: NAME,
        description: this.description,
        config: {
          backlogLarge: rm.backlogLarge,
          backlogSmall: rm.backlogSmall,
          smallDrainsPerPoint: rm.backlogSmallRepetitions,
          relayCounts: rm.backlogRelayCounts.join(' / '),
          keys: BENCH_KEYS,
          payloadBytes: payloadBytes(),
          batchSize: BATCH_SIZE,
          poolSize,
          broker: 'InMemoryBroker (no latency)',
        },
        baselinePerSec,
        points,
      };
    } finally {
      await Promise.all(dataSources.map((ds) => ds.destroy()));
      await loader.end();
    }
  },
};
