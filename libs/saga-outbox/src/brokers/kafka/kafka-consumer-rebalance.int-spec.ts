import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Kafka, logLevel, type Admin, type Consumer } from 'kafkajs';
import { DeliveryDeferredError } from '../../core/errors';
import type { BrokerMessage } from '../../core/ports/broker';
import type { SageLogger } from '../../core/ports/logger';
import { waitUntil } from '../../testing/async';
import { DeadLetterReporter } from '../dead-letters';
import { KafkaBroker } from './kafka-broker';
import { KafkaTopicConsumer } from './kafka-consumer';

// Real Apache Kafka from scripts/services.sh (`bash scripts/services.sh start kafka`).
const BROKERS = (process.env.SAGE_KAFKA_BROKERS ?? '127.0.0.1:19092').split(',');
const PARTITIONS = 4;

const warnings: string[] = [];
const logger: SageLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: (message) => warnings.push(message),
  error: (message) => warnings.push(message),
};

let kafka: Kafka;
let admin: Admin;
const created: string[] = [];

beforeAll(async () => {
  kafka = new Kafka({
    clientId: 'sage-int-rebalance',
    brokers: BROKERS,
    logLevel: logLevel.NOTHING,
  });
  admin = kafka.admin();
  await admin.connect();
});

afterAll(async () => {
  await admin.deleteTopics({ topics: created }).catch(() => undefined);
  await admin.disconnect();
});

async function createTopic(): Promise<string> {
  const topic = `sage-test-rebalance-${randomUUID()}`;
  await admin.createTopics({
    topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  created.push(topic);
  return topic;
}

const message = (destination: string, key: string, n: number): BrokerMessage => ({
  id: randomUUID(),
  destination,
  key,
  type: 'kafka.rebalance-tested',
  payload: { n },
  headers: {},
  time: new Date(),
});

/**
 * Another member of the group that takes partitions from the subscription and hands nothing over
 * (autoCommit off, nothing resolved): joining and leaving forces two rebalances.
 */
async function joinIdleMember(group: string, topic: string): Promise<Consumer> {
  const member = kafka.consumer({ groupId: group, sessionTimeout: 10_000, heartbeatInterval: 500 });
  const joined = new Promise<void>((resolve) => {
    const off = member.on(member.events.GROUP_JOIN, () => {
      off();
      resolve();
    });
  });
  await member.connect();
  await member.subscribe({ topics: [topic], fromBeginning: true });
  await member.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: () => Promise.resolve(),
  });
  await joined;
  return member;
}

describe('KafkaTopicConsumer back-off across a rebalance', () => {
  it('delivers every message of partitions paused for a redelivery when the group rebalances during the back-off', async () => {
    const topic = await createTopic();
    const group = `g-${randomUUID()}`;
    const broker = new KafkaBroker({
      brokers: BROKERS,
      clientId: 'sage-int-rebalance',
      logger,
      consumer: {
        sessionTimeoutMs: 10_000,
        heartbeatIntervalMs: 500,
        maxWaitTimeMs: 200,
        redeliveryDelayMs: 500,
        maxRedeliveryDelayMs: 3_000,
      },
    });
    let deferring = true;
    // Only the head of each partition is handed over while it fails: one key per partition.
    const deferredKeys = new Set<string>();
    let deferrals = 0;
    const delivered = new Set<string>();
    try {
      const sub = await broker.subscribe(
        topic,
        (m) => {
          if (deferring) {
            deferredKeys.add(m.key ?? '');
            deferrals += 1;
            return Promise.reject(
              new DeliveryDeferredError('inbox store down (test)', new Error('down')),
            );
          }
          delivered.add(m.id);
          return Promise.resolve();
        },
        { group },
      );
      const keys = Array.from({ length: 32 }, (_, i) => `key-${i}`);
      const sent = keys.flatMap((key, i) => [message(topic, key, i), message(topic, key, i + 100)]);
      await broker.publish(sent, new AbortController().signal);
      // The head of (nearly) every partition failed and was redelivered: paused for a back-off.
      await waitUntil(
        () => deferredKeys.size >= PARTITIONS - 1 && deferrals >= 3 * PARTITIONS,
        'deferred deliveries on every partition',
        15_000,
      );

      const member = await joinIdleMember(group, topic);
      await member.disconnect();
      deferring = false;

      await waitUntil(
        () => sent.every((m) => delivered.has(m.id)),
        `every message delivered (${delivered.size}/${sent.length})`,
        25_000,
        50,
      );
      expect(delivered.size).toBe(sent.length);
      await sub.unsubscribe();
    } finally {
      await broker.close();
    }
  });

  it('resumes a partition left paused past its back-off (the watchdog), and delivers what waited there', async () => {
    const topic = await createTopic();
    const broker = new KafkaBroker({ brokers: BROKERS, clientId: 'sage-int-rebalance', logger });
    const delivered: string[] = [];
    let failures = 0;
    const consumer = new KafkaTopicConsumer(
      {
        kafka,
        brokerName: 'kafka-watchdog-test',
        logger,
        settings: {
          fromBeginning: true,
          sessionTimeoutMs: 10_000,
          heartbeatIntervalMs: 500,
          maxWaitTimeMs: 200,
          partitionsConsumedConcurrently: 4,
          // A back-off far longer than the test: only the watchdog's check can resume the partition.
          redeliveryDelayMs: 120_000,
          maxRedeliveryDelayMs: 120_000,
          joinTimeoutMs: 30_000,
          maxDeliveries: 10,
          maxMessageBytes: 1024 * 1024,
        },
        ensureTopic: () => Promise.resolve(),
        sendRecord: () => Promise.reject(new Error('no dead letters in this test')),
        deadLetters: new DeadLetterReporter(() => logger),
      },
      topic,
      `g-${randomUUID()}`,
      (m) => {
        if (failures === 0) {
          failures += 1;
          return Promise.reject(
            new DeliveryDeferredError('inbox store down (test)', new Error('down')),
          );
        }
        delivered.push(m.id);
        return Promise.resolve();
      },
      10,
    );
    try {
      await consumer.start();
      const sent = [message(topic, 'one-key', 1), message(topic, 'one-key', 2)];
      await broker.publish(sent, new AbortController().signal);
      await waitUntil(() => failures === 1, 'the first delivery failed', 15_000);
      // Paused for the back-off: not stale yet, nothing resumed.
      expect(consumer.resumeStalePauses()).toEqual([]);
      // As if the back-off's timer were lost: the watchdog resumes the partition.
      expect(consumer.resumeStalePauses(Date.now() + 122_000)).toHaveLength(1);
      await waitUntil(
        () => delivered.length === sent.length,
        'both messages delivered',
        15_000,
        20,
      );
      expect(delivered).toEqual(sent.map((m) => m.id));
    } finally {
      await consumer.stop();
      await broker.close();
    }
  });
});
