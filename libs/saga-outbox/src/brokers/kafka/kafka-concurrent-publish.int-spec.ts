/**
 * Concurrent publishes on one KafkaBroker while its producer is discarded again and again (a
 * message the broker refuses as too large makes the adapter drop its idempotent producer): every
 * message the adapter reports acknowledged must be in the topic. kafkajs rolls its idempotence
 * sequence numbers back after a failed send; with several produce calls at once on the producer,
 * calls already inside kafkajs reused those numbers and the broker acknowledged them as duplicates
 * of batches it already had, writing nothing (the WAL relay's chaos run lost messages that way).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { Kafka, logLevel } from 'kafkajs';
import type { BrokerMessage } from '../../core/ports/broker';
import { KafkaBroker } from './kafka-broker';

const BROKERS = (process.env.SAGE_KAFKA_BROKERS ?? '127.0.0.1:19092').split(',');
const TOTAL = 3000;
const WORKERS = 8;
const BATCH = 4;

jest.setTimeout(120_000);

const kafka = new Kafka({
  clientId: 'sage-concurrent-publish',
  brokers: BROKERS,
  logLevel: logLevel.NOTHING,
});
const admin = kafka.admin();
const topic = `sage-concurrent-${randomUUID()}`;
const tooLarge = `${topic}-large`;

beforeAll(async () => {
  await admin.connect();
  await admin.createTopics({
    topics: [
      { topic, numPartitions: 3, replicationFactor: 1 },
      { topic: tooLarge, numPartitions: 1, replicationFactor: 1 },
    ],
    waitForLeaders: true,
  });
});
afterAll(async () => {
  await admin.deleteTopics({ topics: [topic, tooLarge] }).catch(() => undefined);
  await admin.disconnect();
});

const message = (n: number): BrokerMessage => ({
  id: `m-${n}`,
  destination: topic,
  key: `k${n % 50}`,
  type: 't',
  payload: { n },
  headers: {},
  time: new Date(),
});

it('every message reported acknowledged is in the topic, with the producer discarded under concurrent publishes', async () => {
  const broker = new KafkaBroker({ brokers: BROKERS, clientId: 'sage-concurrent' });
  const acked = new Set<string>();
  let discards = 0;
  try {
    let next = 0;
    const retry: number[] = [];
    const worker = async (): Promise<void> => {
      while (acked.size < TOTAL) {
        const ns: number[] = [];
        while (ns.length < BATCH && retry.length) ns.push(retry.shift()!);
        while (ns.length < BATCH && next < TOTAL) ns.push(next++);
        if (!ns.length) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          continue;
        }
        for (const r of await broker.publish(ns.map(message))) {
          if (r.ok) acked.add(r.id);
          else retry.push(Number(r.id.slice(2)));
        }
      }
    };
    const discarding = async (): Promise<void> => {
      const big = 'x'.repeat(2 * 1024 * 1024);
      while (acked.size < TOTAL) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        const [r] = await broker.publish([
          { ...message(-1), id: `big-${discards}`, destination: tooLarge, payload: { big } },
        ]);
        expect(r?.ok).toBe(false);
        discards++;
      }
    };
    await Promise.all([...Array.from({ length: WORKERS }, worker), discarding()]);
  } finally {
    await broker.close();
  }
  expect(discards).toBeGreaterThan(3);

  const seen = new Set<string>();
  const reader = kafka.consumer({ groupId: `sage-concurrent-reader-${randomUUID()}` });
  await reader.connect();
  try {
    await reader.subscribe({ topics: [topic], fromBeginning: true });
    await reader.run({
      eachMessage: async ({ message: m }) => {
        seen.add(`m-${(JSON.parse(m.value!.toString()) as { n: number }).n}`);
        await Promise.resolve();
      },
    });
    const deadline = Date.now() + 60_000;
    while (seen.size < acked.size && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 200));
  } finally {
    await reader.disconnect();
  }
  expect([...acked].filter((id) => !seen.has(id))).toEqual([]);
});
