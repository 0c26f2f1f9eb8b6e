import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import type { BrokerMessage, DeliveredMessage } from '../../core/ports/broker';
import type { SageLogger } from '../../core/ports/logger';
import {
  describeBrokerConformance,
  expectKeyOrderUnderFailure,
} from '../../testing/broker-conformance';
import { KafkaBroker, type KafkaBrokerOptions } from './kafka-broker';
import { waitUntil } from '../../testing/async';

// Real Apache Kafka from scripts/services.sh (`bash scripts/services.sh start kafka`).
const BROKERS = (process.env.SAGE_KAFKA_BROKERS ?? '127.0.0.1:19092').split(',');
const ROOT = `${__dirname}/../../../../..`;

/**
 * kafkajs logs WARN+ here instead of the console ("The coordinator is loading" on first use, retries
 * during the restart test); the restart test prints how many it collected.
 */
const logs: { level: string; message: string }[] = [];
const recordingLogger: SageLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: (message) => logs.push({ level: 'warn', message }),
  error: (message) => logs.push({ level: 'error', message }),
};

const newBroker = (options: Partial<KafkaBrokerOptions> = {}): KafkaBroker =>
  new KafkaBroker({
    brokers: BROKERS,
    clientId: 'sage-int-test',
    logger: recordingLogger,
    ...options,
  });

let admin: Admin;
const created: string[] = [];

/** A unique topic with 3 partitions, created up front (faster and more deterministic than auto-create). */
async function createTopic(partitions = 3): Promise<string> {
  const topic = `sage-test-${randomUUID()}`;
  await admin.createTopics({
    topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  created.push(topic);
  return topic;
}

beforeAll(async () => {
  admin = new Kafka({
    clientId: 'sage-int-test-admin',
    brokers: BROKERS,
    logLevel: logLevel.WARN,
    logCreator: () => (entry) =>
      logs.push({ level: String(entry.level), message: String(entry.log.message) }),
  }).admin();
  await admin.connect();
});

afterAll(async () => {
  await admin.deleteTopics({ topics: created }).catch(() => undefined);
  await admin.disconnect();
});

const message = (destination: string, overrides: Partial<BrokerMessage> = {}): BrokerMessage => ({
  id: randomUUID(),
  destination,
  key: `k-${randomUUID().slice(0, 8)}`,
  type: 'kafka.tested',
  payload: { n: 1 },
  headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
  time: new Date(),
  ...overrides,
});

async function committedOffsets(groupId: string, topic: string): Promise<Map<number, bigint>> {
  const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return new Map((entry?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
}

describeBrokerConformance('kafka', () => {
  const producer = new Kafka({
    clientId: 'sage-int-test-raw',
    brokers: BROKERS,
    logLevel: logLevel.NOTHING,
  }).producer();
  return Promise.resolve({
    broker: newBroker({ consumer: { maxMessageBytes: 256 * 1024 } }),
    destination: () => createTopic(),
    cleanup: () => producer.disconnect(),
    deliveryTimeoutMs: 15_000,
    maxMessageBytes: 256 * 1024,
    // kafkajs itself, as another producer: one request, one key, so one partition, in order.
    sendRaw: async (topic, messages) => {
      await producer.connect();
      await producer.send({
        topic,
        acks: -1,
        messages: messages.map((m) => ({ key: m.key, value: m.body, headers: m.headers })),
      });
    },
  });
});

describe('KafkaBroker', () => {
  let broker: KafkaBroker;
  beforeAll(() => {
    broker = newBroker();
  });
  afterAll(() => broker.close());

  it('writes a poison record to ${topic}.dlq as it came, with the reason and its position, and commits past it', async () => {
    const topic = await createTopic(1);
    created.push(`${topic}.dlq`);
    const got: string[] = [];
    const sub = await broker.subscribe(topic, (m) => {
      got.push(m.id);
      return Promise.resolve();
    });
    const kafka = new Kafka({
      clientId: 'sage-int-test-dlq',
      brokers: BROKERS,
      logLevel: logLevel.NOTHING,
    });
    const producer = kafka.producer();
    const reader = kafka.consumer({ groupId: `dlq-reader-${randomUUID()}` });
    try {
      await producer.connect();
      await producer.send({
        topic,
        messages: [
          { key: 'k', value: 'not json at all', headers: { 'ce-id': 'bad-1', 'x-own': 'kept' } },
          { key: 'k', value: '{"n":2}', headers: { 'ce-id': 'good-2' } },
        ],
      });
      await waitUntil(() => got.includes('good-2'), 'the record after the poison one', 15_000);
      expect(got).toEqual(['good-2']);
      const letters: { value: string | undefined; headers: Record<string, string> }[] = [];
      await reader.connect();
      await reader.subscribe({ topic: `${topic}.dlq`, fromBeginning: true });
      await reader.run({
        eachMessage: ({ message: m }) => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(m.headers ?? {})) headers[k] = String(v);
          letters.push({ value: m.value?.toString(), headers });
          return Promise.resolve();
        },
      });
      await waitUntil(() => letters.length > 0, 'the dead letter', 15_000);
      expect(letters[0]).toEqual({
        value: 'not json at all',
        headers: expect.objectContaining({
          'ce-id': 'bad-1',
          'x-own': 'kept',
          'sage-dead-letter-reason': 'not-json',
          'sage-dead-letter-position': `${topic}/0/0`,
          'sage-dead-letter-group': topic,
        }) as unknown as Record<string, string>,
      });
      // Committed past both: a restart of the group starts after them.
      const committed = async () =>
        (await admin.fetchOffsets({ groupId: topic, topics: [topic] }))[0]?.partitions[0]?.offset;
      const deadline = Date.now() + 10_000;
      while ((await committed()) !== '2' && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      expect(await committed()).toBe('2');
    } finally {
      await reader.disconnect();
      await producer.disconnect();
      await sub.unsubscribe();
    }
  });

  it('subscribes to a topic that does not exist yet (a consumer deployed before its producer)', async () => {
    const topic = `sage-new-${randomUUID().slice(0, 8)}`;
    created.push(topic);
    expect(await admin.listTopics()).not.toContain(topic);
    const seen: string[] = [];
    const sub = await broker.subscribe(topic, (m) => {
      seen.push(m.id);
      return Promise.resolve();
    });
    try {
      const sent = message(topic);
      await expect(broker.publish([sent])).resolves.toEqual([{ id: sent.id, ok: true }]);
      await waitUntil(() => seen.includes(sent.id), 'the message on the new topic', 15_000);
    } finally {
      await sub.unsubscribe();
    }
  });

  it('writes CloudEvents binary-mode headers, the key and a JSON value', async () => {
    const topic = await createTopic(1);
    const sent = message(topic, { key: 'order-1', time: new Date('2025-01-02T03:04:05.678Z') });
    await expect(broker.publish([sent])).resolves.toEqual([{ id: sent.id, ok: true }]);

    const seen: DeliveredMessage[] = [];
    const sub = await broker.subscribe(topic, (m) => {
      seen.push(m);
      return Promise.resolve();
    });
    // Read the raw record too, with a plain kafkajs consumer.
    const raw = new Kafka({ brokers: BROKERS, logLevel: logLevel.NOTHING }).consumer({
      groupId: `raw-${randomUUID()}`,
      maxWaitTimeInMs: 100,
    });
    const records: {
      key: string | undefined;
      value: string | undefined;
      headers: Record<string, string>;
    }[] = [];
    try {
      await raw.connect();
      await raw.subscribe({ topic, fromBeginning: true });
      await raw.run({
        eachMessage: ({ message: r }) => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(r.headers ?? {})) headers[k] = String(v);
          records.push({ key: r.key?.toString(), value: r.value?.toString(), headers });
          return Promise.resolve();
        },
      });
      await waitUntil(() => records.length === 1 && seen.length === 1, 'the record', 15_000);
    } finally {
      await raw.disconnect();
      await sub.unsubscribe();
    }
    expect(records[0]).toEqual({
      key: 'order-1',
      value: '{"n":1}',
      headers: {
        'ce-specversion': '1.0',
        'ce-id': sent.id,
        'ce-type': 'kafka.tested',
        'ce-source': 'sage',
        'ce-time': '2025-01-02T03:04:05.678Z',
        'ce-subject': 'order-1',
        'content-type': 'application/json',
        traceparent: sent.headers.traceparent,
      },
    });
    expect(seen[0]).toMatchObject({
      id: sent.id,
      type: 'kafka.tested',
      key: 'order-1',
      payload: { n: 1 },
      time: sent.time,
      headers: { traceparent: sent.headers.traceparent, 'ce-source': 'sage' },
      deliveryAttempt: 1,
    });
  });

  it('fails only the messages the broker will never take, as non-retryable', async () => {
    const topic = await createTopic();
    const ok1 = message(topic);
    const huge = message(topic, { payload: 'x'.repeat(2 * 1024 * 1024) }); // over message.max.bytes
    const badTopic = message('not a valid/topic');
    const ok2 = message(topic);
    const results = await broker.publish([ok1, huge, badTopic, ok2]);
    expect(results.map((r) => r.id)).toEqual([ok1.id, huge.id, badTopic.id, ok2.id]);
    expect(results[0]).toEqual({ id: ok1.id, ok: true });
    expect(results[1]).toMatchObject({
      ok: false,
      retryable: false,
      error: expect.stringMatching(/MESSAGE_TOO_LARGE/),
    });
    expect(results[2]).toMatchObject({
      ok: false,
      retryable: false,
      error: expect.stringMatching(/topic name/),
    });
    expect(results[3]).toEqual({ id: ok2.id, ok: true });
    // The producer was replaced after the failed request and still publishes.
    await expect(broker.publish([message(topic)])).resolves.toMatchObject([{ ok: true }]);
  });

  it('reports every message failed, retryable, when the signal aborts before the acknowledgement', async () => {
    const topic = await createTopic();
    const batch = [message(topic), message(topic)];
    const results = await broker.publish(batch, AbortSignal.abort());
    expect(results).toEqual(
      batch.map((m) => ({
        id: m.id,
        ok: false,
        retryable: true,
        error: expect.stringMatching(/abort/),
      })),
    );
  });

  it('reports health down for an unreachable cluster, within the timeout', async () => {
    const down = newBroker({ brokers: ['127.0.0.1:1'], healthTimeoutMs: 1500, logger: undefined });
    try {
      const started = Date.now();
      await expect(down.health()).resolves.toMatchObject({ up: false });
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      await down.close();
    }
  });

  it('keeps per-key order at the consumer: 1,000 messages, 20 keys, 3 partitions', async () => {
    const topic = await createTopic(3);
    const keys = Array.from({ length: 20 }, (_, i) => `key-${i}`);
    const seen = new Map<string, number[]>();
    let delivered = 0;
    const sub = await broker.subscribe(topic, (m) => {
      const list = seen.get(m.key ?? '') ?? [];
      list.push((m.payload as { seq: number }).seq);
      seen.set(m.key ?? '', list);
      delivered++;
      return Promise.resolve();
    });
    try {
      // Like the relay: one message per key per batch, batches in sequence.
      for (let seq = 0; seq < 50; seq++) {
        const results = await broker.publish(
          keys.map((key) => message(topic, { key, payload: { seq } })),
        );
        expect(results.every((r) => r.ok)).toBe(true);
      }
      await waitUntil(() => delivered >= 1000, '1,000 deliveries', 30_000);
    } finally {
      await sub.unsubscribe();
    }
    const expected = Array.from({ length: 50 }, (_, i) => i);
    for (const key of keys) expect(seen.get(key)).toEqual(expected);
    const offsets = await admin.fetchTopicOffsets(topic);
    expect(offsets.filter((p) => Number(p.high) > 0).length).toBe(3); // the keys really spread
  });

  it('commits an offset only after its handler resolved, and redelivers a failed message first', async () => {
    const topic = await createTopic(1);
    const group = `commit-${randomUUID()}`;
    const sent = Array.from({ length: 10 }, (_, i) =>
      message(topic, { key: 'one-key', payload: { i } }),
    );
    const order: { i: number; attempt: number }[] = [];
    let committedAtRedelivery: bigint | undefined;
    const sub = await broker.subscribe(
      topic,
      async (m) => {
        const i = (m.payload as { i: number }).i;
        order.push({ i, attempt: m.deliveryAttempt });
        if (i === 3 && m.deliveryAttempt === 1) throw new Error('inbox transaction failed');
        if (i === 3) committedAtRedelivery = (await committedOffsets(group, topic)).get(0);
      },
      { group },
    );
    try {
      expect((await broker.publish(sent)).every((r) => r.ok)).toBe(true);
      await waitUntil(() => order.length >= 11, '11 deliveries', 15_000);
      await waitUntil(
        async () => (await committedOffsets(group, topic)).get(0) === 10n,
        'offset 10 committed',
        15_000,
      );
    } finally {
      await sub.unsubscribe();
    }
    expect(order).toEqual([
      { i: 0, attempt: 1 },
      { i: 1, attempt: 1 },
      { i: 2, attempt: 1 },
      { i: 3, attempt: 1 },
      { i: 3, attempt: 2 },
      ...[4, 5, 6, 7, 8, 9].map((i) => ({ i, attempt: 1 })),
    ]);
    // While message 3 (offset 3) was unhandled, nothing past it was committed.
    expect(committedAtRedelivery).toBe(3n);
  });
  it('keeps per-key order when a handler fails: the failed message is handled before the next of its key', async () => {
    const topic = await createTopic(3);
    await expectKeyOrderUnderFailure(broker, topic, { group: `order-${randomUUID()}` });
  });

  it('never commits past a failed offset while it awaits redelivery', async () => {
    // One partition, so the failing message's offset is known: batches of one message per key,
    // key 1 of batch 2 → offset 2 × 3 + 1.
    const topic = await createTopic(1);
    const group = `no-pass-${randomUUID()}`;
    const failedOffset = 2n * 3n + 1n;
    const seen: bigint[] = [];
    let retrying = false;
    let poller: Promise<void> | undefined;
    const poll = async (): Promise<void> => {
      while (retrying) seen.push((await committedOffsets(group, topic)).get(0) ?? -1n);
    };
    await expectKeyOrderUnderFailure(broker, topic, {
      group,
      keys: 3,
      perKey: 6,
      failing: { key: 1, seq: 2 },
      onFailingMessage: async (phase) => {
        if (phase === 'failed') {
          retrying = true;
          poller ??= poll();
          return;
        }
        retrying = false;
        await poller;
        seen.push((await committedOffsets(group, topic)).get(0) ?? -1n); // just before it succeeds
      },
    });
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.filter((offset) => offset > failedOffset)).toEqual([]);
    // Once it succeeded, everything is committed.
    await waitUntil(
      async () => (await committedOffsets(group, topic)).get(0) === 18n,
      'offset 18 committed',
      15_000,
    );
  });
});

describe('KafkaBroker across a broker restart', () => {
  it('delivers every acknowledged message (duplicates allowed, counted)', async () => {
    const topic = await createTopic(3);
    const broker = newBroker({ healthTimeoutMs: 2000 });
    const deliveries = new Map<string, number>();
    const sub = await broker.subscribe(topic, (m) => {
      deliveries.set(m.id, (deliveries.get(m.id) ?? 0) + 1);
      return Promise.resolve();
    });
    const acked = new Set<string>();
    let failedPublishes = 0;
    let restart: Promise<unknown> | undefined;
    let restarted = false;
    try {
      // The relay's behaviour: publish, keep what failed and send it again.
      let pending: BrokerMessage[] = [];
      const deadline = Date.now() + 40_000;
      while (!(restarted && acked.size >= 1500) && Date.now() < deadline) {
        const batch = [...pending, ...Array.from({ length: 25 }, () => message(topic))];
        const results = await broker
          .publish(batch, AbortSignal.timeout(5000))
          .catch(() => batch.map((m) => ({ id: m.id, ok: false as const })));
        pending = batch.filter((_, i) => !results[i]?.ok);
        failedPublishes += pending.length;
        for (const r of results) if (r.ok) acked.add(r.id);
        if (!restart && acked.size >= 300) {
          // Asynchronous, so publishing goes on while the broker is down.
          restart = promisify(execFile)('bash', ['scripts/services.sh', 'restart', 'kafka'], {
            cwd: ROOT,
          }).then(() => (restarted = true));
        }
      }
      await restart;
      expect(restarted).toBe(true);
      await waitUntil(
        () => [...acked].every((id) => deliveries.has(id)),
        `all ${acked.size} acknowledged messages delivered (${[...acked].filter((id) => !deliveries.has(id)).length} missing)`,
        30_000,
      );
    } finally {
      await sub.unsubscribe();
      await broker.close();
    }
    const duplicates = [...deliveries.values()].reduce((n, c) => n + c - 1, 0);
    process.stdout.write(
      `kafka restart: ${acked.size} acknowledged, ${failedPublishes} publish failures retried, ` +
        `${duplicates} duplicate deliveries, ${logs.length} kafkajs warnings/errors logged\n`,
    );
    expect([...acked].filter((id) => !deliveries.has(id))).toEqual([]);
  }, 90_000);
});
