/**
 * `@EventPattern` over Nest's real RabbitMQ transport (`Transport.RMQ`, `noAck: false`), fed by
 * Sage's outbox: outbox row → relay → RabbitMqBroker (topic exchange, routing key = destination) →
 * the destination's queue → Nest ServerRMQ (connected with sageRmqOptions: SageRmqDeserializer,
 * pattern = message type) → `@EventPattern` → InboxService.handle → one business row → ack
 * (ackRmqAfter).
 */
import { randomUUID } from 'node:crypto';
import { Controller, type INestApplication } from '@nestjs/common';
import { Ctx, EventPattern, Payload, RmqContext } from '@nestjs/microservices';
import {
  AWKWARD_PAYLOADS,
  createPipelineDatabase,
  deleteRabbitMqTopology,
  effects,
  insertEffect,
  startPipelineApp,
  waitUntil,
  withAmqpChannel,
  writeOutbox,
} from '@test/support/inbox-pipeline';
import type { TestDatabase } from '@test/support/pg';
import { RabbitMqBroker } from '../../brokers/rabbitmq/rabbitmq-broker';
import type { JsonValue } from '../../core/json';
import { InboxService } from '../inbox/inbox.service';
import { transportMessageId } from '../inbox/transport-message-id';
import { ackRmqAfter } from './rmq-ack';
import { sageRmqOptions } from './sage-transport-options';

const URL = process.env.SAGE_RABBITMQ_URL ?? 'amqp://sage:sage@127.0.0.1:56729';
const RUN = randomUUID().slice(0, 8);
const EXCHANGE = `sage-nest-rmq-${RUN}`;
const DESTINATION = `orders-${RUN}`;
const GROUP = 'payments';
const PLACED = 'payments.on-order-placed';
const CANCELLED = 'payments.on-order-cancelled';
const MAX_ATTEMPTS = 4;

/** Attempts that fail, per outbox id (set by a test); -1 → always. */
const failFirst = new Map<string, number>();
const attempts: { id: string; attempt: number }[] = [];
/** Outbox ids in the order Nest called a handler (before any await). */
const delivered: string[] = [];

@Controller()
class PaymentsController {
  constructor(private readonly inbox: InboxService) {}

  @EventPattern('order.placed')
  onPlaced(@Payload() data: JsonValue, @Ctx() ctx: RmqContext): Promise<unknown> {
    return this.record(PLACED, data, ctx);
  }

  @EventPattern('order.cancelled')
  onCancelled(@Payload() data: JsonValue, @Ctx() ctx: RmqContext): Promise<unknown> {
    return this.record(CANCELLED, data, ctx);
  }

  private record(consumer: string, data: JsonValue, ctx: RmqContext): Promise<unknown> {
    const key = (ctx.getMessage() as { properties: { headers?: Record<string, unknown> } })
      .properties.headers?.['ce-subject'];
    delivered.push(transportMessageId(ctx) ?? '?');
    return ackRmqAfter(ctx, () =>
      this.inbox.handle(consumer, ctx, async ({ manager, messageId, attempt }) => {
        attempts.push({ id: messageId, attempt });
        await insertEffect(manager, {
          consumer,
          messageId,
          key: typeof key === 'string' ? key : null,
          data,
        });
        const fail = failFirst.get(messageId) ?? 0;
        if (fail === -1 || attempt <= fail)
          throw new Error(`card service down (attempt ${attempt})`);
      }),
    );
  }
}

let db: TestDatabase;
let app: INestApplication;
let broker: RabbitMqBroker;

beforeAll(async () => {
  db = await createPipelineDatabase();
  broker = new RabbitMqBroker({ url: URL, exchange: EXCHANGE });
  // The queue Sage routes `orders` to for group `payments` (with its dead-letter queue), declared
  // before the relay publishes; Nest consumes it as it is (noAssert).
  const queue = await broker.declareQueue(DESTINATION, GROUP);
  app = await startPipelineApp({
    db,
    broker,
    controllers: [PaymentsController],
    inbox: { maxAttempts: MAX_ATTEMPTS },
    microservice: sageRmqOptions({
      urls: [URL],
      queue,
      noAssert: true,
      noAck: false,
      prefetchCount: 8,
    }),
  });
}, 60_000);

afterAll(async () => {
  await app?.close();
  await broker?.close();
  await deleteRabbitMqTopology(URL, {
    queue: broker.queueName(DESTINATION, GROUP),
    exchange: EXCHANGE,
  }).catch(() => undefined);
  await db?.drop();
});

const placed = (key: string, payload: JsonValue) => ({
  destination: DESTINATION,
  type: 'order.placed',
  key,
  payload,
});

describe('@EventPattern over Transport.RMQ (noAck: false), fed by the outbox relay', () => {
  it('dispatches by message type, delivers every outbox row once with its payload intact, in per-key order, and acks each', async () => {
    const payloads = AWKWARD_PAYLOADS;
    const messages = [
      ...Array.from({ length: 24 }, (_, i) =>
        placed(`order-${i % 3}`, i < payloads.length ? payloads[i]! : { orderId: `o-${i}` }),
      ),
      { destination: DESTINATION, type: 'order.cancelled', key: 'order-0', payload: { why: 'x' } },
    ];
    const ids = await writeOutbox(app, messages);
    await waitUntil(
      async () =>
        (await effects(db, PLACED)).length + (await effects(db, CANCELLED)).length >= ids.length,
      'every message handled',
      30_000,
    );
    const rows = [...(await effects(db, PLACED)), ...(await effects(db, CANCELLED))];
    expect(rows.map((r) => r.message_id).sort()).toEqual([...ids].sort());
    const byId = new Map(rows.map((r) => [r.message_id, r]));
    ids.forEach((id, i) => {
      expect(byId.get(id)).toMatchObject({ data: messages[i]!.payload, key: messages[i]!.key });
    });
    expect((await effects(db, CANCELLED)).map((r) => r.message_id)).toEqual([ids[24]]);
    // Delivered in per-key order; with prefetchCount > 1 Nest runs the handlers concurrently, so
    // their commits may interleave (prefetchCount: 1 for strict per-key processing, docs/inbox.md).
    for (const key of ['order-0', 'order-1', 'order-2']) {
      const seen = delivered.filter((id) => byId.get(id)?.key === key).map((id) => ids.indexOf(id));
      expect(seen).toEqual([...seen].sort((a, b) => a - b));
    }
    await waitUntil(async () => {
      const { messageCount, consumerCount } = await queueState();
      return messageCount === 0 && consumerCount === 1;
    }, 'the queue is empty: every delivery was acked');
  });

  it('a failing handler rolls back, is nacked and redelivered until it succeeds: one effect', async () => {
    const [id] = await writeOutbox(app, [placed('order-fail', { n: 1 })]);
    failFirst.set(id!, 2);
    await waitUntil(
      async () => (await effects(db, PLACED)).some((r) => r.message_id === id),
      'handled',
    );
    expect(attempts.filter((a) => a.id === id).map((a) => a.attempt)).toEqual([1, 2, 3]);
    expect((await effects(db, PLACED)).filter((r) => r.message_id === id)).toHaveLength(1);
    expect(await app.get(InboxService).get({ consumer: PLACED, messageId: id! })).toMatchObject({
      status: 'processed',
      attempts: 3,
    });
  });

  it('a poison message is dead-lettered by the inbox after maxAttempts and then acked (no endless requeue)', async () => {
    const [id] = await writeOutbox(app, [placed('order-poison', { n: 'poison' })]);
    failFirst.set(id!, -1);
    const inbox = app.get(InboxService);
    await waitUntil(
      async () => (await inbox.get({ consumer: PLACED, messageId: id! }))?.status === 'dead_letter',
      'dead-lettered',
    );
    await waitUntil(
      async () => (await queueState()).messageCount === 0,
      'acked: the queue is empty',
    );
    expect(attempts.filter((a) => a.id === id).map((a) => a.attempt)).toEqual(
      Array.from({ length: MAX_ATTEMPTS }, (_, i) => i + 1),
    );
    expect((await effects(db, PLACED)).filter((r) => r.message_id === id)).toHaveLength(0);
  });
});

/** Ready messages and consumers of the queue, from a passive declare. */
function queueState(): Promise<{ messageCount: number; consumerCount: number }> {
  return withAmqpChannel(URL, (channel) =>
    channel.checkQueue(broker.queueName(DESTINATION, GROUP)),
  );
}
