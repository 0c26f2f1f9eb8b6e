import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import pg from 'pg';
import type { DataSource, EntityManager } from 'typeorm';
import {
  createContracts,
  DATASCHEMA_HEADER,
  dataschemaOf,
  defineContract,
  IdempotentHandler,
  InMemoryBroker,
  OutboxPublisher,
  PostgresOutboxStore,
  SagaOutboxModule,
  uuidv7,
  type BrokerMessage,
  type JsonValue,
  type OutboxMessageInput,
  type SageContracts,
} from '@sage/saga-outbox';
import { clientConfig, sagaDataSource } from '../harness/database';
import { resetOutboxTables } from '../harness/outbox-load';
import type {
  ContractsProfile,
  ContractsComparison,
  ContractsThroughput,
  ContractValidationScenarioResult,
} from '../harness/results';
import { round, summarise } from '../harness/stats';
import type { Scenario, ScenarioContext } from './scenario';

const NAME = 'contract-validation-cost';
const OFF_APP = 'sage-bench-contracts-off';
const ON_APP = 'sage-bench-contracts-on';
const MESSAGE_TYPE = 'order.placed.contracted';
const DESTINATION = 'orders-contracted';
/** Outbox part: messages per transaction, and transactions in flight while writing. */
const MESSAGES_PER_TX = 10;
const WRITERS = 4;
/** Consume part: distinct message keys, i.e. deliveries in flight (the broker serialises a key). */
const CONSUME_KEYS = 8;

// ------------------------------------------------------------------ the contract (2 versions)

/** What version 2 shares with version 1: a realistic order event with formats and patterns. */
const COMMON_PROPERTIES = {
  orderId: { type: 'string', format: 'uuid' },
  orderNumber: { type: 'string', pattern: '^ORD-[0-9]{4}-[0-9]{6}$' },
  placedAt: { type: 'string', format: 'date-time' },
  status: { enum: ['placed', 'confirmed', 'cancelled'] },
  customer: {
    type: 'object',
    additionalProperties: false,
    required: ['id', 'name', 'email'],
    properties: {
      id: { type: 'string', pattern: '^customer-[0-9]+$' },
      name: { type: 'string', minLength: 1, maxLength: 200 },
      email: { type: 'string', format: 'email' },
      phone: { type: 'string', pattern: '^\\+[0-9]{7,15}$' },
    },
  },
  shippingAddress: {
    type: 'object',
    additionalProperties: false,
    required: ['street', 'city', 'postcode', 'country'],
    properties: {
      street: { type: 'string', minLength: 1, maxLength: 200 },
      city: { type: 'string', minLength: 1, maxLength: 100 },
      postcode: { type: 'string', pattern: '^[A-Z0-9 ]{3,10}$' },
      country: { type: 'string', pattern: '^[A-Z]{2}$' },
    },
  },
  currency: { type: 'string', pattern: '^[A-Z]{3}$' },
  lines: {
    type: 'array',
    minItems: 1,
    maxItems: 100,
    items: {
      type: 'object',
      additionalProperties: false,
      required: ['sku', 'qty', 'price'],
      properties: {
        sku: { type: 'string', pattern: '^sku-[0-9]{1,6}$' },
        qty: { type: 'integer', minimum: 1, maximum: 1000 },
        price: { type: 'number', minimum: 0 },
      },
    },
  },
  couponCode: { type: 'string', pattern: '^[A-Z0-9]{6,12}$' },
  giftWrap: { type: 'boolean' },
  trackingUrl: { type: 'string', format: 'uri' },
  locale: { type: 'string', pattern: '^[a-z]{2}-[A-Z]{2}$' },
  note: { type: 'string', maxLength: 2000 },
} as const;
const COMMON_REQUIRED = ['orderId', 'orderNumber', 'placedAt', 'status', 'customer'] as const;

/** Version 1: the total in cents, no sales channel. */
const V1 = defineContract({
  type: MESSAGE_TYPE,
  version: 1,
  schema: {
    type: 'object',
    additionalProperties: false,
    required: [...COMMON_REQUIRED, 'totalCents', 'lines'],
    properties: { ...COMMON_PROPERTIES, totalCents: { type: 'integer', minimum: 0 } },
  },
});

/** Version 2 (15 properties): the total as a number, and the sales channel; upcasts version 1. */
const V2 = defineContract({
  type: MESSAGE_TYPE,
  version: 2,
  schema: {
    type: 'object',
    additionalProperties: false,
    required: [...COMMON_REQUIRED, 'total', 'lines', 'channel'],
    properties: {
      ...COMMON_PROPERTIES,
      total: { type: 'number', minimum: 0 },
      channel: { enum: ['web', 'mobile', 'store'] },
    },
  },
  upcast: (previous) => {
    const { totalCents, ...rest } = previous as { totalCents: number } & Record<string, JsonValue>;
    return { ...rest, total: totalCents / 100, channel: 'web' };
  },
});

const PADDING = 'benchmark payload padding '.repeat(11);

/** A version-2 payload of about 1 kB of JSON, valid (every check is expected to pass). */
function payloadV2(n: number): Record<string, JsonValue> {
  const { totalCents, ...rest } = payloadV1(n);
  return { ...rest, total: totalCents / 100, channel: n % 2 ? 'web' : 'mobile' };
}

function payloadV1(n: number): Record<string, JsonValue> & { totalCents: number } {
  return {
    orderId: randomUUID(),
    orderNumber: `ORD-2026-${String(n % 1_000_000).padStart(6, '0')}`,
    placedAt: new Date(Date.UTC(2026, 0, 1) + n * 1000).toISOString(),
    status: 'placed',
    customer: {
      id: `customer-${n % 1000}`,
      name: `Customer ${n}`,
      email: `customer-${n}@example.test`,
      phone: `+4420${String(n % 10_000_000).padStart(7, '0')}`,
    },
    shippingAddress: {
      street: `${n % 200} Example Street`,
      city: 'Springfield',
      postcode: `SP${n % 10} 1AB`,
      country: 'GB',
    },
    currency: 'EUR',
    totalCents: (n % 997) * 325,
    lines: Array.from({ length: 5 }, (_, i) => ({
      sku: `sku-${(n + i) % 101}`,
      qty: 1 + ((n + i) % 3),
      price: 12.5 + i,
    })),
    couponCode: 'SPRING2026',
    giftWrap: n % 5 === 0,
    trackingUrl: `https://tracking.example.test/parcels/${n}`,
    locale: 'en-GB',
    note: PADDING,
  };
}

function message(n: number): OutboxMessageInput {
  return {
    destination: DESTINATION,
    type: MESSAGE_TYPE,
    key: `customer-${n % 1000}`,
    payload: payloadV2(n),
  };
}

// ------------------------------------------------------------------ helpers

function deadline<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const errorText = (error: unknown): string =>
  error instanceof Error ? error.message : String(error);

/**
 * A side's trials, alternating with the other side's so that drift on the machine hits both, after
 * one unmeasured trial per side (JIT, the pool's connections, Ajv's compiled code warm).
 */
interface Side {
  trialsMs: number[];
  errors: number;
  firstError: string | null;
}
const newSide = (): Side => ({ trialsMs: [], errors: 0, firstError: null });

async function alternate(
  repetitions: number,
  off: Side,
  on: Side,
  trial: (side: 'off' | 'on') => Promise<number>,
): Promise<void> {
  for (const which of ['off', 'on'] as const) {
    const side = which === 'on' ? on : off;
    await trial(which).catch((error: unknown) => {
      side.errors++;
      side.firstError ??= `warm-up: ${errorText(error)}`;
    });
  }
  for (let rep = 0; rep < repetitions; rep++) {
    const order = rep % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const);
    for (const which of order) {
      const side = which === 'on' ? on : off;
      try {
        side.trialsMs.push(round(await trial(which), 1));
      } catch (error) {
        side.errors++;
        side.firstError ??= errorText(error);
      }
    }
  }
}

function throughput(side: Side, messagesPerTrial: number): ContractsThroughput {
  const total = side.trialsMs.reduce((a, b) => a + b, 0);
  return {
    perSec: total > 0 ? round((messagesPerTrial * side.trialsMs.length) / (total / 1000), 1) : 0,
    trialsMs: side.trialsMs,
    errors: side.errors,
    firstError: side.firstError,
  };
}

const ratioOf = (a: number, b: number): number => (b > 0 ? round(a / b, 3) : 0);

/**
 * Both sides of a part: on ÷ off over summed time, and per repetition (off and on trials run back
 * to back) with their median, which one slow trial on a busy machine moves less.
 */
function compare(off: Side, on: Side, messagesPerTrial: number): ContractsComparison {
  const pairRatios =
    off.trialsMs.length === on.trialsMs.length
      ? off.trialsMs.map((offMs, i) => ratioOf(offMs, on.trialsMs[i]!))
      : [];
  const sorted = [...pairRatios].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = !sorted.length
    ? 0
    : sorted.length % 2
      ? sorted[mid]!
      : round((sorted[mid - 1]! + sorted[mid]!) / 2, 3);
  const result = {
    off: throughput(off, messagesPerTrial),
    on: throughput(on, messagesPerTrial),
    ratio: 0,
    pairRatios,
    pairMedianRatio: median,
    validationCpuPct: 0,
  };
  result.ratio = ratioOf(result.on.perSec, result.off.perSec);
  return result;
}

/** A consumer service: one @IdempotentHandler on `topic`, counting what it handles. */
function consumerProvider(topic: string, consumer: string, handled: { count: number }) {
  @Injectable()
  class BenchContractsConsumer {
    @IdempotentHandler(topic, { consumer })
    onOrder(): Promise<void> {
      handled.count++;
      return Promise.resolve();
    }
  }
  return BenchContractsConsumer;
}

// ------------------------------------------------------------------ the scenario

export const contractValidationCost: Scenario = {
  name: NAME,
  description:
    'What message contracts (`contracts`: JSON Schema validation with Ajv, draft 2020-12) cost, ' +
    'measured off and on in the same run, interleaved: the outbox write of ~1 kB order events (15 ' +
    'properties, nested objects, formats and patterns), the same events delivered through the inbox ' +
    'to an `@IdempotentHandler`, and the per-message CPU of the checks alone (with an upcast).',
  enabled: (profile) => profile.contracts !== undefined,

  async run(ctx: ScenarioContext): Promise<ContractValidationScenarioResult> {
    const { target, profile, poolSize } = ctx;
    const p: ContractsProfile = profile.contracts!;
    const contracts: SageContracts = createContracts({ publishes: [V2], consumes: [V1, V2] });
    const dataSources: DataSource[] = [];
    const apps: INestApplicationContext[] = [];
    const admin = new pg.Client(clientConfig(target, 'sage-bench-monitor'));
    await admin.connect();
    try {
      const offDs = sagaDataSource(target, poolSize, OFF_APP);
      const onDs = sagaDataSource(target, poolSize, ON_APP);
      dataSources.push(offDs, onDs);
      await offDs.initialize();
      await onDs.initialize();

      // ------------------------------------------------------------------ (a) outbox write
      const n = p.outboxMessages;
      const writers = {
        off: {
          ds: offDs,
          publisher: new OutboxPublisher<EntityManager>({ writer: new PostgresOutboxStore(offDs) }),
        },
        on: {
          ds: onDs,
          publisher: new OutboxPublisher<EntityManager>({
            writer: new PostgresOutboxStore(onDs),
            contracts: contracts.outgoing,
          }),
        },
      };
      // Payloads built before timing: both sides publish the same messages.
      const batches = Array.from({ length: Math.ceil(n / MESSAGES_PER_TX) }, (_, tx) =>
        Array.from({ length: Math.min(MESSAGES_PER_TX, n - tx * MESSAGES_PER_TX) }, (_, i) =>
          message(tx * MESSAGES_PER_TX + i),
        ),
      );
      const payloadBytes = Math.round(
        batches.flat().reduce((a, m) => a + JSON.stringify(m.payload).length, 0) / n,
      );
      const outOff = newSide();
      const outOn = newSide();
      await alternate(p.outboxRepetitions, outOff, outOn, async (which) => {
        const side = writers[which];
        await resetOutboxTables(admin);
        let next = 0;
        const t0 = performance.now();
        await Promise.all(
          Array.from({ length: WRITERS }, async () => {
            for (let tx = next++; tx < batches.length; tx = next++)
              await side.ds.transaction((manager) =>
                side.publisher.publish(batches[tx]!, { manager }),
              );
          }),
        );
        const ms = performance.now() - t0;
        const written = await admin.query<{ n: string }>(
          'SELECT count(*) AS n FROM sage.outbox_message',
        );
        if (Number(written.rows[0]?.n) !== n)
          throw new Error(`expected ${n} outbox rows, found ${written.rows[0]?.n}`);
        return ms;
      });
      const outbox = compare(outOff, outOn, n);
      ctx.log(
        `  outbox write ${n} msgs × ${p.outboxRepetitions}: on ${outbox.on.perSec} / off ${outbox.off.perSec} msg/s (ratio ${outbox.ratio}, median of pairs ${outbox.pairMedianRatio})` +
          (outOn.errors || outOff.errors
            ? ` | errors on ${outOn.errors} off ${outOff.errors} (${outOn.firstError ?? outOff.firstError})`
            : ''),
      );
      await resetOutboxTables(admin);

      // ------------------------------------------------------------------ (b) consume through the inbox
      const m = p.consumeMessages;
      const boot = async (
        which: 'off' | 'on',
        dataSource: DataSource,
      ): Promise<{ broker: InMemoryBroker; topic: string; handled: { count: number } }> => {
        const broker = new InMemoryBroker({ name: `bench-contracts-${which}` });
        const topic = `${DESTINATION}-${which}-${randomUUID().slice(0, 8)}`;
        const handled = { count: 0 };
        @Module({
          imports: [
            SagaOutboxModule.forRoot({
              dataSource,
              broker,
              outbox: { relay: { enabled: false }, retention: { enabled: false } },
              inbox: { retention: { enabled: false } },
              ...(which === 'on' ? { contracts: { publishes: [V2], consumes: [V1, V2] } } : {}),
            }),
          ],
          providers: [consumerProvider(topic, `bench.contracts-${which}`, handled)],
        })
        class BenchContractsModule {}
        apps.push(
          await NestFactory.createApplicationContext(BenchContractsModule, { logger: false }),
        );
        return { broker, topic, handled };
      };
      const consumers = { off: await boot('off', offDs), on: await boot('on', onDs) };
      const deliveries = Array.from({ length: m }, (_, i) => payloadV2(i));
      const conOff = newSide();
      const conOn = newSide();
      await alternate(p.consumeRepetitions, conOff, conOn, async (which) => {
        const c = consumers[which];
        await admin.query('TRUNCATE sage.inbox_message');
        const start = c.handled.count;
        const time = new Date();
        const batch: BrokerMessage[] = deliveries.map((payload, i) => ({
          id: uuidv7(),
          destination: c.topic,
          key: `k-${i % CONSUME_KEYS}`,
          type: MESSAGE_TYPE,
          payload,
          headers: { [DATASCHEMA_HEADER]: dataschemaOf(MESSAGE_TYPE, 2) },
          time,
        }));
        const t0 = performance.now();
        const done = c.broker.publish(batch);
        await deadline(
          `delivering ${m} messages through the inbox`,
          Math.max(60_000, m * 20),
          (async () => {
            await done;
            while (c.handled.count - start < m) await new Promise((r) => setTimeout(r, 2));
          })(),
        );
        const ms = performance.now() - t0;
        const dead = await admin.query<{ n: string }>(
          "SELECT count(*) AS n FROM sage.inbox_message WHERE status = 'dead_letter'",
        );
        if (Number(dead.rows[0]?.n)) throw new Error(`${dead.rows[0]?.n} deliveries dead-lettered`);
        return ms;
      });
      const consume = compare(conOff, conOn, m);
      ctx.log(
        `  inbox ${m} msgs × ${p.consumeRepetitions}: on ${consume.on.perSec} / off ${consume.off.perSec} msg/s (ratio ${consume.ratio}, median of pairs ${consume.pairMedianRatio})` +
          (conOn.errors || conOff.errors
            ? ` | errors on ${conOn.errors} off ${conOff.errors} (${conOn.firstError ?? conOff.firstError})`
            : ''),
      );

      // ------------------------------------------------------------------ (c) the checks alone
      const k = p.checkMessages;
      const v2 = Array.from({ length: k }, (_, i) => ({
        type: MESSAGE_TYPE,
        payload: payloadV2(i),
        headers: { [DATASCHEMA_HEADER]: dataschemaOf(MESSAGE_TYPE, 2) } as Record<string, string>,
      }));
      const v1 = Array.from({ length: k }, (_, i) => ({
        type: MESSAGE_TYPE,
        payload: payloadV1(i),
        headers: { [DATASCHEMA_HEADER]: dataschemaOf(MESSAGE_TYPE, 1) } as Record<string, string>,
      }));
      const outgoingUs = new Float64Array(k);
      const incomingUs = new Float64Array(k);
      const upcastUs = new Float64Array(k);
      let refused = 0;
      // Warm-up: Ajv's compiled code and the format regexes get optimised before timing.
      for (let i = 0; i < Math.min(k, 500); i++) {
        contracts.outgoing.checkOutgoing({ ...v2[i]!, headers: {} }, 0);
        contracts.incoming.checkIncoming(v2[i]!);
        contracts.incoming.checkIncoming(v1[i]!);
      }
      for (let i = 0; i < k; i++) {
        const msg = { ...v2[i]!, headers: {} };
        const t = performance.now();
        try {
          contracts.outgoing.checkOutgoing(msg, 0);
        } catch {
          refused++;
        }
        outgoingUs[i] = (performance.now() - t) * 1000;
      }
      for (let i = 0; i < k; i++) {
        const t = performance.now();
        const r = contracts.incoming.checkIncoming(v2[i]!);
        incomingUs[i] = (performance.now() - t) * 1000;
        if (!r.ok || r.upcast) refused++;
      }
      for (let i = 0; i < k; i++) {
        const t = performance.now();
        const r = contracts.incoming.checkIncoming(v1[i]!);
        upcastUs[i] = (performance.now() - t) * 1000;
        if (!r.ok || !r.upcast || r.version !== 2) refused++;
      }
      const check = {
        messages: k,
        payloadBytes,
        outgoingUs: summarise(outgoingUs),
        incomingUs: summarise(incomingUs),
        incomingUpcastUs: summarise(upcastUs),
        refused,
      };
      // What the checks alone would take of one core at the rate measured without them.
      outbox.validationCpuPct = round((check.outgoingUs.mean * outbox.off.perSec) / 1e4, 2);
      consume.validationCpuPct = round((check.incomingUs.mean * consume.off.perSec) / 1e4, 2);
      ctx.log(
        `  per message (${payloadBytes} B): checkOutgoing p50 ${check.outgoingUs.p50} µs (p99 ${check.outgoingUs.p99}), ` +
          `checkIncoming p50 ${check.incomingUs.p50} µs (p99 ${check.incomingUs.p99}), ` +
          `with upcast v1→v2 p50 ${check.incomingUpcastUs.p50} µs (p99 ${check.incomingUpcastUs.p99})` +
          `; at the off rates that is ${outbox.validationCpuPct}% (outbox) / ${consume.validationCpuPct}% (inbox) of one core` +
          (refused ? ` | ${refused} checks failed` : ''),
      );

      return {
        kind: 'contract-validation',
        name: NAME,
        description: this.description,
        config: {
          poolSize,
          schemaProperties: Object.keys((V2.schema as { properties: object }).properties).length,
          payloadBytes,
          outboxMessages: n,
          warmupTrialsPerSide: 1,
          outboxRepetitions: p.outboxRepetitions,
          messagesPerTx: MESSAGES_PER_TX,
          writers: WRITERS,
          consumeMessages: m,
          consumeRepetitions: p.consumeRepetitions,
          consumeKeys: CONSUME_KEYS,
          checkMessages: k,
        },
        outbox,
        consume,
        check,
      };
    } finally {
      for (const app of apps.reverse()) await app.close();
      await admin.end();
      for (const ds of dataSources) if (ds.isInitialized) await ds.destroy();
    }
  },
};
