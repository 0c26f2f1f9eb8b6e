import { randomBytes, randomUUID } from 'node:crypto';
import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createTestDatabase, withClient, type TestDatabase } from '@test/support/pg';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import type { DeliveredMessage } from '../../core/ports/broker';
import { encryptionKeys } from '../../core/protection/encryption-keys';
import { waitUntil } from '../../testing/async';
import { Saga, SagaStep } from '../decorators';
import { IdempotentHandler } from '../inbox/idempotent-handler.decorator';
import { InboxService } from '../inbox/inbox.service';
import type { SagaStepContext } from '../saga-context';
import { SagaOutboxModule } from '../saga-outbox.module';
import type { SagaOutboxModuleOptions } from '../saga-outbox.options';
import { SagaService } from '../saga.service';

jest.setTimeout(60_000);

// Plaintext values that must never reach a table or the broker in clear.
const EMAIL = `ada.${randomUUID().slice(0, 8)}@example.test`;
const NAME = `Ada Lovelace ${randomUUID().slice(0, 8)}`;
const TOKEN = `tok_${randomUUID().replace(/-/g, '')}`;
const CUSTOMERS = `customers-${randomUUID().slice(0, 8)}`;

interface SignupInput {
  customer: { id: string; email: string; name: string };
  plan: string;
}

@Saga('signup')
class SignupSaga {
  @SagaStep('register', { compensatable: false })
  async register(ctx: SagaStepContext<SignupInput>) {
    await ctx.emit({
      destination: CUSTOMERS,
      type: 'customer.registered',
      key: ctx.input.customer.id,
      payload: { customerId: ctx.input.customer.id, email: ctx.input.customer.email },
    });
    return { token: TOKEN, plan: ctx.input.plan };
  }
}

const seen: DeliveredMessage[] = [];

@Injectable()
class Mailer {
  @IdempotentHandler(CUSTOMERS, { consumer: 'mailer' })
  onRegistered(message: DeliveredMessage): Promise<void> {
    seen.push(message);
    return Promise.resolve();
  }
}

/** Another team's consumer, configured without `dataProtection`. */
@Injectable()
class LegacyMailer {
  @IdempotentHandler(CUSTOMERS, { consumer: 'legacy-mailer' })
  onRegistered(message: DeliveredMessage): Promise<void> {
    seen.push(message);
    return Promise.resolve();
  }
}

let db: TestDatabase;
const apps: INestApplicationContext[] = [];
const keys = encryptionKeys({ active: 'k1', keys: { k1: randomBytes(32) } });

async function boot(
  broker: InMemoryBroker,
  providers: unknown[],
  extra: Partial<SagaOutboxModuleOptions>,
): Promise<INestApplicationContext> {
  const c = db.connection;
  @Module({
    imports: [
      SagaOutboxModule.forRoot({
        postgres: {
          host: c.host,
          port: c.port,
          user: c.user,
          password: c.password,
          database: c.database,
          poolSize: 4,
        },
        broker,
        outbox: { relay: { pollIntervalMs: 20 }, retention: { enabled: false } },
        ...extra,
      }),
    ],
    providers: providers as never[],
  })
  class AppModule {}
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  apps.push(app);
  return app;
}

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
  await db?.drop();
});

/** Every stored saga, step and outbox row as text, as a database dump shows them. */
const dump = (): Promise<string> =>
  withClient(db.name, async (client) => {
    const rows: string[] = [];
    for (const sql of [
      'SELECT input::text AS t FROM sage.saga_instance',
      "SELECT coalesce(result::text, '') AS t FROM sage.saga_step",
      'SELECT payload::text || headers::text AS t FROM sage.outbox_message',
    ])
      rows.push(...(await client.query<{ t: string }>(sql)).rows.map((r) => r.t));
    return rows.join('\n');
  });

it('encrypts declared fields in saga state, the outbox and on the wire; handlers see plaintext; a consumer without keys dead-letters', async () => {
  const broker = new InMemoryBroker();
  const producer = await boot(broker, [SignupSaga, Mailer], {
    dataProtection: {
      keys,
      sagas: {
        signup: {
          subject: 'customer.id',
          input: ['customer.email', 'customer.name'],
          results: { register: ['token'] },
        },
      },
      messages: { 'customer.registered': { subject: 'customerId', fields: ['email'] } },
    },
  });
  const legacy = await boot(broker, [LegacyMailer], {});

  const sagas = producer.get(SagaService);
  const customerId = `c-${randomUUID()}`;
  const input: SignupInput = {
    customer: { id: customerId, email: EMAIL, name: NAME },
    plan: 'pro',
  };
  const { sagaId } = await sagas.start('signup', input);
  const done = await sagas.waitFor(sagaId, { timeoutMs: 20_000 });

  // The app reads plaintext back.
  expect(done.status).toBe('completed');
  expect(done.input).toEqual(input);
  expect(done.steps.find((s) => s.name === 'register')?.result).toEqual({
    token: TOKEN,
    plan: 'pro',
  });

  // The handler with the keys sees the event in clear.
  await waitUntil(
    () => seen.some((m) => m.type === 'customer.registered'),
    'the mailer handled it',
  );
  const delivered = seen.find((m) => m.type === 'customer.registered')!;
  expect(delivered.payload).toEqual({ customerId, email: EMAIL });

  // The consumer without keys dead-letters it, keeping the message as received (encrypted).
  const legacyInbox = legacy.get(InboxService);
  await waitUntil(
    async () =>
      (await legacyInbox.get({ consumer: 'legacy-mailer', messageId: delivered.id }))?.status ===
      'dead_letter',
    'the legacy consumer dead-lettered it',
  );
  const dead = await legacyInbox.get({ consumer: 'legacy-mailer', messageId: delivered.id });
  expect(dead?.attempts).toBe(1);
  expect(dead?.lastError).toMatch(/^no-keys: the encrypted value at message\//);
  expect(JSON.stringify(dead?.message)).toContain('sage:enc');
  expect(JSON.stringify(dead?.message)).not.toContain(EMAIL);
  expect(seen.filter((m) => m.id === delivered.id)).toHaveLength(1);

  // No plaintext of a declared field anywhere in the tables; what is not declared stays readable.
  const text = await dump();
  for (const secret of [EMAIL, NAME, TOKEN]) expect(text).not.toContain(secret);
  expect(text).toContain(customerId);
  expect(text).toContain('"plan": "pro"');
  expect(text).toContain('sage-encrypted');
  // The subject's key exists, only wrapped.
  const keyRows = await withClient(db.name, (client) =>
    client.query<{ n: string }>(
      'SELECT count(*) AS n FROM sage.subject_key WHERE subject_id = $1',
      [customerId],
    ),
  );
  expect(Number(keyRows.rows[0]!.n)).toBe(1);
});
