import { randomUUID } from 'node:crypto';
import { Injectable, Module, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  createTestDatabase,
  sagePostgresOptions,
  withClient,
  type TestDatabase,
} from '@test/support/pg';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import type { JsonValue } from '../../core/json';
import type { BrokerMessage, DeliveredMessage } from '../../core/ports/broker';
import type { KeyProvider } from '../../core/ports/key-provider';
import {
  parseSagaCommand,
  SAGA_HEADERS,
  sagaReplyMessage,
  type ReceivedSagaCommand,
  type SagaCommand,
} from '../../core/saga/saga-command';
import { signMessage } from '../../core/signing/message-signature';
import { signingKeys } from '../../core/signing/signing-keys';
import type { MessageSigningOptions } from '../../core/signing/signing-options';
import { waitUntil } from '../../testing/async';
import { Saga, SagaStep } from '../decorators';
import { IdempotentHandler } from '../inbox/idempotent-handler.decorator';
import type { SagaStepContext } from '../saga-context';
import { SagaOutboxModule } from '../saga-outbox.module';
import { SagaService } from '../saga.service';
import { SagaCommandHandler } from './saga-command-handler.decorator';

jest.setTimeout(60_000);

// Forged replies and commands, on real PostgreSQL through the in-memory broker: the orchestrator
// ("checkout", schema checkout_sage) and the participant ("cards", schema cards_sage) share one
// database, each with its own Sage tables. A forgery must never complete a step, and must be
// dead-lettered by the inbox at once with its reason.
const COMMANDS = `cards-${randomUUID().slice(0, 8)}`;
const REPLIES = `checkout-replies-${randomUUID().slice(0, 8)}`;
const REPLY_CONSUMER = 'sage.saga-replies';
const EVENTS = `card-events-${randomUUID().slice(0, 8)}`;
const PARTNER_EVENTS = `partner-events-${randomUUID().slice(0, 8)}`;

@Saga('checkout')
@Injectable()
class CheckoutSaga {
  @SagaStep('reserve', { compensatable: false })
  reserve(): { reserved: true } {
    return { reserved: true };
  }

  // A long reply timeout: the step stays waiting while the forgeries arrive.
  @SagaStep('authorize', {
    kind: 'remote',
    dependsOn: ['reserve'],
    timeoutMs: 60_000,
    compensatable: false,
  })
  authorize(ctx: SagaStepContext<{ amount: number }>): SagaCommand {
    return { destination: COMMANDS, type: 'card.authorize', payload: { amount: ctx.input.amount } };
  }
}

@Injectable()
class CardParticipant {
  readonly handled: string[] = [];

  @SagaCommandHandler('card.authorize', {
    destination: COMMANDS,
    consumer: 'cards',
    replyTo: [REPLIES],
  })
  authorize(command: ReceivedSagaCommand): Promise<JsonValue> {
    this.handled.push(command.messageId);
    return Promise.resolve({ authorizationId: `auth-${command.idempotencyKey}` });
  }

  @IdempotentHandler(EVENTS, { consumer: 'events' })
  onEvent(message: DeliveredMessage): Promise<void> {
    this.handled.push(message.id);
    return Promise.resolve();
  }

  // A producer that does not sign (another team's service): exempt from signing.require.
  @IdempotentHandler(PARTNER_EVENTS, { consumer: 'partner-events', requireSignature: false })
  onPartnerEvent(message: DeliveredMessage): Promise<void> {
    this.handled.push(message.id);
    return Promise.resolve();
  }
}

const K1 = Buffer.alloc(32, 1);
const K2 = Buffer.alloc(32, 2);
/** Orchestrator: both keys, signs with the new one. Participant: both keys, still signs with the old. */
const orchestratorKeys = signingKeys({ active: 'k2', keys: { k1: K1, k2: K2 } });
const participantKeys = signingKeys({ active: 'k1', keys: { k1: K1, k2: K2 } });
const required = (keys: KeyProvider): MessageSigningOptions => ({ keys, require: true });

let db: TestDatabase;
const apps: INestApplication[] = [];

async function boot(
  schema: string,
  broker: InMemoryBroker,
  providers: unknown[],
  extra: { replyTo?: string; signing?: MessageSigningOptions } = {},
): Promise<INestApplication> {
  @Module({
    imports: [
      SagaOutboxModule.forRoot({
        postgres: sagePostgresOptions(db.connection),
        schema,
        broker,
        saga: { recoveryIntervalMs: 50, replyTo: extra.replyTo },
        outbox: { relay: { pollIntervalMs: 20 }, retention: { enabled: false } },
        signing: extra.signing,
      }),
    ],
    providers: providers as never[],
  })
  class ServiceModule {}
  const moduleRef = await Test.createTestingModule({ imports: [ServiceModule] }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  apps.push(app);
  return app;
}

const orchestrator = (broker: InMemoryBroker, signing?: MessageSigningOptions) =>
  boot('checkout_sage', broker, [CheckoutSaga], { replyTo: REPLIES, signing });
const participant = (broker: InMemoryBroker, signing?: MessageSigningOptions) =>
  boot('cards_sage', broker, [CardParticipant], { signing });

interface InboxRow {
  status: string;
  last_error: string | null;
}

/** The inbox row of `messageId` for `consumer` in `schema`, once there is one. */
async function inboxRow(schema: string, consumer: string, messageId: string): Promise<InboxRow> {
  let row: InboxRow | undefined;
  await waitUntil(
    async () => {
      row = await withClient(db.name, async (client) => {
        const { rows } = await client.query<InboxRow>(
          `SELECT status, last_error FROM ${schema}.inbox_message WHERE consumer = $1 AND message_id = $2`,
          [consumer, messageId],
        );
        return rows[0];
      });
      return row !== undefined;
    },
    `inbox row of ${messageId} in ${schema}`,
    15_000,
  );
  return row!;
}

/** Publishes `message` as anyone with access to the broker could; expects it dead-lettered for `reason`. */
async function expectRefused(
  broker: InMemoryBroker,
  message: BrokerMessage,
  reason: string,
  at: { schema: string; consumer: string } = { schema: 'checkout_sage', consumer: REPLY_CONSUMER },
): Promise<void> {
  const [result] = await broker.publish([message]);
  expect(result).toMatchObject({ ok: true });
  const row = await inboxRow(at.schema, at.consumer, message.id);
  expect(row.status).toBe('dead_letter');
  expect(row.last_error).toMatch(new RegExp(`^${reason}: `));
}

/** Starts a checkout and waits until its remote step awaits the reply; returns the command sent. */
async function waitingCheckout(
  app: INestApplication,
  broker: InMemoryBroker,
): Promise<{ sagaId: string; command: BrokerMessage }> {
  const sagas = app.get(SagaService);
  const { sagaId } = await sagas.start('checkout', { amount: 30 });
  let command: BrokerMessage | undefined;
  await waitUntil(
    () =>
      (command = broker.published.find((m) => m.key === sagaId && m.type === 'card.authorize')) !==
      undefined,
    'the command to be published',
    15_000,
  );
  await waitUntil(
    async () => (await sagas.get(sagaId)).status === 'waiting',
    'the saga to park',
    15_000,
  );
  return { sagaId, command: command! };
}

/** A reply to `command` as a Sage participant writes it (unsigned), under a fresh message id. */
function replyTo(
  command: BrokerMessage,
  headers: Record<string, string> = {},
  payload?: JsonValue,
): BrokerMessage {
  const received = parseSagaCommand(command);
  const reply = sagaReplyMessage(received, { ok: true, result: { authorizationId: 'forged' } });
  return {
    ...reply,
    id: randomUUID(),
    destination: REPLIES,
    key: reply.key,
    payload: payload === undefined ? reply.payload : payload,
    headers: { ...reply.headers, ...headers },
    time: new Date(),
  };
}

async function stepStatus(app: INestApplication, sagaId: string): Promise<string | undefined> {
  const saga = await app.get(SagaService).get(sagaId);
  return saga.steps.find((s) => s.name === 'authorize')?.status;
}

beforeAll(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});
afterAll(async () => {
  await db?.drop();
});

describe('replies that answer no command Sage sent (no signing)', () => {
  it('wrong attempt, wrong idempotency key, a step not awaiting, an unknown saga: dead-lettered with the reason, the step still waits', async () => {
    const broker = new InMemoryBroker();
    const app = await orchestrator(broker);
    const { sagaId, command } = await waitingCheckout(app, broker);
    await expectRefused(
      broker,
      replyTo(command, { [SAGA_HEADERS.attempt]: '2' }),
      'reply-attempt-unknown',
    );
    await expectRefused(
      broker,
      replyTo(command, { [SAGA_HEADERS.idempotencyKey]: `${sagaId}:reserve` }),
      'reply-key-mismatch',
    );
    // A local step never awaits a reply.
    await expectRefused(
      broker,
      replyTo(command, {
        [SAGA_HEADERS.step]: 'reserve',
        [SAGA_HEADERS.idempotencyKey]: `${sagaId}:reserve`,
      }),
      'reply-step-unknown',
    );
    // The compensation of a step that never sent one.
    await expectRefused(
      broker,
      replyTo(command, {
        [SAGA_HEADERS.phase]: 'compensate',
        [SAGA_HEADERS.idempotencyKey]: `${sagaId}:authorize:compensate`,
      }),
      'reply-attempt-unknown',
    );
    const other = randomUUID();
    await expectRefused(
      broker,
      replyTo(command, {
        [SAGA_HEADERS.sagaId]: other,
        [SAGA_HEADERS.idempotencyKey]: `${other}:authorize`,
      }),
      'reply-step-unknown',
    );
    expect(await stepStatus(app, sagaId)).toBe('waiting');
    expect((await app.get(SagaService).get(sagaId)).status).toBe('waiting');

    // The genuine reply (attempt 1, the step's key) completes it; a late copy is ignored, not refused.
    const genuine = replyTo(command);
    await broker.publish([genuine]);
    const done = await app.get(SagaService).waitFor(sagaId, { timeoutMs: 15_000 });
    expect(done.status).toBe('completed');
    expect(done.steps.find((s) => s.name === 'authorize')?.result).toEqual({
      authorizationId: 'forged',
    });
    const late = replyTo(command);
    await broker.publish([late]);
    expect(await inboxRow('checkout_sage', REPLY_CONSUMER, late.id)).toEqual({
      status: 'processed',
      last_error: null,
    });
  });
});

describe('reply destinations a participant allows', () => {
  it('a command asking for its reply on a destination not allowed is dead-lettered, unhandled, unanswered; an allowed one completes', async () => {
    const broker = new InMemoryBroker();
    const orders = await orchestrator(broker);
    const cards = await participant(broker);
    const { sagaId } = await orders.get(SagaService).start('checkout', { amount: 5 });
    const done = await orders.get(SagaService).waitFor(sagaId, { timeoutMs: 15_000 });
    expect(done.status).toBe('completed');
    const genuine = broker.published.find((m) => m.key === sagaId && m.type === 'card.authorize')!;

    const forged: BrokerMessage = {
      ...genuine,
      id: randomUUID(),
      headers: { ...genuine.headers, [SAGA_HEADERS.replyTo]: 'attacker.replies' },
    };
    await expectRefused(broker, forged, 'reply-to-not-allowed', {
      schema: 'cards_sage',
      consumer: 'cards',
    });
    expect(cards.get(CardParticipant).handled).not.toContain(forged.id);
    expect(broker.published.filter((m) => m.destination === 'attacker.replies')).toEqual([]);
    const rows = await withClient(db.name, (client) =>
      client.query(`SELECT 1 FROM cards_sage.outbox_message WHERE destination = $1`, [
        'attacker.replies',
      ]),
    );
    expect(rows.rowCount).toBe(0);
  });
});

describe('signed messages (signing.require)', () => {
  it('a signed flow completes, with key rotation: old-key replies verify, new writes use the active key', async () => {
    const broker = new InMemoryBroker();
    const orders = await orchestrator(broker, required(orchestratorKeys));
    await participant(broker, required(participantKeys));
    const { sagaId } = await orders.get(SagaService).start('checkout', { amount: 12 });
    const done = await orders.get(SagaService).waitFor(sagaId, { timeoutMs: 15_000 });
    expect(done.status).toBe('completed');
    const command = broker.published.find((m) => m.key === sagaId && m.type === 'card.authorize')!;
    const reply = broker.published.find((m) => m.key === sagaId && m.destination === REPLIES)!;
    expect(command.headers['sage-signature-key']).toBe('k2');
    expect(reply.headers['sage-signature-key']).toBe('k1');
    expect(command.headers['sage-signature']).toMatch(/^v1=/);
    // Stored signed: the row in the outbox already carries the signature (the relay holds no key).
    const stored = await withClient(db.name, (client) =>
      client.query<{ headers: Record<string, string> }>(
        'SELECT headers FROM checkout_sage.outbox_message WHERE id = $1',
        [command.id],
      ),
    );
    expect(stored.rows[0]?.headers['sage-signature']).toBe(command.headers['sage-signature']);
  });

  it('unsigned, unknown key, tampered payload, tampered header, a signature replayed on another id: each dead-lettered with its reason, the step still waits', async () => {
    const broker = new InMemoryBroker();
    const app = await orchestrator(broker, required(orchestratorKeys));
    const { sagaId, command } = await waitingCheckout(app, broker);
    const signed = signMessage(replyTo(command), participantKeys);

    await expectRefused(broker, replyTo(command), 'signature-missing');
    const stranger = signingKeys({ active: 'k9', keys: { k9: Buffer.alloc(32, 9) } });
    await expectRefused(broker, signMessage(replyTo(command), stranger), 'signature-key-unknown');
    // Someone who guessed a key id but not its secret.
    const guessed = signingKeys({ active: 'k1', keys: { k1: Buffer.alloc(32, 8) } });
    await expectRefused(broker, signMessage(replyTo(command), guessed), 'signature-invalid');
    await expectRefused(
      broker,
      { ...signed, id: randomUUID(), payload: { result: { authorizationId: 'tampered' } } },
      'signature-invalid',
    );
    await expectRefused(
      broker,
      {
        ...signed,
        id: randomUUID(),
        headers: { ...signed.headers, [SAGA_HEADERS.outcome]: 'failure' },
        payload: { error: 'declined' },
      },
      'signature-invalid',
    );
    // A valid signature copied onto a message with another id (the copy is its own delivery).
    await expectRefused(broker, { ...signed, id: randomUUID() }, 'signature-invalid');
    expect(await stepStatus(app, sagaId)).toBe('waiting');

    // The genuine signed reply completes the step.
    await broker.publish([signed]);
    const done = await app.get(SagaService).waitFor(sagaId, { timeoutMs: 15_000 });
    expect(done.status).toBe('completed');
  });

  it('an unsigned command to a participant requiring signatures is dead-lettered, never handled', async () => {
    const broker = new InMemoryBroker();
    const orders = await orchestrator(broker);
    const cards = await participant(broker, required(participantKeys));
    const { command } = await waitingCheckout(orders, broker);
    expect(command.headers['sage-signature']).toBeUndefined();
    const row = await inboxRow('cards_sage', 'cards', command.id);
    expect(row.status).toBe('dead_letter');
    expect(row.last_error).toMatch(/^signature-missing: /);
    expect(cards.get(CardParticipant).handled).toEqual([]);
  });

  it('@IdempotentHandler events: unsigned ones are dead-lettered, signed ones handled; an exempt handler takes unsigned ones', async () => {
    const broker = new InMemoryBroker();
    const cards = await participant(broker, required(participantKeys));
    const event = (destination: string): BrokerMessage => ({
      id: randomUUID(),
      destination,
      key: null,
      type: 'card.expired',
      payload: { card: '4242' },
      headers: {},
      time: new Date(),
    });
    const unsigned = event(EVENTS);
    await expectRefused(broker, unsigned, 'signature-missing', {
      schema: 'cards_sage',
      consumer: 'events',
    });
    const signed = signMessage(event(EVENTS), orchestratorKeys);
    await broker.publish([signed]);
    expect((await inboxRow('cards_sage', 'events', signed.id)).status).toBe('processed');
    const partner = event(PARTNER_EVENTS);
    await broker.publish([partner]);
    expect((await inboxRow('cards_sage', 'partner-events', partner.id)).status).toBe('processed');
    expect(cards.get(CardParticipant).handled).toEqual([signed.id, partner.id]);
  });
});
