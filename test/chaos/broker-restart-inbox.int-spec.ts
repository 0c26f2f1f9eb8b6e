/**
 * A broker restart in the middle of a stream, end to end, per real broker:
 * business transactions write outbox rows → relay → broker → Sage's consumer (`broker.subscribe`
 * via `@IdempotentHandler`) → inbox transaction writing one business row with the message's
 * per-key sequence number. Mid-stream, `scripts/services.sh restart <broker>` stops and starts the
 * server while rows keep being written, published (the relay retries) and consumed.
 *
 * Expected: nothing lost and nothing doubled (every id exactly one business row), and per key the
 * consumer's handler saw the sequence 0, 1, 2, ... in order (redeliveries after the restart are
 * skipped by the inbox, never replayed out of order).
 *
 * Restarting a shared broker disrupts other test files briefly; each case restarts once.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Injectable, type INestApplication } from '@nestjs/common';
import { Kafka, logLevel } from 'kafkajs';
import { KafkaBroker } from '../../libs/saga-outbox/src/brokers/kafka/kafka-broker';
import { NatsJetStreamBroker } from '../../libs/saga-outbox/src/brokers/nats/nats-broker';
import { RabbitMqBroker } from '../../libs/saga-outbox/src/brokers/rabbitmq/rabbitmq-broker';
import type { Broker, DeliveredMessage } from '../../libs/saga-outbox/src/core/ports/broker';
import {
  IdempotentHandler,
  type InboxContext,
} from '../../libs/saga-outbox/src/nest/inbox/idempotent-handler.decorator';
import { InboxService } from '../../libs/saga-outbox/src/nest/inbox/inbox.service';
import {
  createPipelineApp,
  createPipelineDatabase,
  deleteNatsStream,
  deleteRabbitMqTopology,
  effectCount,
  effects,
  insertEffect,
  waitUntil,
  writeOutbox,
} from '../support/inbox-pipeline';
import { withClient, type TestDatabase } from '../support/pg';

const ROOT = join(__dirname, '../..');
const KAFKA_BROKERS = (process.env.SAGE_KAFKA_BROKERS ?? '127.0.0.1:19092').split(',');
const RABBITMQ_URL = process.env.SAGE_RABBITMQ_URL ?? 'amqp://sage:sage@127.0.0.1:56729';
const NATS_URL = process.env.SAGE_NATS_URL ?? 'nats://127.0.0.1:42229';
const RUN = randomUUID().slice(0, 8);

const TOTAL = Number(process.env.SAGE_RESTART_MESSAGES ?? 2000);
const KEYS = 32;
/** Rows per business transaction (spread over the keys). */
const PER_TX = 40;
/** The writer stays at most this far ahead of the consumer, so the stream is still flowing at the restart. */
const AHEAD = 400;

function consumerClass(destination: string, consumer: string) {
  @Injectable()
  class SequencedConsumer {
    @IdempotentHandler(destination, { consumer, maxAttempts: 1000 })
    async handle(message: DeliveredMessage, { manager, messageId }: InboxContext): Promise<void> {
      const { seq } = message.payload as { seq: number };
      await insertEffect(manager, { consumer, messageId, key: message.key, seq });
    }
  }
  return SequencedConsumer;
}

interface RestartCase {
  service: 'kafka' | 'rabbitmq' | 'nats';
  destination: string;
  newBroker(): Broker;
  prepare(): Promise<void>;
  cleanup(consumer: string): Promise<void>;
}

const kafkaTopic = `sage-restart-${RUN}`;
const kafkaAdmin = () =>
  new Kafka({
    clientId: `restart-admin-${RUN}`,
    brokers: KAFKA_BROKERS,
    logLevel: logLevel.NOTHING,
  }).admin();
const rabbitExchange = `sage-restart-${RUN}`;
const natsStream = `SAGE_RESTART_${RUN}`;

const cases: RestartCase[] = [
  {
    service: 'kafka',
    destination: kafkaTopic,
    newBroker: () => new KafkaBroker({ brokers: KAFKA_BROKERS, clientId: `restart-${RUN}` }),
    prepare: async () => {
      const admin = kafkaAdmin();
      await admin.connect();
      try {
        await admin.createTopics({
          topics: [{ topic: kafkaTopic, numPartitions: 4, replicationFactor: 1 }],
          waitForLeaders: true,
        });
      } finally {
        await admin.disconnect();
      }
    },
    cleanup: async () => {
      const admin = kafkaAdmin();
      await admin.connect();
      try {
        await admin.deleteTopics({ topics: [kafkaTopic] });
      } finally {
        await admin.disconnect();
      }
    },
  },
  {
    service: 'rabbitmq',
    destination: `orders-${RUN}`,
    newBroker: () => new RabbitMqBroker({ url: RABBITMQ_URL, exchange: rabbitExchange }),
    prepare: () => Promise.resolve(),
    cleanup: (consumer) =>
      deleteRabbitMqTopology(RABBITMQ_URL, {
        queue: `${consumer}.orders-${RUN}`,
        exchange: rabbitExchange,
      }),
  },
  {
    service: 'nats',
    destination: 'orders',
    newBroker: () =>
      new NatsJetStreamBroker({
        servers: NATS_URL,
        stream: natsStream,
        subjectPrefix: `sagerestart.${RUN}.`,
        ackWaitMs: 5_000,
      }),
    prepare: () => Promise.resolve(),
    cleanup: () => deleteNatsStream(NATS_URL, natsStream),
  },
];

let db: TestDatabase;
beforeAll(async () => {
  db = await createPipelineDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe.each(cases)('$service restart mid-stream, outbox → relay → broker → inbox', (c) => {
  const consumer = `restart-${c.service}-${RUN}`;
  let app: INestApplication | undefined;
  let broker: Broker | undefined;

  afterAll(async () => {
    await app?.close();
    await broker?.close();
    await c.cleanup(consumer).catch(() => undefined);
  });

  it(`${TOTAL} messages over ${KEYS} keys: each handled exactly once, per-key order kept`, async () => {
    await c.prepare();
    broker = c.newBroker();
    app = await createPipelineApp({
      db,
      broker,
      providers: [consumerClass(c.destination, consumer)],
      // Retry fast and never dead-letter while the broker is down.
      relay: { retry: { initialDelayMs: 100, maxDelayMs: 1_000, maxAttempts: 10_000 } },
    });
    await app.init();
    const live = app;

    const nextSeq = new Map<string, number>();
    const ids: string[] = [];
    let restart: Promise<unknown> | undefined;
    let restartedAt = 0;
    let writtenDuringRestart = 0;
    const startedAt = Date.now();
    while (ids.length < TOTAL) {
      await waitUntil(
        async () => ids.length - (await effectCount(db, consumer)) < AHEAD,
        'the consumer keeps up',
        60_000,
        20,
      );
      const batch = Array.from({ length: Math.min(PER_TX, TOTAL - ids.length) }, (_, i) => {
        const key = `order-${(ids.length + i) % KEYS}`;
        const seq = nextSeq.get(key) ?? 0;
        nextSeq.set(key, seq + 1);
        return { destination: c.destination, type: 'order.placed', key, payload: { seq } };
      });
      ids.push(...(await writeOutbox(live, batch)));
      if (restart && !restartedAt) writtenDuringRestart += batch.length;
      if (!restart && ids.length >= TOTAL / 4) {
        // Asynchronous: writing, relaying and consuming go on while the broker is down.
        restart = promisify(execFile)('bash', ['scripts/services.sh', 'restart', c.service], {
          cwd: ROOT,
        }).then(() => (restartedAt = Date.now()));
      }
    }
    await restart;
    expect(restartedAt).toBeGreaterThan(0);

    await waitUntil(
      async () => (await effectCount(db, consumer)) >= TOTAL,
      `all ${TOTAL} handled`,
      90_000,
      100,
    );

    const rows = await effects(db, consumer);
    // Exactly once: one business row per id, no id missing, none doubled.
    expect(rows).toHaveLength(TOTAL);
    expect(new Set(rows.map((r) => r.message_id)).size).toBe(TOTAL);
    expect(new Set(rows.map((r) => r.message_id))).toEqual(new Set(ids));
    // Per-key order at the consumer: the rows of each key were written 0, 1, 2, ... in order.
    for (const [key, count] of nextSeq) {
      const seqs = rows.filter((r) => r.key === key).map((r) => r.seq);
      expect({ key, seqs }).toEqual({ key, seqs: Array.from({ length: count }, (_, i) => i) });
    }
    await withClient(db.name, async (client) => {
      const { rows: outbox } = await client.query<{ status: string; n: number }>(
        `SELECT status, count(*)::int AS n FROM sage.outbox_message WHERE destination = $1 GROUP BY status`,
        [c.destination],
      );
      expect(outbox).toEqual([{ status: 'sent', n: TOTAL }]);
    });
    const stats = app.get(InboxService).stats;
    console.info(
      `${c.service} restart: ${TOTAL} messages over ${KEYS} keys in ${Date.now() - startedAt} ms, ` +
        `${writtenDuringRestart} written while restarting, ${stats.duplicates} redelivered duplicates skipped, ` +
        `${stats.failed} handler failures, ${rows.length} effects`,
    );
  }, 150_000);
});
