import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import amqplib from 'amqplib';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Kafka, Partitioners, logLevel, type Message, type Producer } from 'kafkajs';
import type { Broker, BrokerMessage } from '@sage/saga-outbox';
import { KafkaBroker } from '@sage/saga-outbox/kafka';
import { NatsJetStreamBroker } from '@sage/saga-outbox/nats';
import { RabbitMqBroker } from '@sage/saga-outbox/rabbitmq';
import { connect as natsConnect, headers as natsHeaders, type NatsConnection } from './nats-client';

/**
 * The real brokers the harness publishes to (scripts/services.sh starts them; `eval "$(bash
 * scripts/services.sh env kafka rabbitmq nats)"` exports their addresses). Every run uses its own
 * Kafka topic, RabbitMQ exchange + queue and NATS stream + subject prefix, named after a run id,
 * and deletes them at the end, so runs never see each other's messages and the shared servers
 * are left as they were.
 *
 * For each broker there are two publishers of the same BrokerMessage:
 * - the Sage adapter (`sage()`), constructed as an application constructs it, adapter defaults;
 * - the raw ceiling (`raw()`): the same client library the adapter uses, configured the same
 *   (kafkajs idempotent producer acks=-1, amqplib confirm channel persistent+mandatory, NATS
 *   JetStream publish with Nats-Msg-Id), the same CloudEvents headers and JSON body, no Sage code.
 */
export type BrokerKind = 'kafka' | 'rabbitmq' | 'nats';
export const BROKER_KINDS: readonly BrokerKind[] = ['kafka', 'rabbitmq', 'nats'];

/** Kafka partitions of the bench topic (created explicitly, replication factor 1). */
export const KAFKA_PARTITIONS = 4;

/**
 * Creates `topics` with KAFKA_PARTITIONS partitions and replication factor 1, waiting for their
 * leaders, through a short-lived admin client of `kafka`.
 */
export async function createKafkaTopics(kafka: Kafka, topics: string[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: topics.map((topic) => ({
        topic,
        numPartitions: KAFKA_PARTITIONS,
        replicationFactor: 1,
      })),
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
}

/** NatsJetStreamBroker's default maxPending: the adapter never has more PubAcks outstanding. */
export const NATS_MAX_PENDING = 256;

export interface RawPublisher {
  /** Resolves once the broker acknowledged every message (throws on any failure). */
  publish(batch: readonly BrokerMessage[]): Promise<void>;
  close(): Promise<void>;
}

export interface BrokerTarget {
  kind: BrokerKind;
  /** The destination the bench rows carry (topic / routing key / subject suffix). */
  destination: string;
  /** Where, for the report (no credentials). */
  address: string;
  /**
   * The same adapter as `sage()` as a `brokerFromUrl` URL (this run's exchange / stream), for
   * child processes that build their own Broker. Holds credentials: never print it.
   */
  url: string;
  /** Client library and version, for the report. */
  client: string;
  /** Most messages the adapter keeps unacknowledged per Broker instance (Infinity: no own cap). */
  adapterWindow: number;
  /** Creates the topic / queue / stream. */
  setup(): Promise<void>;
  /**
   * The Sage adapter with the bench settings; `tuning` (adapter options of this kind, e.g.
   * `{ producer: { lingerMs: 5 } }` for Kafka) goes on top (the broker-tuning scenario).
   */
  sage(tuning?: object): Broker;
  raw(): Promise<RawPublisher>;
  /** Drops the messages published so far (between drains), where the broker allows. */
  purge(): Promise<void>;
  /** Deletes what setup created. Best effort. */
  teardown(): Promise<void>;
}

/** The brokers configured in the environment; the others with why they are skipped. */
export function brokerTargets(
  runId: string,
  env: NodeJS.ProcessEnv = process.env,
): { targets: BrokerTarget[]; skipped: { kind: BrokerKind; reason: string }[] } {
  const targets: BrokerTarget[] = [];
  const skipped: { kind: BrokerKind; reason: string }[] = [];
  // --brokers kafka,nats (run.ts) narrows the set.
  const only = env.SAGE_BENCH_BROKERS?.split(',').map((b) => b.trim());
  const wanted = (kind: BrokerKind): boolean => !only || only.includes(kind);
  const kafka = wanted('kafka') ? env.SAGE_KAFKA_BROKERS : undefined;
  const rabbit = wanted('rabbitmq') ? env.SAGE_RABBITMQ_URL : undefined;
  const nats = wanted('nats') ? env.SAGE_NATS_URL : undefined;
  const why = (kind: BrokerKind, variable: string): string =>
    wanted(kind) ? `${variable} is not set` : 'not in --brokers';
  if (kafka) targets.push(kafkaTarget(kafka.split(','), runId));
  else skipped.push({ kind: 'kafka', reason: why('kafka', 'SAGE_KAFKA_BROKERS') });
  if (rabbit) targets.push(rabbitTarget(rabbit, runId));
  else skipped.push({ kind: 'rabbitmq', reason: why('rabbitmq', 'SAGE_RABBITMQ_URL') });
  if (nats) targets.push(natsTarget(nats.split(','), runId));
  else skipped.push({ kind: 'nats', reason: why('nats', 'SAGE_NATS_URL') });
  return { targets, skipped };
}

/** Installed version, from node_modules (some packages do not export their package.json). */
function version(pkg: string): string {
  try {
    const file = path.resolve(__dirname, '../../node_modules', pkg, 'package.json');
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

/** CloudEvents binary-mode headers, as every adapter writes them. */
function ceHeaders(m: BrokerMessage): Record<string, string> {
  const h: Record<string, string> = {
    'ce-source': 'sage',
    ...m.headers,
    'ce-specversion': '1.0',
    'ce-id': m.id,
    'ce-type': m.type,
    'ce-time': m.time.toISOString(),
    'content-type': 'application/json',
  };
  if (m.key !== null) h['ce-subject'] = m.key;
  return h;
}

// ---------------------------------------------------------------------------------------------

function kafkaTarget(brokers: string[], runId: string): BrokerTarget {
  const topic = `sage-bench-${runId}`;
  const kafka = new Kafka({ clientId: 'sage-bench-admin', brokers, logLevel: logLevel.NOTHING });
  return {
    kind: 'kafka',
    destination: topic,
    address: brokers.join(','),
    url: `kafka://${brokers.join(',')}?clientId=sage-bench-relay`,
    client: `kafkajs ${version('kafkajs')}`,
    adapterWindow: Infinity,
    async setup() {
      await createKafkaTopics(kafka, [topic]);
    },
    sage: (tuning = {}) => new KafkaBroker({ brokers, clientId: 'sage-bench-relay', ...tuning }),
    async raw() {
      const client = new Kafka({
        clientId: 'sage-bench-raw',
        brokers,
        logLevel: logLevel.NOTHING,
        connectionTimeout: 3000,
      });
      // As KafkaBroker configures its producer.
      const producer: Producer = client.producer({
        idempotent: true,
        maxInFlightRequests: 5,
        allowAutoTopicCreation: true,
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      await producer.connect();
      return {
        async publish(batch) {
          const messages: Message[] = batch.map((m) => ({
            key: m.key,
            value: JSON.stringify(m.payload),
            headers: ceHeaders(m),
          }));
          await producer.sendBatch({ acks: -1, topicMessages: [{ topic, messages }] });
        },
        close: () => producer.disconnect(),
      };
    },
    purge: () => Promise.resolve(),
    async teardown() {
      const admin = kafka.admin();
      await admin.connect();
      try {
        await admin.deleteTopics({ topics: [topic], timeout: 10_000 });
      } finally {
        await admin.disconnect();
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------

function rabbitTarget(url: string, runId: string): BrokerTarget {
  const exchange = `sage-bench-${runId}`;
  const destination = `sage-bench-${runId}`;
  const redacted = url.replace(/\/\/[^@]*@/, '//');
  /** The queue RabbitMqBroker declares for `destination` (no group): named after it, quorum. */
  const queue = destination;
  const withChannel = async <T>(work: (ch: amqplib.Channel) => Promise<T>): Promise<T> => {
    const conn = await amqplib.connect(url, { noDelay: true }); // as the adapter (TCP_NODELAY)
    try {
      const ch = await conn.createChannel();
      return await work(ch);
    } finally {
      await conn.close().catch(() => undefined);
    }
  };
  return {
    kind: 'rabbitmq',
    destination,
    address: redacted,
    url: `${url}${url.includes('?') ? '&' : '?'}exchange=${encodeURIComponent(exchange)}`,
    client: `amqplib ${version('amqplib')} (adapter via amqp-connection-manager ${version('amqp-connection-manager')})`,
    adapterWindow: Infinity,
    async setup() {
      // The adapter declares the queue (quorum, dead-lettering, bound to the exchange) itself.
      const broker = new RabbitMqBroker({ url, exchange });
      try {
        await broker.connected();
        await broker.declareQueue(destination);
      } finally {
        await broker.close();
      }
    },
    sage: (tuning = {}) => new RabbitMqBroker({ url, exchange, ...tuning }),
    async raw() {
      const conn = await amqplib.connect(url, { noDelay: true }); // as the adapter (TCP_NODELAY)
      const ch = await conn.createConfirmChannel();
      return {
        async publish(batch) {
          await Promise.all(
            batch.map(
              (m) =>
                new Promise<void>((resolve, reject) => {
                  const h = ceHeaders(m);
                  delete h['content-type'];
                  ch.publish(
                    exchange,
                    m.destination,
                    Buffer.from(JSON.stringify(m.payload)),
                    {
                      persistent: true,
                      mandatory: true,
                      messageId: m.id,
                      type: m.type,
                      timestamp: Math.floor(m.time.getTime() / 1000),
                      contentType: 'application/json',
                      contentEncoding: 'utf-8',
                      headers: h,
                    },
                    (error: unknown) =>
                      error
                        ? reject(error instanceof Error ? error : new Error('nacked by the broker'))
                        : resolve(),
                  );
                }),
            ),
          );
        },
        async close() {
          await ch.close().catch(() => undefined);
          await conn.close().catch(() => undefined);
        },
      };
    },
    purge: () => withChannel(async (ch) => void (await ch.purgeQueue(queue))),
    async teardown() {
      await withChannel(async (ch) => {
        await ch.deleteQueue(queue);
        await ch.deleteQueue(`${queue}.dlq`).catch(() => undefined);
      });
      await withChannel(async (ch) => {
        await ch.deleteExchange(exchange);
        await ch.deleteExchange(`${exchange}.dlx`);
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------

function natsTarget(servers: string[], runId: string): BrokerTarget {
  const stream = `SAGE_BENCH_${runId.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  const prefix = `sagebench${runId.replace(/[^A-Za-z0-9]/g, '')}.`;
  const destination = 'orders';
  const manager = async <T>(
    work: (jsm: Awaited<ReturnType<typeof jetstreamManager>>) => Promise<T>,
  ): Promise<T> => {
    const nc = await natsConnect({ servers, name: 'sage-bench-admin' });
    try {
      return await work(await jetstreamManager(nc));
    } finally {
      await nc.close();
    }
  };
  return {
    kind: 'nats',
    destination,
    address: servers.join(','),
    url: `nats://${servers.map((s) => s.replace(/^[a-z]+:\/\//, '')).join(',')}?stream=${encodeURIComponent(stream)}&prefix=${encodeURIComponent(prefix)}`,
    client: `@nats-io/jetstream ${version('@nats-io/jetstream')}`,
    adapterWindow: NATS_MAX_PENDING,
    async setup() {
      // The adapter provisions its stream (file storage) on first publish; nothing to do here.
    },
    sage: (tuning = {}) =>
      new NatsJetStreamBroker({ servers, stream, subjectPrefix: prefix, ...tuning }),
    async raw() {
      const nc: NatsConnection = await natsConnect({ servers, name: 'sage-bench-raw' });
      const js: JetStreamClient = jetstream(nc);
      const encoder = new TextEncoder();
      // The adapter's PendingAcks cap, so the raw side has the same window.
      let pending = 0;
      const waiters: (() => void)[] = [];
      const acquire = async (): Promise<void> => {
        while (pending >= NATS_MAX_PENDING) await new Promise<void>((r) => waiters.push(r));
        pending++;
      };
      const release = (): void => {
        pending--;
        waiters.shift()?.();
      };
      return {
        async publish(batch) {
          await Promise.all(
            batch.map(async (m) => {
              const h = natsHeaders();
              for (const [k, v] of Object.entries(ceHeaders(m))) h.set(k, v);
              await acquire();
              try {
                await js.publish(
                  prefix + m.destination,
                  encoder.encode(JSON.stringify(m.payload)),
                  {
                    msgID: m.id,
                    headers: h,
                    timeout: 5000,
                  },
                );
              } finally {
                release();
              }
            }),
          );
        },
        close: () => nc.drain(),
      };
    },
    purge: () =>
      manager(async (jsm) => {
        await jsm.streams.purge(stream).catch(() => undefined);
      }),
    teardown: () =>
      manager(async (jsm) => {
        await jsm.streams.delete(stream).catch(() => undefined);
      }),
  };
}

/**
 * Runs `work` once per configured broker, with setup before and teardown after (even when it
 * fails); a broker that fails is reported, not fatal. The extension point for every real-broker
 * scenario (issue 5, 3c "2-step remote saga over a broker" included): take the target's `sage()`
 * adapter for the system under test, `raw()` for its ceiling, `destination` for the messages.
 */
export async function forEachBroker<T>(
  runId: string,
  log: (line: string) => void,
  work: (target: BrokerTarget) => Promise<T>,
): Promise<{
  results: { target: BrokerTarget; result?: T; error?: string }[];
  skipped: { broker: BrokerTarget['kind']; reason: string }[];
}> {
  const { targets, skipped } = brokerTargets(runId);
  for (const s of skipped) log(`  ${s.kind}: skipped (${s.reason})`);
  const results: { target: BrokerTarget; result?: T; error?: string }[] = [];
  for (const target of targets) {
    try {
      await target.setup();
      results.push({ target, result: await work(target) });
    } catch (error) {
      const text = error instanceof Error ? error.message : String(error);
      log(`  ${target.kind}: FAILED ${text}`);
      results.push({ target, error: text });
    } finally {
      await target.teardown().catch((error: unknown) => {
        log(`  ${target.kind}: teardown failed: ${String(error)}`);
      });
    }
  }
  return { results, skipped: skipped.map((s) => ({ broker: s.kind, reason: s.reason })) };
}

/** A broker's run as a scenario result lists it when forEachBroker reported it failed. */
export interface FailedBrokerRun {
  broker: BrokerKind;
  address: string;
  client: string;
  points: [];
  error: string | undefined;
}

/** forEachBroker's results as the scenario's per-broker runs: a failed broker as an empty run with its error. */
export function brokerRuns<T>(
  results: { target: BrokerTarget; result?: T; error?: string }[],
): (T | FailedBrokerRun)[] {
  return results.map((r) =>
    r.result
      ? r.result
      : {
          broker: r.target.kind,
          address: r.target.address,
          client: r.target.client,
          points: [],
          error: r.error,
        },
  );
}

/** A message as the relay hands it to the broker, from outbox row fields. */
export function brokerMessageOf(row: {
  id: string;
  destination: string;
  key: string | null;
  type: string;
  payload: unknown;
  headers: unknown;
  created_at?: Date;
}): BrokerMessage {
  return {
    id: row.id,
    destination: row.destination,
    key: row.key,
    type: row.type,
    payload: row.payload as BrokerMessage['payload'],
    headers: (row.headers ?? {}) as Record<string, string>,
    time: row.created_at ?? new Date(),
  };
}
