/**
 * `@EventPattern` on SageBrokerTransport over NATS JetStream, fed by Sage's outbox: outbox row →
 * relay → NatsJetStreamBroker → nats-server (stream) → the transport's durable consumer (the
 * adapter's subscribe) → `@EventPattern` → InboxService.handle → one business row → ack.
 * What Nest's own `Transport.NATS` cannot do here (nats-transport.int-spec.ts): redelivery after a
 * failed handler, and per-key order of the commits.
 */
import { randomUUID } from 'node:crypto';
import { Controller, type INestApplication } from '@nestjs/common';
import { Ctx, EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import {
  createPipelineApp,
  createPipelineDatabase,
  deleteNatsStream,
  effects,
  insertEffect,
  startPipelineApp,
  waitForEffects,
  waitUntil,
  writeOutbox,
} from '@test/support/inbox-pipeline';
import type { TestDatabase } from '@test/support/pg';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { NatsJetStreamBroker } from '../../brokers/nats/nats-broker';
import { InvalidOptionsError } from '../../core/errors';
import { InboxService } from '../inbox/inbox.service';
import { SageBrokerContext, SageBrokerTransport } from './sage-broker.transport';

const SERVERS = process.env.SAGE_NATS_URL ?? 'nats://127.0.0.1:42229';
const RUN = randomUUID().slice(0, 8);
const STREAM = `SAGE_NEST_JS_${RUN}`;
const PREFIX = `sagenestjs.${RUN}.`;
const DESTINATION = 'orders';
const CONSUMER = 'nest-jetstream.orders';

const failFirst = new Map<string, number>();
const attempts: { id: string; attempt: number; deliveryAttempt: number }[] = [];

@Controller()
class OrdersController {
  constructor(private readonly inbox: InboxService) {}

  @EventPattern(DESTINATION)
  async onOrder(@Payload() data: { seq: number }, @Ctx() ctx: SageBrokerContext): Promise<void> {
    const message = ctx.getDeliveredMessage();
    await this.inbox.handle(CONSUMER, ctx, async ({ manager, messageId, attempt }) => {
      attempts.push({ id: messageId, attempt, deliveryAttempt: message.deliveryAttempt });
      await insertEffect(manager, {
        consumer: CONSUMER,
        messageId,
        key: message.key,
        seq: data.seq,
        data,
      });
      if (attempt <= (failFirst.get(messageId) ?? 0))
        throw new Error(`downstream unavailable (attempt ${attempt})`);
    });
  }
}

let db: TestDatabase;
let app: INestApplication;
const brokers: NatsJetStreamBroker[] = [];
const newBroker = () => {
  const broker = new NatsJetStreamBroker({
    servers: SERVERS,
    stream: STREAM,
    subjectPrefix: PREFIX,
  });
  brokers.push(broker);
  return broker;
};

beforeAll(async () => {
  db = await createPipelineDatabase();
  app = await startPipelineApp({
    db,
    broker: newBroker(),
    controllers: [OrdersController],
    // The consuming side on its own adapter instance, as in another service.
    microservice: { strategy: new SageBrokerTransport({ broker: newBroker(), group: 'payments' }) },
  });
}, 60_000);

afterAll(async () => {
  await app?.close();
  await Promise.allSettled(brokers.map((b) => b.close()));
  await deleteNatsStream(SERVERS, STREAM).catch(() => undefined);
  await db?.drop();
});

describe('@EventPattern on SageBrokerTransport over NATS JetStream, fed by the outbox relay', () => {
  it('handles every outbox row once, in per-key order (commits, not just deliveries)', async () => {
    const messages = Array.from({ length: 60 }, (_, i) => ({
      destination: DESTINATION,
      type: 'order.placed',
      key: `order-${i % 4}`,
      payload: { seq: Math.floor(i / 4) },
    }));
    const ids = await writeOutbox(app, messages);
    await waitForEffects(db, CONSUMER, ids.length);
    const rows = await effects(db, CONSUMER);
    expect(rows.map((r) => r.message_id).sort()).toEqual([...ids].sort());
    for (let k = 0; k < 4; k++)
      expect(rows.filter((r) => r.key === `order-${k}`).map((r) => r.seq)).toEqual(
        Array.from({ length: 15 }, (_, i) => i),
      );
  });

  it('a failing handler rolls back and is retried until it succeeds, before the next message of its key: one effect each, in order', async () => {
    const [id, next] = await writeOutbox(app, [
      { destination: DESTINATION, type: 'order.placed', key: 'order-fail', payload: { seq: 0 } },
      { destination: DESTINATION, type: 'order.placed', key: 'order-fail', payload: { seq: 1 } },
    ]);
    failFirst.set(id!, 2);
    await waitUntil(
      async () => {
        const handled = (await effects(db, CONSUMER)).map((r) => r.message_id);
        return handled.includes(id!) && handled.includes(next!);
      },
      'both handled',
      30_000,
    );
    expect(attempts.filter((a) => a.id === id).map((a) => [a.attempt, a.deliveryAttempt])).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
    ]);
    // One effect each, in key order: the adapter retries the failed message in process, holding
    // the next message of its key back (docs/inbox.md).
    const rows = (await effects(db, CONSUMER)).filter((r) => r.key === 'order-fail');
    expect(rows.map((r) => r.message_id)).toEqual([id, next]);
  });

  it('refuses @MessagePattern handlers at startup (no reply channel)', async () => {
    @Controller()
    class RequestController {
      @MessagePattern('orders.get')
      get(): string {
        return 'never';
      }
    }
    const other = await createPipelineApp({ db, controllers: [RequestController] });
    const broker = new InMemoryBroker();
    other.connectMicroservice({ strategy: new SageBrokerTransport({ broker }) });
    await expect(other.startAllMicroservices()).rejects.toThrow(InvalidOptionsError);
    await other.close();
    await broker.close();
  });
});
