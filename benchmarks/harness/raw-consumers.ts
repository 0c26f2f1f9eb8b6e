import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import amqplib from 'amqplib';
import { Kafka, logLevel, type Consumer } from 'kafkajs';
import type { Broker } from '@sage/saga-outbox';
import { RabbitMqBroker } from '@sage/saga-outbox/rabbitmq';
import { KAFKA_PARTITIONS, type BrokerTarget } from './brokers';
import { connect as natsConnect } from './nats-client';

/**
 * The raw ceiling of consumer-throughput: the client library a Sage adapter consumes with,
 * configured as the adapter configures it (same group / queue / durable consumer kind, same
 * prefetch or pull size, explicit acks / committed offsets), parsing each JSON body and
 * acknowledging it, with no Sage code and no database. `onMessage` is called once per message
 * handed over (after its ack was sent).
 */
export interface RawConsumer {
  stop(): Promise<void>;
}

/** Settings the adapters use by default, copied here so the raw side matches them. */
const KAFKA_CONSUMER = {
  sessionTimeout: 10_000,
  heartbeatInterval: 1000,
  maxWaitTimeInMs: 500,
  partitionsConsumedConcurrently: 4,
};
const RABBITMQ_PREFETCH = 32;
const NATS_PULL = { max_messages: 16, expires: 5000 };
const NATS_ACK_WAIT_NS = 30_000 * 1_000_000;

/**
 * Prepares `group` to receive what is published to `target.destination` from now on, where the
 * broker needs it before the messages arrive (RabbitMQ: the group's queue, declared by the adapter's
 * own topology). Kafka and NATS consumers read from the start of the topic / stream.
 */
export async function prepareConsumerGroup(
  target: BrokerTarget,
  adapter: Broker,
  group: string,
): Promise<void> {
  if (target.kind !== 'rabbitmq') return;
  if (!(adapter instanceof RabbitMqBroker)) throw new Error('expected the RabbitMQ adapter');
  await adapter.connected();
  await adapter.declareQueue(target.destination, group);
}

/**
 * Removes what the drains' consumer groups left on the shared broker, best effort: RabbitMQ queues
 * (and their dead-letter queues), which outlive the run's exchange; Kafka groups' committed offsets.
 * NATS durable consumers go with the run's stream (BrokerTarget.teardown).
 */
export async function dropConsumerGroups(
  target: BrokerTarget,
  adapter: Broker,
  groups: readonly string[],
): Promise<void> {
  if (target.kind === 'rabbitmq' && adapter instanceof RabbitMqBroker) {
    const url = process.env.SAGE_RABBITMQ_URL;
    if (!url) return;
    const conn = await amqplib.connect(url);
    try {
      for (const group of groups) {
        const queue = adapter.queueName(target.destination, group);
        // A channel closes on a failed operation: one per queue.
        for (const q of [queue, `${queue}.dlq`]) {
          const ch = await conn.createChannel();
          await ch.deleteQueue(q).catch(() => undefined);
          await ch.close().catch(() => undefined);
        }
      }
    } finally {
      await conn.close().catch(() => undefined);
    }
  } else if (target.kind === 'kafka') {
    const admin = new Kafka({
      clientId: 'sage-bench-admin',
      brokers: target.address.split(','),
      logLevel: logLevel.NOTHING,
    }).admin();
    await admin.connect();
    try {
      await admin.deleteGroups([...groups]).catch(() => undefined);
    } finally {
      await admin.disconnect();
    }
  }
}

/** Starts a raw consumer of `target.destination` in consumer group `group` (see prepareConsumerGroup). */
export async function startRawConsumer(
  target: BrokerTarget,
  adapter: Broker,
  group: string,
  onMessage: () => void,
): Promise<RawConsumer> {
  switch (target.kind) {
    case 'kafka':
      return rawKafka(target, group, onMessage);
    case 'rabbitmq': {
      if (!(adapter instanceof RabbitMqBroker)) throw new Error('expected the RabbitMQ adapter');
      return rawRabbit(adapter.queueName(target.destination, group), onMessage);
    }
    case 'nats':
      return rawNats(target, group, onMessage);
  }
}

/** kafkajs consumer, auto-commit off, a partition's batch handled in order, offsets committed per batch. */
async function rawKafka(
  target: BrokerTarget,
  group: string,
  onMessage: () => void,
): Promise<RawConsumer> {
  const kafka = new Kafka({
    clientId: 'sage-bench-raw-consumer',
    brokers: target.address.split(','),
    logLevel: logLevel.NOTHING,
  });
  const consumer: Consumer = kafka.consumer({
    groupId: group,
    sessionTimeout: KAFKA_CONSUMER.sessionTimeout,
    heartbeatInterval: KAFKA_CONSUMER.heartbeatInterval,
    maxWaitTimeInMs: KAFKA_CONSUMER.maxWaitTimeInMs,
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [target.destination], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: Math.min(
      KAFKA_CONSUMER.partitionsConsumedConcurrently,
      KAFKA_PARTITIONS,
    ),
    eachBatch: async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary }) => {
      let last: string | undefined;
      for (const record of batch.messages) {
        JSON.parse(record.value?.toString('utf8') ?? 'null');
        resolveOffset(record.offset);
        last = record.offset;
        onMessage();
        await heartbeat();
      }
      if (last !== undefined)
        await commitOffsetsIfNecessary({
          topics: [
            {
              topic: batch.topic,
              partitions: [{ partition: batch.partition, offset: (BigInt(last) + 1n).toString() }],
            },
          ],
        });
    },
  });
  return { stop: () => consumer.disconnect() };
}

/** amqplib channel with the adapter's prefetch, manual acks. */
async function rawRabbit(queue: string, onMessage: () => void): Promise<RawConsumer> {
  const url = process.env.SAGE_RABBITMQ_URL;
  if (!url) throw new Error('SAGE_RABBITMQ_URL is not set');
  const conn = await amqplib.connect(url, { noDelay: true });
  const ch = await conn.createChannel();
  await ch.prefetch(RABBITMQ_PREFETCH);
  await ch.consume(
    queue,
    (msg) => {
      if (!msg) return;
      JSON.parse(msg.content.toString('utf8'));
      ch.ack(msg);
      onMessage();
    },
    { noAck: false },
  );
  return {
    async stop() {
      await ch.close().catch(() => undefined);
      await conn.close().catch(() => undefined);
    },
  };
}

/** A durable pull consumer (explicit acks, deliver all) pulled with the adapter's pull size. */
async function rawNats(
  target: BrokerTarget,
  group: string,
  onMessage: () => void,
): Promise<RawConsumer> {
  // The target's adapter URL carries this run's stream and subject prefix (never printed).
  const query = new URLSearchParams(target.url.slice(target.url.indexOf('?') + 1));
  const stream = query.get('stream');
  const prefix = query.get('prefix');
  if (!stream || !prefix) throw new Error('the NATS target has no stream / prefix');
  const nc = await natsConnect({
    servers: target.address.split(','),
    name: 'sage-bench-raw-consumer',
  });
  const jsm = await jetstreamManager(nc);
  const durable = group.replace(/[^A-Za-z0-9_-]/g, '_');
  await jsm.consumers.add(stream, {
    durable_name: durable,
    filter_subject: prefix + target.destination,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: NATS_ACK_WAIT_NS,
    max_deliver: -1,
  });
  const consumer = await jetstream(nc).consumers.get(stream, durable);
  const messages = await consumer.consume(NATS_PULL);
  const loop = (async () => {
    for await (const m of messages) {
      JSON.parse(m.string());
      m.ack();
      onMessage();
    }
  })();
  return {
    async stop() {
      await messages.close().catch(() => undefined);
      await loop.catch(() => undefined);
      await jsm.consumers.delete(stream, durable).catch(() => undefined);
      await nc.close();
    },
  };
}
