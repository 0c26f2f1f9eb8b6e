import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { DataSource, EntityManager } from 'typeorm';
import {
  createDataProtection,
  defineSaga,
  encryptionKeys,
  InMemoryBroker,
  OutboxPublisher,
  OutboxRelay,
  PostgresOutboxStore,
  PostgresSagaStore,
  PostgresSubjectKeyStore,
  SagaEngine,
  uuidv7,
  type DataProtection,
  type OutboxMessageInput,
  type SagaDefinition,
  type SagaStore,
} from '@sage/saga-outbox';
import type { Operation } from '../harness/closed-loop';
import {
  clientConfig,
  INSERT_BUSINESS_ROW,
  resetTables,
  sagaDataSource,
} from '../harness/database';
import { measureInterleaved } from '../harness/interleave';
import { OUTBOX_TABLES, resetOutboxTables } from '../harness/outbox-load';
import { countsDelta, snapshotCounts, totalOf } from '../harness/query-counter';
import { BATCH_SIZE, LEASE_MS, MAX_IN_FLIGHT, PUBLISH_BATCH_SIZE } from '../harness/relay-defaults';
import { ResourceMonitor } from '../harness/resources';
import type {
  DataProtectionScenarioResult,
  PointResult,
  ProtectionOutboxMeasurement,
  ProtectionProfile,
} from '../harness/results';
import { SagaCompletions } from '../harness/saga-completions';
import { round, summarise } from '../harness/stats';
import type { Scenario, ScenarioContext } from './scenario';

const NAME = 'data-protection-cost';
const OFF_APP = 'sage-bench-dp-off';
const ON_APP = 'sage-bench-dp-on';
const SAGA_OFF = 'bench-dp-off';
const SAGA_ON = 'bench-dp-on';
const SAGA_LEASE_MS = 30_000;
/** Distinct data subjects (customers), round-robin: each has its own key in `sage.subject_key`. */
const SUBJECTS = 1000;
const MESSAGE_TYPE = 'order.placed.protected';
const DESTINATION = 'orders-protected';
/** Outbox part: messages per transaction, and transactions in flight while writing. */
const MESSAGES_PER_TX = 10;
const WRITERS = 4;

const subjectOf = (n: number): string => `customer-${n % SUBJECTS}`;

interface Input {
  n: number;
  customer: { id: string; name: string; email: string };
  shippingAddress: { street: string; city: string; postcode: string; country: string };
}

function sagaInput(n: number): Input {
  return {
    n,
    customer: { id: subjectOf(n), name: `Customer ${n}`, email: `customer-${n}@example.test` },
    shippingAddress: {
      street: `${n % 200} Example Street`,
      city: 'Springfield',
      postcode: `SP${n % 10} 1AB`,
      country: 'GB',
    },
  };
}

/**
 * saga-local-3step's saga (a → b → c, each inserts one business row through ctx.manager), but
 * each step also returns a small result holding personal data, so encryption has results to seal.
 */
function definition(name: string): SagaDefinition<Input, EntityManager> {
  const insert = async (ctx: { sagaId: string; stepName: string; manager: EntityManager }) => {
    await ctx.manager.query(INSERT_BUSINESS_ROW, [ctx.sagaId, ctx.stepName]);
  };
  const compensate = async (ctx: { sagaId: string; stepName: string; manager: EntityManager }) => {
    await ctx.manager.query('DELETE FROM bench.business_row WHERE saga_id = $1 AND step = $2', [
      ctx.sagaId,
      ctx.stepName,
    ]);
  };
  return defineSaga<Input, EntityManager>(name)
    .step('a', {
      run: async (ctx) => {
        await insert(ctx);
        return { reservation: `r-${ctx.input.n}`, contact: { email: ctx.input.customer.email } };
      },
      compensate,
    })
    .step('b', {
      dependsOn: ['a'],
      run: async (ctx) => {
        await insert(ctx);
        return { authorization: `auth-${ctx.input.n}`, last4: '0000' };
      },
      compensate,
    })
    .step('c', {
      dependsOn: ['b'],
      run: async (ctx) => {
        await insert(ctx);
        return {
          carrier: 'post',
          label: { name: ctx.input.customer.name, address: ctx.input.shippingAddress },
        };
      },
      compensate,
    })
    .build();
}

const PADDING = 'benchmark payload padding '.repeat(18);

/** An order-shaped payload of about 1 kB of JSON; name, e-mail and address are encrypted when on. */
function messagePayload(n: number): Record<string, unknown> {
  const input = sagaInput(n);
  return {
    orderId: n,
    customer: input.customer,
    shippingAddress: input.shippingAddress,
    currency: 'EUR',
    total: (n % 997) * 3.25,
    lines: Array.from({ length: 6 }, (_, i) => ({
      sku: `sku-${(n + i) % 101}`,
      qty: 1 + ((n + i) % 3),
      price: 12.5 + i,
    })),
    note: PADDING,
  };
}

function message(n: number): OutboxMessageInput {
  return {
    destination: DESTINATION,
    type: MESSAGE_TYPE,
    key: subjectOf(n),
    payload: messagePayload(n) as OutboxMessageInput['payload'],
  };
}

function protection(dataSource: DataSource): DataProtection<EntityManager> {
  return createDataProtection<EntityManager>({
    keys: encryptionKeys({ active: 'bench', keys: { bench: randomBytes(32) } }),
    subjectKeys: new PostgresSubjectKeyStore(dataSource),
    sagas: {
      [SAGA_ON]: {
        subject: 'customer.id',
        input: ['customer.name', 'customer.email', 'shippingAddress'],
        results: { a: ['contact'], b: ['authorization'], c: ['label'] },
      },
    },
    messages: {
      [MESSAGE_TYPE]: {
        subject: 'customer.id',
        fields: ['customer.name', 'customer.email', 'shippingAddress'],
      },
    },
  });
}

function deadline<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const ratioOf = (a: number, b: number): number => round(a / b, 3);

export const dataProtectionCost: Scenario = {
  name: NAME,
  description:
    'What `dataProtection` (AES-256-GCM envelope encryption, one key per data subject kept in ' +
    'PostgreSQL) costs, measured off and on in the same run, interleaved: the local 3-step saga ' +
    '(input fields and step results encrypted), the outbox write + relay drain of ~1 kB messages ' +
    'with 3 encrypted fields, and the per-message CPU of sealing and opening.',
  enabled: (profile) => profile.protection !== undefined,

  async run(ctx: ScenarioContext): Promise<DataProtectionScenarioResult> {
    const { target, profile, poolSize } = ctx;
    const p: ProtectionProfile = profile.protection!;
    const offDs = sagaDataSource(target, poolSize, OFF_APP);
    const onDs = sagaDataSource(target, poolSize, ON_APP);
    await offDs.initialize();
    await onDs.initialize();
    const admin = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    await admin.connect();
    const prot = protection(onDs);
    const subjectKeys = prot.protector.subjectKeys!;

    try {
      // Every subject's key exists (and is unwrapped in the cache) before anything is measured: the
      // steady state of a service whose customers come back, not the first order of each.
      for (let i = 0; i < SUBJECTS; i++) await subjectKeys.keyFor(subjectOf(i));
      ctx.log(`  ${SUBJECTS} data-subject keys created in sage.subject_key`);

      // ------------------------------------------------------------------ (a) the 3-step saga
      const sides = {
        off: {
          def: definition(SAGA_OFF),
          store: new PostgresSagaStore(offDs) as SagaStore<EntityManager>,
        },
        on: { def: definition(SAGA_ON), store: prot.protectSagaStore(new PostgresSagaStore(onDs)) },
      };
      const newEngine = (side: keyof typeof sides, maxConcurrentSagas?: number) => {
        const engine = new SagaEngine<EntityManager>({
          store: sides[side].store,
          leaseMs: SAGA_LEASE_MS,
          maxConcurrentSagas,
        });
        engine.register(sides[side].def);
        const waiter = new SagaCompletions();
        engine.onEvent(waiter.listener);
        return { engine, waiter };
      };
      const opOf = (
        e: { engine: SagaEngine<EntityManager>; waiter: SagaCompletions },
        name: string,
      ): Operation => {
        let n = 0;
        return async () => {
          const { sagaId } = await e.engine.start(name, sagaInput(n++));
          return e.waiter.wait(sagaId);
        };
      };

      await resetTables(admin);
      const k = profile.calibrationSagas;
      const calibrate = async (side: keyof typeof sides, name: string) => {
        const e = newEngine(side);
        const op = opOf(e, name);
        for (let i = 0; i < 5; i++) await op(0);
        const before = snapshotCounts();
        for (let i = 0; i < k; i++) await op(0);
        const counts = countsDelta(before, snapshotCounts(), k);
        await e.engine.shutdown();
        return counts;
      };
      const onCounts = await calibrate('on', SAGA_ON);
      const offCounts = await calibrate('off', SAGA_OFF);
      ctx.log(
        `  calibration: on ${totalOf(onCounts)} statements/saga ${JSON.stringify(onCounts)}; ` +
          `off ${totalOf(offCounts)} ${JSON.stringify(offCounts)}`,
      );

      const points: PointResult[] = [];
      for (const concurrency of p.sagaConcurrency) {
        const maxConcurrentSagas = ctx.maxConcurrentSagas ?? Math.max(64, concurrency * 2);
        await resetTables(admin);
        const on = newEngine('on', maxConcurrentSagas);
        const off = newEngine('off', maxConcurrentSagas);
        await on.engine.startBackground();
        await off.engine.startBackground();
        const measured = await measureInterleaved(
          { op: opOf(on, SAGA_ON), monitor: new ResourceMonitor(admin, ON_APP) },
          { op: opOf(off, SAGA_OFF), monitor: new ResourceMonitor(admin, OFF_APP) },
          {
            concurrency,
            durationMs: p.sagaDurationMs,
            slices: profile.slices,
            warmupMs: profile.warmupMs,
            sliceWarmupMs: profile.sliceWarmupMs,
          },
        );
        await on.engine.shutdown();
        await off.engine.shutdown();
        const notes = (w: SagaCompletions) => ({
          resumedByRecovery: w.resumed,
          interrupted: w.interrupted,
        });
        const subject = { ...measured.subject, notes: notes(on.waiter) };
        const ceiling = { ...measured.ceiling, notes: notes(off.waiter) };
        const ratio = {
          throughput: ratioOf(subject.throughputPerSec, ceiling.throughputPerSec),
          p50: ratioOf(subject.latencyMs.p50, ceiling.latencyMs.p50),
          p95: ratioOf(subject.latencyMs.p95, ceiling.latencyMs.p95),
          p99: ratioOf(subject.latencyMs.p99, ceiling.latencyMs.p99),
        };
        points.push({ concurrency, subject, ceiling, ratio });
        ctx.log(
          `  saga c=${concurrency}: on ${subject.throughputPerSec}/s p50 ${subject.latencyMs.p50} p95 ${subject.latencyMs.p95} p99 ${subject.latencyMs.p99} ms | ` +
            `off ${ceiling.throughputPerSec}/s p50 ${ceiling.latencyMs.p50} p95 ${ceiling.latencyMs.p95} p99 ${ceiling.latencyMs.p99} ms | ` +
            `ratio on/off ${ratio.throughput} (p50 ${ratio.p50}, p99 ${ratio.p99})` +
            (subject.errors || ceiling.errors
              ? ` | errors on ${subject.errors} off ${ceiling.errors} (${subject.firstError ?? ceiling.firstError})`
              : ''),
        );
      }

      // ------------------------------------------------------------------ (b) outbox write + drain
      const n = p.outboxMessages;
      const outboxSides = {
        off: {
          ds: offDs,
          publisher: new OutboxPublisher<EntityManager>({ writer: new PostgresOutboxStore(offDs) }),
          trials: [] as { writeMs: number; drainMs: number; bytes: number }[],
          errors: 0,
          firstError: null as string | null,
        },
        on: {
          ds: onDs,
          publisher: new OutboxPublisher<EntityManager>({
            writer: new PostgresOutboxStore(onDs),
            protector: prot.protector,
          }),
          trials: [] as { writeMs: number; drainMs: number; bytes: number }[],
          errors: 0,
          firstError: null as string | null,
        },
      };
      type OutboxSide = (typeof outboxSides)['off'];

      const trial = async (side: OutboxSide): Promise<void> => {
        await resetOutboxTables(admin);
        const txs = Math.ceil(n / MESSAGES_PER_TX);
        let next = 0;
        const t0 = performance.now();
        await Promise.all(
          Array.from({ length: WRITERS }, async () => {
            for (let tx = next++; tx < txs; tx = next++) {
              const first = tx * MESSAGES_PER_TX;
              const count = Math.min(MESSAGES_PER_TX, n - first);
              await side.ds.transaction((manager) =>
                side.publisher.publish(
                  Array.from({ length: count }, (_, i) => message(first + i)),
                  { manager },
                ),
              );
            }
          }),
        );
        const writeMs = performance.now() - t0;
        const size = await admin.query<{ bytes: string }>(
          `SELECT avg(octet_length(payload::text))::int AS bytes FROM ${OUTBOX_TABLES.outboxMessage}`,
        );
        await admin.query('CHECKPOINT');

        const broker = new InMemoryBroker();
        let sent = 0;
        let finish: (at: number) => void = () => undefined;
        const finished = new Promise<number>((resolve) => (finish = resolve));
        const relay = new OutboxRelay({
          store: new PostgresOutboxStore(side.ds),
          broker,
          relayId: `bench-dp-relay`,
          batchSize: BATCH_SIZE,
          publishBatchSize: PUBLISH_BATCH_SIZE,
          maxInFlight: MAX_IN_FLIGHT,
          leaseMs: LEASE_MS,
          onBatch: (report) => {
            sent += report.sent;
            if (sent >= n) finish(performance.now());
          },
        });
        const t1 = performance.now();
        relay.start();
        let t2: number;
        try {
          t2 = await deadline(`relay draining ${n} messages`, Math.max(60_000, n * 5), finished);
        } finally {
          await relay.stop();
        }
        side.trials.push({
          writeMs: round(writeMs, 1),
          drainMs: round(t2 - t1, 1),
          bytes: Number(size.rows[0]?.bytes ?? 0),
        });
      };

      // off, on, on, off, ...: drift on the machine falls on both sides.
      for (let rep = 0; rep < p.outboxRepetitions; rep++) {
        const order: OutboxSide[] =
          rep % 2 === 0 ? [outboxSides.off, outboxSides.on] : [outboxSides.on, outboxSides.off];
        for (const side of order) {
          try {
            await trial(side);
          } catch (error) {
            side.errors++;
            side.firstError ??= error instanceof Error ? error.message : String(error);
          }
        }
      }
      const outboxMeasurement = (side: OutboxSide): ProtectionOutboxMeasurement => {
        const write = side.trials.reduce((a, t) => a + t.writeMs, 0);
        const drain = side.trials.reduce((a, t) => a + t.drainMs, 0);
        const messages = n * side.trials.length;
        return {
          writePerSec: round(messages / (write / 1000), 1),
          drainPerSec: round(messages / (drain / 1000), 1),
          endToEndPerSec: round(messages / ((write + drain) / 1000), 1),
          trials: side.trials.map(({ writeMs, drainMs }) => ({ writeMs, drainMs })),
          storedPayloadBytes: side.trials.length
            ? Math.round(side.trials.reduce((a, t) => a + t.bytes, 0) / side.trials.length)
            : 0,
          errors: side.errors,
          firstError: side.firstError,
        };
      };
      const outOff = outboxMeasurement(outboxSides.off);
      const outOn = outboxMeasurement(outboxSides.on);
      const outboxRatio = {
        write: ratioOf(outOn.writePerSec, outOff.writePerSec),
        drain: ratioOf(outOn.drainPerSec, outOff.drainPerSec),
        endToEnd: ratioOf(outOn.endToEndPerSec, outOff.endToEndPerSec),
      };
      ctx.log(
        `  outbox ${n} msgs × ${p.outboxRepetitions}: write on ${outOn.writePerSec} / off ${outOff.writePerSec} msg/s (${outboxRatio.write}); ` +
          `drain on ${outOn.drainPerSec} / off ${outOff.drainPerSec} msg/s (${outboxRatio.drain}); ` +
          `end to end ${outboxRatio.endToEnd}; stored payload ${outOn.storedPayloadBytes} / ${outOff.storedPayloadBytes} B` +
          (outOn.errors || outOff.errors
            ? ` | errors on ${outOn.errors} off ${outOff.errors} (${outOn.firstError ?? outOff.firstError})`
            : ''),
      );

      // ------------------------------------------------------------------ (c) seal / open CPU
      const m = p.openMessages;
      const plain = Array.from({ length: m }, (_, i) => ({
        id: uuidv7(),
        type: MESSAGE_TYPE,
        payload: messagePayload(i) as OutboxMessageInput['payload'] & object,
        headers: {} as Record<string, string>,
      }));
      const sealUs = new Float64Array(m);
      const openUs = new Float64Array(m);
      const sealed = [];
      for (let i = 0; i < m; i++) {
        const t = performance.now();
        sealed.push(await prot.protector.sealMessage(plain[i]!));
        sealUs[i] = (performance.now() - t) * 1000;
      }
      for (let i = 0; i < m; i++) {
        const t = performance.now();
        await prot.protector.openMessage(sealed[i]!);
        openUs[i] = (performance.now() - t) * 1000;
      }
      const consume = { messages: m, sealUs: summarise(sealUs), openUs: summarise(openUs) };
      ctx.log(
        `  per message (warm keys): seal p50 ${consume.sealUs.p50} µs (mean ${consume.sealUs.mean}), ` +
          `open p50 ${consume.openUs.p50} µs (mean ${consume.openUs.mean}, p99 ${consume.openUs.p99})`,
      );

      return {
        kind: 'data-protection',
        name: NAME,
        description: this.description,
        config: {
          poolSize,
          subjects: SUBJECTS,
          subjectKeysPrecreated: true,
          sagaEncryptedInputFields: 3,
          sagaEncryptedResultFields: 3,
          warmupMs: profile.warmupMs,
          sagaDurationMs: p.sagaDurationMs,
          slices: profile.slices,
          outboxMessages: n,
          outboxRepetitions: p.outboxRepetitions,
          messagesPerTx: MESSAGES_PER_TX,
          writers: WRITERS,
          messageEncryptedFields: 3,
          batchSize: BATCH_SIZE,
        },
        saga: {
          calibration: { operations: k, subject: onCounts, ceiling: offCounts },
          points,
        },
        outbox: { off: outOff, on: outOn, ratio: outboxRatio },
        consume,
      };
    } finally {
      await admin.end();
      await onDs.destroy();
      await offDs.destroy();
    }
  },
};
