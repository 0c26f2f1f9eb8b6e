/**
 * `@EventPattern` over Nest's real NATS transport (`Transport.NATS`, core NATS), fed by Sage's
 * outbox: outbox row → relay → NatsJetStreamBroker (JetStream publish, `Nats-Msg-Id` = outbox id) →
 * nats-server → Nest ServerNats core subscription (connected with sageNatsOptions:
 * SageNatsDeserializer) → `@EventPattern` → InboxService.handle → one business row.
 *
 * Nest's NATS transport is core NATS: a JetStream subject reaches core subscribers too, but with
 * no ack and no redelivery. The second test pins that down (a failed handler is NOT redelivered),
 * so docs/inbox.md can say it plainly.
 */
import { randomUUID } from 'node:crypto';
import { Controller, type INestApplication } from '@nestjs/common';
import { Ctx, EventPattern, NatsContext, Payload } from '@nestjs/microservices';
import {
  AWKWARD_PAYLOADS,
  createPipelineDatabase,
  deleteNatsStream,
  effects,
  insertEffect,
  startPipelineApp,
  waitForEffects,
  waitUntil,
  withJetStreamManager,
  writeOutbox,
} from '@test/support/inbox-pipeline';
import type { TestDatabase } from '@test/support/pg';
import { NatsJetStreamBroker } from '../../brokers/nats/nats-broker';
import type { JsonValue } from '../../core/json';
import { InboxService } from '../inbox/inbox.service';
import { transportMessageId } from '../inbox/transport-message-id';
import { sageNatsOptions } from './sage-transport-options';

const SERVERS = process.env.SAGE_NATS_URL ?? 'nats://127.0.0.1:42229';
const RUN = randomUUID().slice(0, 8);
const STREAM = `SAGE_NEST_${RUN}`;
const PREFIX = `sagenest.${RUN}.`;
const DESTINATION = 'orders';
const SUBJECT = `${PREFIX}${DESTINATION}`;
const CONSUMER = 'nest-nats.orders';

const failFirst = new Map<string, number>();
const attempts: { id: string; attempt: number }[] = [];
/** Outbox ids in the order Nest called the handler (before any await). */
const delivered: string[] = [];

@Controller()
class OrdersController {
  constructor(private readonly inbox: InboxService) {}

  @EventPattern(SUBJECT)
  async onOrder(@Payload() data: JsonValue, @Ctx() ctx: NatsContext): Promise<void> {
    const headers = ctx.getHeaders() as { get(name: string): string } | undefined;
    const key = headers?.get('ce-subject') || null;
    delivered.push(transportMessageId(ctx) ?? '?');
    await this.inbox.handle(CONSUMER, ctx, async ({ manager, messageId, attempt }) => {
      attempts.push({ id: messageId, attempt });
      await insertEffect(manager, { consumer: CONSUMER, messageId, key, data });
      if (attempt <= (failFirst.get(messageId) ?? 0))
        throw new Error(`downstream unavailable (attempt ${attempt})`);
    });
  }
}

let db: TestDatabase;
let app: INestApplication;
let broker: NatsJetStreamBroker;

beforeAll(async () => {
  db = await createPipelineDatabase();
  broker = new NatsJetStreamBroker({ servers: SERVERS, stream: STREAM, subjectPrefix: PREFIX });
  app = await startPipelineApp({
    db,
    broker,
    controllers: [OrdersController],
    microservice: sageNatsOptions({ servers: [SERVERS], queue: 'payments' }),
  });
}, 60_000);

afterAll(async () => {
  await app?.close();
  await broker?.close();
  await deleteNatsStream(SERVERS, STREAM).catch(() => undefined);
  await db?.drop();
});

const order = (key: string, payload: JsonValue) => ({
  destination: DESTINATION,
  type: 'order.placed',
  key,
  payload,
});

describe('@EventPattern over Transport.NATS (core NATS on a JetStream subject), fed by the outbox relay', () => {
  it('delivers every outbox row once, payload intact (incl. a `{ data, pattern }` object Nest’s default would unwrap), in per-key order', async () => {
    const payloads = AWKWARD_PAYLOADS;
    const messages = Array.from({ length: 30 }, (_, i) =>
      order(`order-${i % 3}`, i < payloads.length ? payloads[i]! : { orderId: `o-${i}`, n: i }),
    );
    const ids = await writeOutbox(app, messages);
    await waitForEffects(db, CONSUMER, ids.length);
    const rows = await effects(db, CONSUMER);
    expect(rows.map((r) => r.message_id).sort()).toEqual([...ids].sort());
    const byId = new Map(rows.map((r) => [r.message_id, r]));
    ids.forEach((id, i) => {
      expect(byId.get(id)).toMatchObject({ data: messages[i]!.payload, key: messages[i]!.key });
    });
    // Nest calls the handler in per-key order, but does not wait for one call before the next
    // (its NATS subscription callback is not awaited): handlers overlap, so their transactions may
    // commit out of order. Order-sensitive handlers need Sage's NATS consumer (docs/inbox.md).
    for (const key of ['order-0', 'order-1', 'order-2']) {
      const seen = delivered.filter((id) => byId.get(id)?.key === key).map((id) => ids.indexOf(id));
      expect(seen).toEqual([...seen].sort((a, b) => a - b));
    }
  });

  it('caveat, pinned: a failed handler is rolled back but NOT redelivered (core NATS has no ack); the message stays in the stream', async () => {
    const [failing, next] = await writeOutbox(app, [
      order('order-x', { n: 1 }),
      order('order-x', { n: 2 }),
    ]);
    failFirst.set(failing!, 1);
    const inbox = app.get(InboxService);
    await waitUntil(async () => {
      const failure = await inbox.getFailure({ consumer: CONSUMER, messageId: failing! });
      return (
        failure !== undefined && (await effects(db, CONSUMER)).some((r) => r.message_id === next)
      );
    }, 'the failure is recorded and the next message handled');
    expect(attempts.filter((a) => a.id === failing).map((a) => a.attempt)).toEqual([1]);
    expect((await effects(db, CONSUMER)).some((r) => r.message_id === failing)).toBe(false);
    expect(await inbox.get({ consumer: CONSUMER, messageId: failing! })).toBeUndefined();
    // JetStream still holds it: a durable (Sage) consumer of the stream would get it.
    const info = await withJetStreamManager(SERVERS, (jsm) => jsm.streams.info(STREAM));
    expect(info.state.messages).toBeGreaterThanOrEqual(32);
  });
});
