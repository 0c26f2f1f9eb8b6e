import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  StorageType,
} from '@nats-io/jetstream';
import type { ConsumerMessages } from '@nats-io/jetstream';
import amqplib from 'amqplib';
import { Kafka, Partitioners, logLevel, type Consumer } from 'kafkajs';
import { createKafkaTopics, type BrokerKind } from './brokers';
import { connect as natsConnect, headers as natsHeaders, type MsgHdrs } from './nats-client';

/**
 * The raw ceiling's transport for a message round trip (saga-remote-2step): the client library the
 * Sage adapter of `kind` uses, publishing with the adapter's durability settings and consuming with
 * the adapter's default concurrency, with none of the adapter's bookkeeping (no redelivery
 * scheduling, no CloudEvents mapping beyond an id and a type).
 *
 * - Kafka: idempotent producer, acks=-1; one consumer group per destination, topics of
 *   KAFKA_PARTITIONS partitions, 4 partitions consumed concurrently, offsets auto-committed.
 * - RabbitMQ: confirm channel, persistent + mandatory, topic exchange, quorum queue per destination,
 *   prefetch 32 with handlers running concurrently, manual ack.
 * - NATS JetStream: file stream, `msgID` on publish (deduplication), a durable pull consumer per
 *   destination, max 16 messages pulled, handled one at a time, explicit ack.
 *
 * Everything it creates is named after `runId` and deleted by `close()`.
 */
export interface RawRoundTripMessage {
  id: string;
  type: string;
  key: string;
  body: Record<string, string>;
}

export interface RawRoundTrip {
  /** Resolves once the broker acknowledged the message (throws otherwise). */
  publish(destination: string, message: RawRoundTripMessage): Promise<void>;
  /** Starts consuming `destination`; resolves once the consumer is ready (Kafka: joined its group). */
  consume(
    destination: string,
    handler: (message: RawRoundTripMessage) => Promise<void>,
  ): Promise<void>;
  /** Stops the consumers and deletes what was created (best effort). */
  close(): Promise<void>;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

function parse(
  id: string | undefined,
  type: string | undefined,
  key: string | undefined,
  body: string,
): RawRoundTripMessage {
  return {
    id: id ?? '',
    type: type ?? '',
    key: key ?? '',
    body: JSON.parse(body) as Record<string, string>,
  };
}

/** The raw transport of `kind`, with its topics / queues / stream for `destinations` created. */
export async function rawRoundTrip(
  kind: BrokerKind,
  runId: string,
  destinations: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<RawRoundTrip> {
  switch (kind) {
    case 'kafka':
      return kafkaRoundTrip(
        required(env.SAGE_KAFKA_BROKERS, 'SAGE_KAFKA_BROKERS').split(','),
        runId,
        destinations,
      );
    case 'rabbitmq':
      return rabbitRoundTrip(
        required(env.SAGE_RABBITMQ_URL, 'SAGE_RABBITMQ_URL'),
        runId,
        destinations,
      );
    case 'nats':
      return natsRoundTrip(required(env.SAGE_NATS_URL, 'SAGE_NATS_URL').split(','), runId);
  }
}

function required(value: string | undefined, name: string): string {
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

/** Topic name of a raw destination (kept apart from the Sage side's topics). */
export function rawKafkaTopic(runId: string, destination: string): string {
  return `sage-bench-raw-${runId}-${destination}`;
}

async function kafkaRoundTrip(
  brokers: string[],
  runId: string,
  destinations: readonly string[],
): Promise<RawRoundTrip> {
  const kafka = new Kafka({ clientId: 'sage-bench-raw-rt', brokers, logLevel: logLevel.NOTHING });
  const topics = destinations.map((d) => rawKafkaTopic(runId, d));
  await createKafkaTopics(kafka, topics);
  // As KafkaBroker configures its producer.
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 5,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  const consumers: Consumer[] = [];
  return {
    async publish(destination, m) {
      await producer.send({
        topic: rawKafkaTopic(runId, destination),
        acks: -1,
        messages: [
          {
            key: m.key,
            value: JSON.stringify(m.body),
            headers: { 'ce-id': m.id, 'ce-type': m.type },
          },
        ],
      });
    },
    async consume(destination, handler) {
      // A topic just created can still be unknown to the broker a new member asks ("does not host
      // this topic-partition"): retry the join with a fresh consumer.
      for (let attempt = 1; ; attempt++) {
        // KafkaBroker's consumer defaults: session 10 s, heartbeat 1 s, fetch long-poll 500 ms.
        const consumer = kafka.consumer({
          groupId: `sage-bench-raw-${runId}-${destination}`,
          sessionTimeout: 10_000,
          heartbeatInterval: 1_000,
          maxWaitTimeInMs: 500,
        });
        const joined = new Promise<void>((resolve) => {
          const off = consumer.on(consumer.events.GROUP_JOIN, () => {
            off();
            resolve();
          });
        });
        try {
          await consumer.connect();
          await consumer.subscribe({
            topics: [rawKafkaTopic(runId, destination)],
            fromBeginning: true,
          });
          await consumer.run({
            partitionsConsumedConcurrently: 4,
            eachMessage: async ({ message }) => {
              const h = message.headers ?? {};
              await handler(
                parse(
                  h['ce-id']?.toString(),
                  h['ce-type']?.toString(),
                  message.key?.toString(),
                  message.value?.toString() ?? '{}',
                ),
              );
            },
          });
          await joined;
          consumers.push(consumer);
          return;
        } catch (error) {
          await consumer.disconnect().catch(() => undefined);
          if (attempt >= 5) throw error;
          await new Promise((r) => setTimeout(r, 500 * attempt));
        }
      }
    },
    async close() {
      await Promise.allSettled(consumers.map((c) => c.disconnect()));
      await producer.disconnect().catch(() => undefined);
      const a = kafka.admin();
      await a.connect();
      await a.deleteTopics({ topics, timeout: 10_000 }).catch(() => undefined);
      await a.disconnect();
    },
  };
}

async function rabbitRoundTrip(
  url: string,
  runId: string,
  destinations: readonly string[],
): Promise<RawRoundTrip> {
  const exchange = `sage-bench-raw-${runId}`;
  const queueOf = (destination: string): string => `sage-bench-raw-${runId}.${destination}`;
  const conn = await amqplib.connect(url, { noDelay: true }); // as the adapter (TCP_NODELAY)
  const pub = await conn.createConfirmChannel();
  await pub.assertExchange(exchange, 'topic', { durable: true });
  for (const d of destinations) {
    await pub.assertQueue(queueOf(d), { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await pub.bindQueue(queueOf(d), exchange, d);
  }
  const channels: amqplib.Channel[] = [];
  return {
    publish: (destination, m) =>
      new Promise<void>((resolve, reject) => {
        pub.publish(
          exchange,
          destination,
          Buffer.from(JSON.stringify(m.body)),
          {
            persistent: true,
            mandatory: true,
            messageId: m.id,
            type: m.type,
            contentType: 'application/json',
            headers: { 'ce-subject': m.key },
          },
          (error: unknown) =>
            error
              ? reject(error instanceof Error ? error : new Error('nacked by the broker'))
              : resolve(),
        );
      }),
    async consume(destination, handler) {
      const ch = await conn.createChannel();
      channels.push(ch);
      // RabbitMqBroker's default prefetch; the callback runs handlers concurrently, as the adapter does.
      await ch.prefetch(32);
      await ch.consume(
        queueOf(destination),
        (msg) => {
          if (!msg) return;
          const p = msg.properties as {
            messageId?: string;
            type?: string;
            headers?: Record<string, unknown>;
          };
          handler(
            parse(
              p.messageId,
              p.type,
              p.headers?.['ce-subject'] as string | undefined,
              msg.content.toString(),
            ),
          )
            .then(
              () => ch.ack(msg),
              () => ch.nack(msg, false, true),
            )
            .catch(() => undefined);
        },
        { noAck: false },
      );
    },
    async close() {
      await Promise.allSettled(channels.map((ch) => ch.close()));
      for (const d of destinations) await pub.deleteQueue(queueOf(d)).catch(() => undefined);
      await pub.deleteExchange(exchange).catch(() => undefined);
      await pub.close().catch(() => undefined);
      await conn.close().catch(() => undefined);
    },
  };
}

async function natsRoundTrip(servers: string[], runId: string): Promise<RawRoundTrip> {
  const safe = runId.replace(/[^A-Za-z0-9]/g, '');
  const stream = `SAGE_BENCH_RAW_${safe}`;
  const prefix = `sagebenchraw${safe}.`;
  const nc = await natsConnect({ servers, name: 'sage-bench-raw-rt' });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: stream, subjects: [`${prefix}>`], storage: StorageType.File });
  const js = jetstream(nc);
  const loops: { messages: ConsumerMessages; done: Promise<void> }[] = [];
  return {
    async publish(destination, m) {
      const h = natsHeaders();
      h.set('ce-type', m.type);
      h.set('ce-subject', m.key);
      await js.publish(prefix + destination, encoder.encode(JSON.stringify(m.body)), {
        msgID: m.id,
        headers: h,
        timeout: 5000,
      });
    },
    async consume(destination, handler) {
      const durable = `raw_${destination.replace(/[^A-Za-z0-9_-]/g, '_')}`;
      await jsm.consumers.add(stream, {
        durable_name: durable,
        filter_subject: prefix + destination,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
      });
      const consumer = await js.consumers.get(stream, durable);
      // NatsJetStreamBroker's default prefetch, handled one at a time as its consume loop does.
      const messages = await consumer.consume({ max_messages: 16 });
      const done = (async () => {
        for await (const m of messages) {
          // The message type lives behind @nats-io's "exports"; its headers are the re-exported MsgHdrs.
          const h = m.headers as MsgHdrs | undefined;
          try {
            await handler(
              parse(
                h?.get('Nats-Msg-Id'),
                h?.get('ce-type'),
                h?.get('ce-subject'),
                decoder.decode(m.data),
              ),
            );
            m.ack();
          } catch {
            m.nak();
          }
        }
      })();
      loops.push({ messages, done });
    },
    async close() {
      for (const l of loops) await l.messages.close().catch(() => undefined);
      await Promise.allSettled(loops.map((l) => l.done));
      await jsm.streams.delete(stream).catch(() => undefined);
      await nc.close().catch(() => undefined);
    },
  };
}
