/**
 * The publishing knobs change how messages travel, never what arrives: with Kafka compression,
 * linger and a batch size, and with a small RabbitMQ publisher confirm window, every message of
 * concurrent publishes is acknowledged and consumed once, in per-key order.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from '@jest/globals';
import amqplib from 'amqplib';
import { Kafka, logLevel } from 'kafkajs';
import type { Broker, BrokerMessage, Subscription } from '../core/ports/broker';
import { waitUntil } from '../testing/async';
import { KafkaBroker } from './kafka/kafka-broker';
import { RabbitMqBroker } from './rabbitmq/rabbitmq-broker';

const KAFKA = (process.env.SAGE_KAFKA_BROKERS ?? '127.0.0.1:19092').split(',');
const RABBIT = process.env.SAGE_RABBITMQ_URL ?? 'amqp://sage:sage@127.0.0.1:56729';

const KEYS = 4;
const PER_CALL = 15;
const CALLS = 4;

/** CALLS batches of PER_CALL messages over KEYS keys; `n` in the payload is the per-key sequence. */
function batches(destination: string): BrokerMessage[][] {
  let n = 0;
  return Array.from({ length: CALLS }, () =>
    Array.from({ length: PER_CALL }, () => {
      const i = n++;
      return {
        id: randomUUID(),
        destination,
        key: `k${i % KEYS}`,
        type: 'tuning.tested',
        payload: { n: i },
        headers: {},
        time: new Date(),
      };
    }),
  );
}

/**
 * Publishes all calls at once on one broker instance (what lingering merges and the window
 * throttles), then checks what the subscriber got: everything, once, and each call's messages of
 * a key in the order the call listed them.
 */
async function publishAndConsume(broker: Broker, destination: string, group: string) {
  const received: { key: string; n: number }[] = [];
  const subscription: Subscription = await broker.subscribe(
    destination,
    (m) => {
      received.push({ key: m.key ?? '', n: (m.payload as { n: number }).n });
      return Promise.resolve();
    },
    { group },
  );
  try {
    const all = batches(destination);
    const results = await Promise.all(all.map((batch) => broker.publish(batch)));
    expect(results.flat().filter((r) => !r.ok)).toEqual([]);
    const total = CALLS * PER_CALL;
    await waitUntil(() => received.length >= total, `${total} messages consumed`, 30_000);
    expect(received).toHaveLength(total);
    expect(new Set(received.map((r) => r.n)).size).toBe(total);
    for (const batch of all) {
      const ns = new Set(batch.map((m) => (m.payload as { n: number }).n));
      for (let k = 0; k < KEYS; k++) {
        const seen = received.filter((r) => r.key === `k${k}` && ns.has(r.n)).map((r) => r.n);
        expect(seen).toEqual([...seen].sort((a, b) => a - b));
      }
    }
  } finally {
    await subscription.unsubscribe();
  }
}

describe('Kafka producer tuning', () => {
  const topic = `sage-test-tuning-${randomUUID()}`;
  const broker = new KafkaBroker({
    brokers: KAFKA,
    clientId: 'sage-int-test',
    producer: { compression: 'gzip', lingerMs: 20, batchSize: 7 },
  });

  afterAll(async () => {
    await broker.close();
    const admin = new Kafka({ brokers: KAFKA, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
  });

  it('delivers gzip-compressed, lingered, split batches whole and in per-key order', async () => {
    const admin = new Kafka({ brokers: KAFKA, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    await admin.createTopics({
      topics: [{ topic, numPartitions: 2, replicationFactor: 1 }],
      waitForLeaders: true,
    });
    await admin.disconnect();
    await publishAndConsume(broker, topic, `sage-test-${randomUUID()}`);
  }, 60_000);
});

describe('RabbitMQ publisher confirm window', () => {
  const exchange = `sage-test-${randomUUID()}`;
  const broker = new RabbitMqBroker({ url: RABBIT, exchange, publishWindow: 2 });
  /** Queues the tests declared (each with its `.dlq`), deleted with the exchanges at the end. */
  const queues: string[] = [];

  afterAll(async () => {
    await broker.close();
    const connection = await amqplib.connect(RABBIT);
    try {
      const channel = await connection.createChannel();
      for (const q of queues.flatMap((name) => [name, `${name}.dlq`]))
        await channel.deleteQueue(q).catch(() => undefined);
      for (const x of [exchange, `${exchange}.dlx`])
        await channel.deleteExchange(x).catch(() => undefined);
      await channel.close().catch(() => undefined);
    } finally {
      await connection.close();
    }
  });

  it('confirms every message of concurrent batches through a window of 2, in per-key order', async () => {
    const destination = `tuning-${randomUUID()}`;
    queues.push(`tuning.${destination}`);
    await publishAndConsume(broker, destination, 'tuning');
  }, 60_000);

  it('fails what still waits for the window on abort, retryable, and leaks no slot', async () => {
    const narrow = new RabbitMqBroker({ url: RABBIT, exchange, publishWindow: 1 });
    const destination = `tuning-${randomUUID()}`;
    queues.push(`abort.${destination}`);
    // Bound first, so an unaborted message is confirmed rather than returned as unroutable.
    const subscription = await narrow.subscribe(destination, () => Promise.resolve(), {
      group: 'abort',
    });
    try {
      const many = [...batches(destination).flat(), ...batches(destination).flat()];
      const controller = new AbortController();
      const pending = narrow.publish(many, controller.signal);
      setTimeout(() => controller.abort(), 5); // one confirm at a time: far from done by then
      const results = await pending;
      const aborted = results.filter((r) => !r.ok);
      expect(aborted.length).toBeGreaterThan(0);
      for (const r of aborted)
        expect(r).toMatchObject({
          ok: false,
          retryable: true,
          error: 'publish aborted before the broker confirmed it',
        });
      // Every slot came back: a window of 1 still lets the next publish through.
      expect((await narrow.publish(batches(destination)[0]!.slice(0, 3))).every((r) => r.ok)).toBe(
        true,
      );
    } finally {
      await subscription.unsubscribe();
      await narrow.close();
    }
  }, 60_000);
});
