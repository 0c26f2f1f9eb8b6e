import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { EntityManager } from 'typeorm';
import {
  OutboxPublisher,
  OutboxRelay,
  PostgresOutboxStore,
  uuidv7,
  type Broker,
} from '@sage/saga-outbox';
import {
  brokerMessageOf,
  forEachBroker,
  type BrokerTarget,
  type RawPublisher,
} from '../harness/brokers';
import { clientConfig, openProducerAndRelayDataSources } from '../harness/database';
import { DirectSender } from '../harness/direct-sender';
import { stampedBroker } from '../harness/timed-broker';
import { runOpenLoop } from '../harness/open-loop';
import { optimisticVariant, type OptimisticWiring } from '../harness/optimistic';
import {
  benchMessage,
  BENCH_KEYS,
  payloadBytes,
  rawCommit,
  resetOutboxTables,
  sageCommit,
  type CommitOperation,
} from '../harness/outbox-load';
import { PublishLatencyRecorder } from '../harness/publish-latency';
import { RawRelay } from '../harness/raw-relay';
import { othersCpu } from '../harness/report-format';
import { ResourceMonitor } from '../harness/resources';
import type {
  AckLatencyMeasurement,
  AckLatencyPoint,
  AckVariant,
  BrokerKindName,
  BrokerProfile,
  OutboxCommitToAckScenarioResult,
} from '../harness/results';
import { round, SampleBuffer, summarise999 } from '../harness/stats';
import {
  BATCH_SIZE,
  CALLS_IN_FLIGHT,
  LEASE_MS,
  POLL_INTERVAL_MS,
  PUBLISH_BATCH_SIZE,
} from '../harness/relay-defaults';
import {
  BENCH_SLOT_PREFIX,
  dropSlot,
  ensureWalPublication,
  freshWalRelay,
  startStreaming,
  walLevel,
} from '../harness/wal-relay';
import type { Scenario, ScenarioContext } from './scenario';

const NAME = 'outbox-commit-to-ack';
const SAGE_APP = 'sage-bench-ack';
const RAW_APP = 'sage-bench-raw-ack';
const SLOT = `${BENCH_SLOT_PREFIX}commit_to_ack`;
/** Producer connections, each side: enough for 10,000 commits/s to overlap (group commit). */
const PRODUCER_POOL = 20;
const CORES = os.cpus().length;

interface Totals {
  latency: SampleBuffer;
  windowMs: number;
  committed: number;
  missing: number;
  lagMaxMs: number;
  errors: number;
  firstError: string | null;
  monitor: ResourceMonitor;
  otherCpu: number[];
  notes: Record<string, number>;
}

/** One variant's receiving side for one slice. */
interface Receiver {
  commit: CommitOperation;
  stop(): Promise<Record<string, number>>;
}

export const outboxCommitToAck: Scenario = {
  name: NAME,
  description:
    'An open-loop producer commits business transactions (one business insert + one outbox row each) ' +
    'at a fixed offered rate; latency runs from COMMIT returning in the producer to the broker ' +
    'acknowledging the message (Kafka acks=all, RabbitMQ publisher confirm, JetStream PubAck) as the ' +
    'publishing side sees it. Variants: the polling relay woken by NOTIFY, the WAL-streaming relay ' +
    "(`outbox.relay.mode: 'wal'`, a fresh slot per slice), optimistic sending (polling relay as " +
    'fallback; the library refuses it in WAL mode), the raw relay loop (node-postgres), and the raw ' +
    'client publishing each message itself with no database (the broker alone). Every broker at one ' +
    'rate, one broker across rates.',

  async run(ctx: ScenarioContext): Promise<OutboxCommitToAckScenarioResult> {
    const { target, poolSize } = ctx;
    const b: BrokerProfile = ctx.profile.brokers!;
    const runId = `${Date.now().toString(36)}-l`;
    const { producerDs, relayDs } = await openProducerAndRelayDataSources(
      target,
      SAGE_APP,
      PRODUCER_POOL,
      poolSize,
    );
    const rawPool = new pg.Pool({ ...clientConfig(target, RAW_APP), max: PRODUCER_POOL });
    const loader = new pg.Client(clientConfig(target, 'sage-bench-loader'));
    const monitorClient = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    const sliceMonitorClient = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    await Promise.all([loader.connect(), monitorClient.connect(), sliceMonitorClient.connect()]);
    const optimistic: OptimisticWiring | { unavailable: string } = optimisticVariant();
    const level = await walLevel(loader);
    const notRun: { variant: AckVariant; reason: string }[] = [];
    if ('unavailable' in optimistic)
      notRun.push({ variant: 'optimistic', reason: optimistic.unavailable });
    if (level === 'logical') await ensureWalPublication(relayDs);
    else notRun.push({ variant: 'wal', reason: `wal_level is ${level}, not logical` });
    const variants = (['relay', 'wal', 'optimistic', 'raw', 'direct'] as const).filter(
      (v) => !notRun.some((n) => n.variant === v),
    );
    for (const n of notRun) ctx.log(`  ${n.variant}: not run (${n.reason})`);

    const measureBroker = async (bt: BrokerTarget): Promise<AckLatencyPoint[]> => {
      const rates =
        bt.kind === b.matrixBroker
          ? [...new Set([...b.matrixRates, b.perBrokerRate])].sort((x, y) => x - y)
          : [b.perBrokerRate];
      const broker: Broker = bt.sage();
      const raw: RawPublisher = await bt.raw();
      const sagePublisher = new OutboxPublisher<EntityManager>({
        writer: new PostgresOutboxStore(producerDs),
      });
      const points: AckLatencyPoint[] = [];
      try {
        // Warm-up: connect, provision, JIT; outside any window.
        const warmRecorder = new PublishLatencyRecorder();
        const warmRelay = startRelay(broker, warmRecorder);
        await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            sageCommit(producerDs, sagePublisher, 1, bt.destination)(-1 - i),
          ),
        );
        await Promise.all(
          Array.from({ length: 50 }, (_, i) => rawCommit(rawPool, 1, bt.destination)(-1 - i)),
        );
        await sleep(500);
        await warmRelay.stop();

        for (const rate of rates) {
          const totals = new Map<AckVariant, Totals>(
            variants.map((v) => [
              v,
              {
                latency: new SampleBuffer(),
                windowMs: 0,
                committed: 0,
                missing: 0,
                lagMaxMs: 0,
                errors: 0,
                firstError: null,
                monitor: new ResourceMonitor(monitorClient, appOf(v)),
                otherCpu: [],
                notes: {},
              },
            ]),
          );
          const sliceMs = Math.max(1, Math.round(b.latencyDurationMs / b.latencySlices));
          for (let s = 0; s < b.latencySlices; s++) {
            const order = s % 2 === 0 ? variants : [...variants].reverse();
            for (const variant of order) {
              const t = totals.get(variant)!;
              await resetOutboxTables(loader);
              await bt.purge();
              const recorder = new PublishLatencyRecorder();
              const receiver = await startVariant(variant, recorder);
              const sliceMonitor = new ResourceMonitor(sliceMonitorClient, appOf(variant));
              let notes: Record<string, number> = {};
              try {
                const loop = await runOpenLoop(receiver.commit, {
                  ratePerSec: rate,
                  warmupMs: b.latencyWarmupMs,
                  durationMs: sliceMs,
                  onCommitted: (ids, at, inWindow) => {
                    if (inWindow) recorder.committed(ids, at);
                  },
                  onWindowStart: () => {
                    t.monitor.start();
                    sliceMonitor.start();
                  },
                  onWindowEnd: () => {
                    t.monitor.stop();
                    sliceMonitor.stop();
                  },
                });
                await recorder.settle(POLL_INTERVAL_MS * 3 + 10_000);
                t.windowMs += loop.windowMs;
                t.committed += loop.committedInWindow;
                t.lagMaxMs = Math.max(t.lagMaxMs, loop.lagMaxMs);
                t.errors += loop.errors;
                t.firstError ??= loop.firstError;
              } finally {
                notes = await receiver.stop();
              }
              for (const [k, v] of Object.entries(notes)) t.notes[k] = (t.notes[k] ?? 0) + v;
              const r = recorder.result();
              for (const v of r.samples) t.latency.push(v);
              t.missing += r.missing;
              const other = othersCpu(await sliceMonitor.usage(), CORES);
              if (other !== null) t.otherCpu.push(other);
            }
          }
          const measured: Partial<Record<AckVariant, AckLatencyMeasurement>> = {};
          for (const [variant, t] of totals) {
            measured[variant] = {
              windowMs: t.windowMs,
              committed: t.committed,
              achievedRatePerSec: round(t.committed / (t.windowMs / 1000), 1),
              latencyMs: summarise999(t.latency.values()),
              missing: t.missing,
              producerLagMaxMs: round(t.lagMaxMs, 1),
              errors: t.errors,
              firstError: t.firstError,
              resources: await t.monitor.usage(),
              notes: {
                ...t.notes,
                otherCpuPctMean: t.otherCpu.length
                  ? Math.round(t.otherCpu.reduce((a, x) => a + x, 0) / t.otherCpu.length)
                  : -1,
              },
            };
          }
          const ratio: AckLatencyPoint['ratio'] = {};
          const rawM = measured.raw!;
          for (const v of ['relay', 'optimistic', 'wal'] as const) {
            const m = measured[v];
            if (!m) continue;
            ratio[v] = {
              p50: round(m.latencyMs.p50 / rawM.latencyMs.p50, 3),
              p99: round(m.latencyMs.p99 / rawM.latencyMs.p99, 3),
              rate: round(m.achievedRatePerSec / rawM.achievedRatePerSec, 3),
            };
          }
          points.push({
            broker: bt.kind as BrokerKindName,
            offeredRatePerSec: rate,
            variants: measured,
            ratio,
          });
          ctx.log(
            `  ${bt.kind} @ ${rate}/s: ` +
              Object.entries(measured)
                .map(
                  ([v, m]) =>
                    `${v} ${m.achievedRatePerSec}/s p50 ${m.latencyMs.p50} p99 ${m.latencyMs.p99} p99.9 ${m.latencyMs.p999} ms` +
                    (m.missing ? ` missing ${m.missing}` : '') +
                    (m.errors ? ` errors ${m.errors}: ${m.firstError}` : ''),
                )
                .join(' | '),
          );
        }
      } finally {
        await broker.close().catch(() => undefined);
        await raw.close().catch(() => undefined);
      }
      return points;

      function stamped(br: Broker, recorder: PublishLatencyRecorder): Broker {
        return stampedBroker(br, (id, at) => recorder.received(id, at));
      }

      function startRelay(
        br: Broker,
        recorder: PublishLatencyRecorder,
      ): { relay: OutboxRelay; stop: () => Promise<Record<string, number>> } {
        let batches = 0;
        let claimed = 0;
        const timed = stamped(br, recorder);
        const relay = new OutboxRelay({
          store: new PostgresOutboxStore(relayDs),
          broker: timed,
          batchSize: BATCH_SIZE,
          publishBatchSize: PUBLISH_BATCH_SIZE,
          leaseMs: LEASE_MS,
          pollIntervalMs: POLL_INTERVAL_MS,
          listen: true,
          onBatch: (report) => {
            batches++;
            claimed += report.claimed;
          },
        });
        relay.start();
        return {
          relay,
          stop: async () => {
            await relay.stop();
            return { relayBatches: batches, relayClaimed: claimed };
          },
        };
      }

      async function startVariant(
        variant: AckVariant,
        recorder: PublishLatencyRecorder,
      ): Promise<Receiver> {
        if (variant === 'direct') {
          const sender = new DirectSender(
            raw,
            (id, at) => recorder.received(id, at),
            CALLS_IN_FLIGHT,
            PUBLISH_BATCH_SIZE,
          );
          return {
            commit: (n) => {
              const m = benchMessage(n, uuidv7(), bt.destination);
              const id = m.id!;
              sender.send({
                id,
                destination: bt.destination,
                key: m.key ?? null,
                type: m.type,
                payload: m.payload,
                headers: {},
                time: new Date(),
              });
              return Promise.resolve([id]);
            },
            stop: () =>
              Promise.resolve({
                directCalls: sender.calls,
                directFailedMessages: sender.failedMessages,
              }),
          };
        }
        if (variant === 'wal') {
          const wal = await freshWalRelay({
            admin: loader,
            dataSource: relayDs,
            broker: stamped(broker, recorder),
            slot: SLOT,
          });
          try {
            await startStreaming(wal);
          } catch (error) {
            await wal.stop();
            await dropSlot(loader, SLOT);
            throw error;
          }
          return {
            commit: sageCommit(producerDs, sagePublisher, 1, bt.destination),
            stop: async () => {
              await wal.stop();
              await dropSlot(loader, SLOT);
              return { walBatches: wal.stats.batches, walSent: wal.stats.sent };
            },
          };
        }
        if (variant === 'raw') {
          const loop = new RawRelay({
            client: clientConfig(target, RAW_APP),
            batchSize: BATCH_SIZE,
            leaseMs: LEASE_MS,
            idle: { pollIntervalMs: POLL_INTERVAL_MS, listen: true },
            publish: async (rows) => {
              const messages = rows.map(brokerMessageOf);
              const chunks: (typeof messages)[] = [];
              for (let i = 0; i < messages.length; i += PUBLISH_BATCH_SIZE)
                chunks.push(messages.slice(i, i + PUBLISH_BATCH_SIZE));
              let next = 0;
              const worker = async (): Promise<void> => {
                for (let i = next++; i < chunks.length; i = next++) {
                  await raw.publish(chunks[i]!);
                  const at = performance.now();
                  for (const m of chunks[i]!) recorder.received(m.id, at);
                }
              };
              await Promise.all(
                Array.from({ length: Math.min(CALLS_IN_FLIGHT, chunks.length) }, worker),
              );
            },
          });
          await loop.connect();
          loop.start();
          return {
            commit: rawCommit(rawPool, 1, bt.destination),
            stop: async () => {
              await loop.close();
              return { relayBatches: loop.stats.batches, relayClaimed: loop.stats.claimed };
            },
          };
        }
        const relay = startRelay(broker, recorder);
        await until('relay LISTENing', () => relay.relay.stats.listening);
        if (variant === 'relay') {
          return {
            commit: sageCommit(producerDs, sagePublisher, 1, bt.destination),
            stop: relay.stop,
          };
        }
        const wiring = optimistic as OptimisticWiring;
        const opt = wiring.create({ dataSource: producerDs, broker: stamped(broker, recorder) });
        return {
          commit: (n) => opt.commit(n, bt.destination),
          stop: async () => {
            const own = await opt.stop();
            return { ...(await relay.stop()), ...own };
          },
        };
      }
    };

    try {
      const { results, skipped } = await forEachBroker(runId, ctx.log, measureBroker);
      return {
        kind: 'outbox-commit-to-ack',
        name: NAME,
        description: this.description,
        labels: {
          relay:
            'OutboxPublisher in dataSource.transaction (TypeORM, pool 20) → OutboxRelay (own DataSource, NOTIFY) → Sage adapter; ack = publish() resolved ok',
          optimistic:
            'the same, with the optimistic sender sending right after COMMIT (the relay as fallback)',
          raw: 'node-postgres Pool committing the same two INSERTs → node-postgres claim loop woken by the same NOTIFY → the raw client library (same window) → mark-sent',
          wal: "the same OutboxPublisher → WalOutboxRelay (`outbox.relay.mode: 'wal'`, the relay's DataSource + a replication connection, fresh slot per slice) → Sage adapter",
          direct: `no database: the adapter's client library publishing each message the moment the producer makes it (alone while fewer than ${CALLS_IN_FLIGHT} calls are in flight, else with the others queued meanwhile, calls of at most ${PUBLISH_BATCH_SIZE}); latency from making it to the ack`,
        },
        config: {
          perBrokerRate: b.perBrokerRate,
          matrixBroker: b.matrixBroker,
          matrixRates: b.matrixRates.join(' / '),
          messagesPerTx: 1,
          keys: BENCH_KEYS,
          payloadBytes: payloadBytes(),
          durationMsPerVariantAndPoint: b.latencyDurationMs,
          slices: b.latencySlices,
          warmupMsPerSlice: b.latencyWarmupMs,
          batchSize: BATCH_SIZE,
          pollIntervalMs: POLL_INTERVAL_MS,
          producerPool: PRODUCER_POOL,
          relayPool: poolSize,
        },
        points: results.flatMap((r) => r.result ?? []),
        notRun: [
          ...notRun,
          ...results
            .filter((r) => r.error)
            .map((r) => ({ variant: 'relay' as const, reason: `${r.target.kind}: ${r.error}` })),
        ],
        skipped,
      };
    } finally {
      await dropSlot(loader, SLOT).catch(() => undefined);
      await producerDs.destroy();
      await relayDs.destroy();
      await rawPool.end();
      await Promise.all([loader.end(), monitorClient.end(), sliceMonitorClient.end()]);
    }
  },
};

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** The application_name whose connections a variant's resources are sampled from. */
function appOf(variant: AckVariant): string {
  return variant === 'raw' ? RAW_APP : variant === 'direct' ? 'sage-bench-none' : SAGE_APP;
}
