/**
 * `dataProtection` on the `@nestjs/microservices` path: an event whose declared field the outbox
 * encrypted goes outbox → relay → NATS JetStream → SageBrokerTransport → `@EventPattern`. The
 * consumer given the module's protector gets plaintext as `@Payload()`; one without keys
 * dead-letters it in its inbox (DATA_UNREADABLE `no-keys`), the message kept as received, the
 * handler's work never run.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Controller, type INestApplication } from '@nestjs/common';
import { Ctx, EventPattern, Payload, type MicroserviceOptions } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import {
  createPipelineDatabase,
  deleteNatsStream,
  effects,
  insertEffect,
  waitForEffects,
  waitUntil,
  writeOutbox,
} from '@test/support/inbox-pipeline';
import { sagePostgresOptions, type TestDatabase } from '@test/support/pg';
import { NatsJetStreamBroker } from '../../brokers/nats/nats-broker';
import type { DataProtectionOptions } from '../../core/protection/data-protection-options';
import { encryptionKeys } from '../../core/protection/encryption-keys';
import { InboxService } from '../inbox/inbox.service';
import { DATA_PROTECTOR } from '../protection/data-protector.token';
import { SagaOutboxModule } from '../saga-outbox.module';
import { SageBrokerContext, SageBrokerTransport } from './sage-broker.transport';

jest.setTimeout(60_000);

const SERVERS = process.env.SAGE_NATS_URL ?? 'nats://127.0.0.1:42229';
const RUN = randomUUID().slice(0, 8);
const STREAM = `SAGE_NEST_ENC_${RUN}`;
const PREFIX = `sagenestenc.${RUN}.`;
const DESTINATION = 'customers';
const MAILER = 'mailer.on-registered';
const LEGACY = 'legacy-mailer.on-registered';
const EMAIL = `ada.${RUN}@example.test`;

interface Registered {
  customerId: string;
  email: string;
}

@Controller()
class MailerController {
  constructor(private readonly inbox: InboxService) {}

  @EventPattern(DESTINATION)
  async onRegistered(@Payload() data: Registered, @Ctx() ctx: SageBrokerContext): Promise<void> {
    await this.inbox.handle(MAILER, ctx, ({ manager, messageId }) =>
      insertEffect(manager, { consumer: MAILER, messageId, data }),
    );
  }
}

/** Another team's service, configured without `dataProtection`. */
@Controller()
class LegacyMailerController {
  constructor(private readonly inbox: InboxService) {}

  @EventPattern(DESTINATION)
  async onRegistered(@Payload() data: Registered, @Ctx() ctx: SageBrokerContext): Promise<void> {
    await this.inbox.handle(LEGACY, ctx, ({ manager, messageId }) =>
      insertEffect(manager, { consumer: LEGACY, messageId, data }),
    );
  }
}

let db: TestDatabase;
const apps: INestApplication[] = [];
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

/** An app consuming DESTINATION through SageBrokerTransport (group `group`), relaying when `relay`. */
async function boot(
  controller: new (...args: never[]) => unknown,
  group: string,
  options: { relay: boolean; dataProtection?: DataProtectionOptions },
): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      SagaOutboxModule.forRoot({
        postgres: sagePostgresOptions(db.connection),
        broker: options.relay ? newBroker() : undefined,
        outbox: {
          relay: { pollIntervalMs: 20, enabled: options.relay },
          retention: { enabled: false },
        },
        dataProtection: options.dataProtection,
      }),
    ],
    controllers: [controller],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  apps.push(app);
  app.connectMicroservice<MicroserviceOptions>({
    strategy: new SageBrokerTransport({
      broker: newBroker(),
      group,
      protector: app.get(DATA_PROTECTOR),
    }),
  });
  await app.startAllMicroservices();
  await app.init();
  return app;
}

beforeAll(async () => {
  db = await createPipelineDatabase();
});

afterAll(async () => {
  await Promise.allSettled(apps.map((app) => app.close()));
  await Promise.allSettled(brokers.map((b) => b.close()));
  await deleteNatsStream(SERVERS, STREAM).catch(() => undefined);
  await db?.drop();
});

it('an @EventPattern handler gets the plaintext of an encrypted event; a consumer without keys dead-letters it', async () => {
  const keys = encryptionKeys({ active: 'k1', keys: { k1: randomBytes(32) } });
  const producer = await boot(MailerController, 'mailer', {
    relay: true,
    dataProtection: { keys, messages: { 'customer.registered': { fields: ['email'] } } },
  });
  const legacy = await boot(LegacyMailerController, 'legacy-mailer', { relay: false });

  const customerId = `c-${RUN}`;
  const [id] = await writeOutbox(producer, [
    {
      destination: DESTINATION,
      type: 'customer.registered',
      payload: { customerId, email: EMAIL },
    },
  ]);

  // The consumer with the keys: plaintext as @Payload().
  await waitForEffects(db, MAILER, 1);
  expect((await effects(db, MAILER)).map((r) => [r.message_id, r.data])).toEqual([
    [id, { customerId, email: EMAIL }],
  ]);

  // The one without: dead-lettered at once with the reason, as received (encrypted), never handled.
  const inbox = legacy.get(InboxService);
  await waitUntil(
    async () => (await inbox.get({ consumer: LEGACY, messageId: id! }))?.status === 'dead_letter',
    'the legacy consumer dead-lettered it',
  );
  const dead = await inbox.get({ consumer: LEGACY, messageId: id! });
  expect(dead?.attempts).toBe(1);
  expect(dead?.lastError).toMatch(/^no-keys: the encrypted value at message\//);
  expect(JSON.stringify(dead?.message)).toContain('sage:enc');
  expect(JSON.stringify(dead?.message)).not.toContain(EMAIL);
  expect(await effects(db, LEGACY)).toEqual([]);
});
