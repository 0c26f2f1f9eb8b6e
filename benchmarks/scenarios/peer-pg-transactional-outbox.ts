import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import {
  createReplicationSegmentMutexConcurrencyController,
  DatabaseSetup,
  getDefaultLogger,
  getDisabledLogger,
  initializeMessageStorage,
  initializePollingMessageListener,
  initializeReplicationMessageListener,
  type PollingListenerConfig,
  type ReplicationListenerConfig,
  type TransactionalMessage,
} from 'pg-transactional-outbox';
import type { EntityManager } from 'typeorm';
import {
  OutboxPublisher,
  OutboxRelay,
  PostgresOutboxStore,
  uuidv7,
  type Broker,
} from '@sage/saga-outbox';
import { brokerTargets, type BrokerTarget, type RawPublisher } from '../harness/brokers';
import {
  clientConfig,
  inTransaction,
  INSERT_BUSINESS_ROW,
  openProducerAndRelayDataSources,
} from '../harness/database';
import { stampedBroker } from '../harness/timed-broker';
import { runOpenLoop } from '../harness/open-loop';
import {
  benchPayload,
  BENCH_KEYS,
  BENCH_TYPE,
  OUTBOX_TABLES,
  payloadBytes,
  preloadOutbox,
  resetOutboxTables,
  sageCommit,
  type CommitOperation,
} from '../harness/outbox-load';
import { PublishLatencyRecorder } from '../harness/publish-latency';
import { othersCpu } from '../harness/report-format';
import { ResourceMonitor } from '../harness/resources';
import type {
  AckLatencyMeasurement,
  BrokerDrainMeasurement,
  BrokerDrainTrial,
  BrokerProfile,
  PeerScenarioResult,
} from '../harness/results';
import { round, SampleBuffer, summarise999 } from '../harness/stats';
import { BENCH_SLOT_PREFIX, dropSlot, walLevel } from '../harness/wal-relay';
import type { Scenario, ScenarioContext } from './scenario';

const NAME = 'peer-pg-transactional-outbox';
const SAGE_APP = 'sage-bench-peer-sage';
const PEER_APP = 'sage-bench-peer';
const SCHEMA = 'peer';
const TABLE = 'outbox';
const NEXT_FN = 'next_outbox_messages';
/** The peer's logical-replication listener: its own publication and slot, dropped at the end. */
const PEER_PUBLICATION = 'sage_bench_peer_pub';
const PEER_SLOT = `${BENCH_SLOT_PREFIX}peer_slot`;
type Side = 'sage' | 'peer' | 'peerReplication';
/** Peer settings (documented defaults: batch 5, polling 500 ms); see the description for why. */
const PEER_BATCH = 100;
const PEER_POLL_MS = 50;
const PRODUCER_POOL = 20;
const CORES = os.cpus().length;
// eslint-disable-next-line @typescript-eslint/no-require-imports -- version for the report
const PEER_VERSION = (require('pg-transactional-outbox/package.json') as { version: string })
  .version;

export const peerPgTransactionalOutbox: Scenario = {
  name: NAME,
  description:
    `pg-transactional-outbox ${PEER_VERSION} (npm), the established PostgreSQL outbox library, on the ` +
    'same database, broker and workload as Sage: a drain of pre-loaded messages and commit → broker ' +
    'ack at a fixed offered rate. Both of its listeners run: the polling one, with batch ' +
    `${PEER_BATCH} (default 5) and a ${PEER_POLL_MS} ms polling interval (default 500) so neither ` +
    'figure is decided by its defaults, and the logical-replication one (needs wal_level = logical; ' +
    'its own publication and slot, created fresh before each of its drains and slices and dropped ' +
    'after; segment-mutex concurrency, so messages of different keys are handled at once, as Sage ' +
    'orders per key). Its handler publishes each message with the raw client (the library hands ' +
    'over one message per handler call). Segment = the ordering key. Sage runs one OutboxRelay with ' +
    'its defaults (NOTIFY on). Latency is taken at the ' +
    'lowest matrix rate: the peer drains about 200 msg/s here, so at 1,000 msg/s its backlog only grows.',

  async run(ctx: ScenarioContext): Promise<PeerScenarioResult> {
    const { target, poolSize } = ctx;
    const b: BrokerProfile = ctx.profile.brokers!;
    // The peer handles one message per transaction (~200 msg/s here): a smaller drain, once each.
    const n = Math.min(b.drainMessages, 2_000);
    const runId = `${Date.now().toString(36)}-p`;
    const bt: BrokerTarget | undefined = brokerTargets(runId).targets.find(
      (t) => t.kind === b.matrixBroker,
    );
    const base = {
      kind: 'peer' as const,
      name: NAME,
      description: this.description,
      peer: {
        name: 'pg-transactional-outbox',
        version: PEER_VERSION,
        listener: 'polling, logical replication',
      },
      broker: b.matrixBroker,
    };
    if (!bt) {
      ctx.log(`  skipped: ${b.matrixBroker} is not configured`);
      return { ...base, config: {}, error: `${b.matrixBroker} is not configured` };
    }
    const admin = new pg.Client(clientConfig(target, 'sage-bench-loader'));
    const monitorClient = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    const ownMonitorClient = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    await Promise.all([admin.connect(), monitorClient.connect(), ownMonitorClient.connect()]);
    const setup = {
      outboxOrInbox: 'outbox' as const,
      database: target.database,
      schema: SCHEMA,
      table: TABLE,
      listenerRole: target.user,
      nextMessagesName: NEXT_FN,
    };
    await admin.query(DatabaseSetup.dropAndCreateTable(setup));
    await admin.query(DatabaseSetup.createPollingFunction(setup));
    await admin.query(DatabaseSetup.setupPollingIndexes(setup));
    const level = await walLevel(admin);
    const replicationNotRun =
      level === 'logical' ? undefined : `wal_level is ${level}; its listener needs logical`;
    const replicationSetup = {
      ...setup,
      publication: PEER_PUBLICATION,
      replicationSlot: PEER_SLOT,
    };
    if (!replicationNotRun)
      // The library's own setup SQL, without its ALTER ROLE ... REPLICATION (the bench role has it).
      await admin.query(
        DatabaseSetup.setupReplicationCore(replicationSetup)
          .split('\n')
          .filter((line) => !/^\s*ALTER ROLE/i.test(line))
          .join('\n'),
      );
    const sides: Side[] = replicationNotRun
      ? ['sage', 'peer']
      : ['sage', 'peer', 'peerReplication'];
    if (replicationNotRun) ctx.log(`  peer replication listener: not run (${replicationNotRun})`);
    const replicationConfig: ReplicationListenerConfig = {
      outboxOrInbox: 'outbox',
      dbListenerConfig: clientConfig(target, PEER_APP),
      dbHandlerConfig: clientConfig(target, PEER_APP),
      settings: {
        dbSchema: SCHEMA,
        dbTable: TABLE,
        dbPublication: PEER_PUBLICATION,
        dbReplicationSlot: PEER_SLOT,
        enableMaxAttemptsProtection: false,
        enablePoisonousMessageProtection: false,
      },
    };
    /** A fresh slot: what the replication listener streams is what is committed from now on. */
    const freshPeerSlot = async (): Promise<void> => {
      await dropSlot(admin, PEER_SLOT);
      await admin.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [PEER_SLOT]);
    };
    const listenerConfig: PollingListenerConfig = {
      outboxOrInbox: 'outbox',
      dbListenerConfig: clientConfig(target, PEER_APP),
      settings: {
        dbSchema: SCHEMA,
        dbTable: TABLE,
        nextMessagesFunctionName: NEXT_FN,
        nextMessagesFunctionSchema: SCHEMA,
        nextMessagesBatchSize: PEER_BATCH,
        nextMessagesPollingIntervalInMs: PEER_POLL_MS,
        enableMaxAttemptsProtection: false,
        enablePoisonousMessageProtection: false,
      },
    };
    const logger = process.env.SAGE_BENCH_PEER_LOG ? getDefaultLogger('peer') : getDisabledLogger();
    const store = initializeMessageStorage(listenerConfig, logger);
    const peerPool = new pg.Pool({ ...clientConfig(target, PEER_APP), max: PRODUCER_POOL });
    const { producerDs, relayDs } = await openProducerAndRelayDataSources(
      target,
      SAGE_APP,
      PRODUCER_POOL,
      poolSize,
    );
    const publisher = new OutboxPublisher<EntityManager>({
      writer: new PostgresOutboxStore(producerDs),
    });

    const peerMessage = (i: number): TransactionalMessage => {
      const key = `customer-${i % BENCH_KEYS}`;
      return {
        id: uuidv7(),
        aggregateType: bt.destination,
        aggregateId: key,
        messageType: BENCH_TYPE,
        segment: key,
        payload: benchPayload(i),
        createdAt: new Date().toISOString(),
      };
    };
    const peerCommit: CommitOperation = async (i) => {
      const m = peerMessage(i);
      await inTransaction(peerPool, async (client) => {
        await client.query(INSERT_BUSINESS_ROW, [uuidv7(), 'order']);
        await store(m, client);
      });
      return [m.id];
    };

    /** Starts the peer's listener publishing to the broker with the raw client; onAcked per message. */
    const startPeer = (
      raw: RawPublisher,
      onAcked: (id: string, at: number) => void,
      listener: 'polling' | 'replication' = 'polling',
    ) => {
      const handler = {
        handle: async (message: TransactionalMessage): Promise<void> => {
          await raw.publish([
            {
              id: message.id,
              destination: message.aggregateType,
              key: message.segment ?? message.aggregateId,
              type: message.messageType,
              payload: message.payload as never,
              headers: {},
              time: new Date(message.createdAt ?? Date.now()),
            },
          ]);
          onAcked(message.id, performance.now());
        },
      };
      const [shutdown] =
        listener === 'polling'
          ? initializePollingMessageListener(listenerConfig, handler, logger)
          : initializeReplicationMessageListener(replicationConfig, handler, logger, {
              concurrencyStrategy: createReplicationSegmentMutexConcurrencyController(),
            });
      return shutdown;
    };

    const startSage = (broker: Broker, onAcked: (id: string, at: number) => void) => {
      const relay = new OutboxRelay({
        store: new PostgresOutboxStore(relayDs),
        broker: stampedBroker(broker, onAcked),
      });
      relay.start();
      return relay;
    };

    const resetPeer = async (): Promise<void> => {
      await admin.query(`TRUNCATE ${SCHEMA}.${TABLE}`);
      await admin.query(`ANALYZE ${SCHEMA}.${TABLE}`);
      await admin.query('CHECKPOINT');
    };

    let broker: Broker | undefined;
    let raw: RawPublisher | undefined;
    try {
      await bt.setup();
      broker = bt.sage();
      raw = await bt.raw();
      const sageBroker = broker;
      const rawPublisher = raw;

      // ---- drain --------------------------------------------------------------------------
      const drains: Record<Side, BrokerDrainTrial[]> = { sage: [], peer: [], peerReplication: [] };
      const drainMonitors: Record<Side, ResourceMonitor> = {
        sage: new ResourceMonitor(monitorClient, SAGE_APP),
        peer: new ResourceMonitor(monitorClient, PEER_APP),
        peerReplication: new ResourceMonitor(monitorClient, PEER_APP),
      };
      const unfinished: Record<Side, number> = { sage: 0, peer: 0, peerReplication: 0 };
      const drainOnce = async (side: Side): Promise<void> => {
        await resetOutboxTables(admin);
        await resetPeer();
        await bt.purge();
        if (side === 'peerReplication') await freshPeerSlot();
        if (side === 'sage') {
          await preloadOutbox(admin, n, 1000, bt.destination);
          await admin.query(`VACUUM (ANALYZE) ${OUTBOX_TABLES.outboxMessage}`);
        } else {
          for (let from = 0; from < n; from += 1000) {
            await admin.query('BEGIN');
            for (let i = from; i < Math.min(n, from + 1000); i++)
              await store(peerMessage(i), admin);
            await admin.query('COMMIT');
          }
          await admin.query(`VACUUM (ANALYZE) ${SCHEMA}.${TABLE}`);
        }
        await admin.query('CHECKPOINT');
        let acked = 0;
        let finish: (at: number) => void = () => undefined;
        const finished = new Promise<number>((resolve) => (finish = resolve));
        const onAcked = (): void => {
          if (++acked >= n) finish(performance.now());
        };
        const own = new ResourceMonitor(ownMonitorClient, side === 'sage' ? SAGE_APP : PEER_APP);
        drainMonitors[side].start();
        own.start();
        const t0 = performance.now();
        const stop =
          side === 'sage'
            ? (() => {
                const relay = startSage(sageBroker, onAcked);
                return () => relay.stop();
              })()
            : startPeer(rawPublisher, onAcked, side === 'peer' ? 'polling' : 'replication');
        let t1: number;
        let done = n;
        try {
          // A peer listener that leaves a few messages behind (its polling listener's row locks
          // under load) is recorded with what it acked in time, not allowed to sink the scenario.
          t1 = await Promise.race([finished, sleep(n * 24).then(() => performance.now())]);
          done = Math.min(acked, n);
          if (done < n) {
            if (side === 'sage')
              throw new Error(`sage drain of ${n}: ${acked} sent after ${n * 24} ms`);
            unfinished[side] += n - done;
            ctx.log(`  ${side} drain: ${done} of ${n} acked within ${n * 24} ms`);
          }
        } finally {
          drainMonitors[side].stop();
          own.stop();
          await stop();
          if (side === 'peerReplication') await dropSlot(admin, PEER_SLOT);
        }
        drains[side].push({
          messages: done,
          elapsedMs: round(t1 - t0, 1),
          perSec: round(done / ((t1 - t0) / 1000), 1),
          otherCpuPct: othersCpu(await own.usage(), CORES),
        });
      };
      for (let rep = 0; rep < 1; rep++) {
        for (const side of rep % 2 === 0 ? sides : [...sides].reverse()) await drainOnce(side);
      }
      const drainOf = async (side: Side): Promise<BrokerDrainMeasurement> => {
        const t = drains[side];
        const ms = t.reduce((a, x) => a + x.elapsedMs, 0);
        return {
          trials: t,
          throughputPerSec: round(t.reduce((a, x) => a + x.messages, 0) / (ms / 1000), 1),
          resources: await drainMonitors[side].usage(),
          notes: unfinished[side] ? { unfinished: unfinished[side] } : {},
        };
      };
      const drain = {
        sage: await drainOf('sage'),
        peer: await drainOf('peer'),
        ...(replicationNotRun ? {} : { peerReplication: await drainOf('peerReplication') }),
      };
      ctx.log(
        `  drain ${n} → ${bt.kind}: sage ${drain.sage.throughputPerSec} msg/s | peer polling ${drain.peer.throughputPerSec} msg/s` +
          (drain.peerReplication
            ? ` | peer replication ${drain.peerReplication.throughputPerSec} msg/s`
            : ''),
      );

      // ---- commit → ack -------------------------------------------------------------------
      // The lowest matrix rate: 1,000/s is above what the peer drains, so its queue would only grow.
      const rate = Math.min(...b.matrixRates);
      const latency: Record<Side, SampleBuffer> = {
        sage: new SampleBuffer(),
        peer: new SampleBuffer(),
        peerReplication: new SampleBuffer(),
      };
      const acc: Record<
        Side,
        {
          windowMs: number;
          committed: number;
          missing: number;
          lag: number;
          errors: number;
          firstError: string | null;
        }
      > = {
        sage: {
          windowMs: 0,
          committed: 0,
          missing: 0,
          lag: 0,
          errors: 0,
          firstError: null as string | null,
        },
        peer: {
          windowMs: 0,
          committed: 0,
          missing: 0,
          lag: 0,
          errors: 0,
          firstError: null as string | null,
        },
        peerReplication: {
          windowMs: 0,
          committed: 0,
          missing: 0,
          lag: 0,
          errors: 0,
          firstError: null as string | null,
        },
      };
      const latMonitors: Record<Side, ResourceMonitor> = {
        sage: new ResourceMonitor(monitorClient, SAGE_APP),
        peer: new ResourceMonitor(monitorClient, PEER_APP),
        peerReplication: new ResourceMonitor(monitorClient, PEER_APP),
      };
      const sliceMs = Math.max(1, Math.round(b.latencyDurationMs / b.latencySlices));
      for (let s = 0; s < b.latencySlices; s++) {
        for (const side of s % 2 === 0 ? sides : [...sides].reverse()) {
          await resetOutboxTables(admin);
          await resetPeer();
          await bt.purge();
          if (side === 'peerReplication') await freshPeerSlot();
          const recorder = new PublishLatencyRecorder();
          const onAcked = (id: string, at: number): void => recorder.received(id, at);
          let stop: () => Promise<void>;
          let commit: CommitOperation;
          if (side === 'sage') {
            const relay = startSage(sageBroker, onAcked);
            const deadline = performance.now() + 10_000;
            while (!relay.stats.listening && performance.now() < deadline) await sleep(5);
            stop = () => relay.stop();
            commit = sageCommit(producerDs, publisher, 1, bt.destination);
          } else if (side === 'peer') {
            stop = startPeer(rawPublisher, onAcked);
            commit = peerCommit;
          } else {
            const shutdown = startPeer(rawPublisher, onAcked, 'replication');
            stop = async () => {
              await shutdown();
              await dropSlot(admin, PEER_SLOT);
            };
            commit = peerCommit;
            await sleep(500); // its replication connection starts streaming
          }
          try {
            const loop = await runOpenLoop(commit, {
              ratePerSec: rate,
              warmupMs: b.latencyWarmupMs,
              durationMs: sliceMs,
              onCommitted: (ids, at, inWindow) => {
                if (inWindow) recorder.committed(ids, at);
              },
              onWindowStart: () => latMonitors[side].start(),
              onWindowEnd: () => latMonitors[side].stop(),
            });
            await recorder.settle(15_000);
            const a = acc[side];
            a.windowMs += loop.windowMs;
            a.committed += loop.committedInWindow;
            a.lag = Math.max(a.lag, loop.lagMaxMs);
            a.errors += loop.errors;
            a.firstError ??= loop.firstError;
          } finally {
            await stop();
          }
          const r = recorder.result();
          for (const v of r.samples) latency[side].push(v);
          acc[side].missing += r.missing;
        }
      }
      const latOf = async (side: Side): Promise<AckLatencyMeasurement> => {
        const a = acc[side];
        return {
          windowMs: a.windowMs,
          committed: a.committed,
          achievedRatePerSec: round(a.committed / (a.windowMs / 1000), 1),
          latencyMs: summarise999(latency[side].values()),
          missing: a.missing,
          producerLagMaxMs: round(a.lag, 1),
          errors: a.errors,
          firstError: a.firstError,
          resources: await latMonitors[side].usage(),
          notes: {},
        };
      };
      const lat = {
        sage: await latOf('sage'),
        peer: await latOf('peer'),
        ...(replicationNotRun ? {} : { peerReplication: await latOf('peerReplication') }),
      };
      ctx.log(
        `  commit → ${bt.kind} ack @ ${rate}/s: sage p50 ${lat.sage.latencyMs.p50} p99 ${lat.sage.latencyMs.p99} ms (${lat.sage.achievedRatePerSec}/s) | ` +
          `peer p50 ${lat.peer.latencyMs.p50} p99 ${lat.peer.latencyMs.p99} ms (${lat.peer.achievedRatePerSec}/s)` +
          (lat.peer.missing ? ` missing ${lat.peer.missing}` : '') +
          (lat.peerReplication
            ? ` | peer replication p50 ${lat.peerReplication.latencyMs.p50} p99 ${lat.peerReplication.latencyMs.p99} ms (${lat.peerReplication.achievedRatePerSec}/s)` +
              (lat.peerReplication.missing ? ` missing ${lat.peerReplication.missing}` : '')
            : ''),
      );
      return {
        ...base,
        config: {
          drainMessages: n,
          repetitions: 1,
          offeredRatePerSec: rate,
          durationMsPerSide: b.latencyDurationMs,
          peerBatchSize: PEER_BATCH,
          peerPollingIntervalMs: PEER_POLL_MS,
          peerReplication: replicationNotRun
            ? `not run: ${replicationNotRun}`
            : `publication ${PEER_PUBLICATION}, slot ${PEER_SLOT} (fresh per drain / slice), segment-mutex concurrency`,
          peerSegment: 'ordering key (1,000 keys)',
          keys: BENCH_KEYS,
          payloadBytes: payloadBytes(),
        },
        drain,
        latency: { offeredRatePerSec: rate, ...lat },
      };
    } catch (error) {
      const text = error instanceof Error ? error.message : String(error);
      ctx.log(`  FAILED: ${text}`);
      return { ...base, config: {}, error: text };
    } finally {
      await broker?.close().catch(() => undefined);
      await raw?.close().catch(() => undefined);
      await bt.teardown().catch(() => undefined);
      // Always: a leftover slot retains WAL (and blocks dropping the bench database).
      await dropSlot(admin, PEER_SLOT).catch((error: unknown) =>
        ctx.log(`  could not drop the peer's slot ${PEER_SLOT}: ${String(error)}`),
      );
      await admin.query(`DROP PUBLICATION IF EXISTS ${PEER_PUBLICATION}`).catch(() => undefined);
      await admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`).catch(() => undefined);
      await producerDs.destroy();
      await relayDs.destroy();
      await peerPool.end();
      await Promise.all([admin.end(), monitorClient.end(), ownMonitorClient.end()]);
    }
  },
};
