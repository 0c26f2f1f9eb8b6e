import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { InMemoryInboxStore } from '../../testing/in-memory-inbox-store';
import { InMemoryTx } from '../../testing/in-memory-saga-store';
import { ajvSchemaCompiler } from '../contracts/ajv-schema-compiler';
import { ContractRegistry } from '../contracts/contract-registry';
import { InboxHandlerFailedError } from '../inbox/inbox-errors';
import { InboxProcessor } from '../inbox/inbox-processor';
import { deliverThroughInbox } from '../inbox/inbox-subscription';
import { MessageRefusedError } from '../inbox/message-refused';
import type { NewOutboxMessage } from '../outbox/outbox-message';
import { OutboxPublisher } from '../outbox/outbox-publisher';
import type { OutboxWriter } from '../ports/outbox-store';
import type { DeliveredMessage } from '../ports/broker';
import { SAGA_HEADERS, sagaReplyMessage, parseSagaCommand } from '../saga/saga-command';
import {
  participantInboxEndpoint,
  rejectCommand,
  type SagaCommandAnswer,
} from './participant-protocol';
import { applySagaReply, type SagaReplyEngine } from './reply-protocol';

const contracts = new ContractRegistry(
  [
    {
      type: 'payment.authorize',
      version: 1,
      kind: 'command',
      schema: { type: 'object', required: ['amount'] },
      reply: {
        type: 'object',
        required: ['authorizationId'],
        properties: { authorizationId: { type: 'string' } },
      },
    },
  ],
  ajvSchemaCompiler(() => ({ Ajv2020: Ajv2020 as never, addFormats: addFormats as never })),
);

/** The participant's outbox: rows exist once the inbox transaction they were written in commits. */
class CommittedOutbox implements OutboxWriter<InMemoryTx> {
  readonly rows: NewOutboxMessage[] = [];
  isTransaction(tx: InMemoryTx): boolean {
    return tx instanceof InMemoryTx;
  }
  insert(tx: InMemoryTx, messages: readonly NewOutboxMessage[]): Promise<void> {
    tx.onCommit(() => this.rows.push(...messages));
    return Promise.resolve();
  }
  all(): NewOutboxMessage[] {
    return this.rows;
  }
}

let seq = 0;
function command(): DeliveredMessage {
  seq++;
  return {
    id: `cmd-${seq}`,
    destination: 'payments',
    key: 'saga-1',
    type: 'payment.authorize',
    payload: { amount: 42 },
    headers: {
      [SAGA_HEADERS.sagaId]: 'saga-1',
      [SAGA_HEADERS.saga]: 'checkout',
      [SAGA_HEADERS.step]: 'authorize',
      [SAGA_HEADERS.phase]: 'forward',
      [SAGA_HEADERS.attempt]: '1',
      [SAGA_HEADERS.idempotencyKey]: 'saga-1:authorize',
      [SAGA_HEADERS.replyTo]: 'checkout.replies',
    },
    time: new Date(),
    deliveryAttempt: 1,
  };
}

function participant(answer: SagaCommandAnswer) {
  const store = new InMemoryInboxStore();
  const inbox = new InboxProcessor<InMemoryTx>({ store, maxAttempts: 2 });
  const outbox = new CommittedOutbox();
  const endpoint = participantInboxEndpoint<InMemoryTx>(
    {
      destination: 'payments',
      consumer: 'payment-service',
      maxAttempts: undefined,
      handlers: new Map([
        ['payment.authorize', { name: 'Payments.authorize', run: () => Promise.resolve(answer) }],
      ]),
    },
    new OutboxPublisher<InMemoryTx>({ writer: outbox }),
    undefined,
    contracts,
  );
  return {
    store,
    outbox,
    deliver: (m: DeliveredMessage) =>
      deliverThroughInbox(endpoint, m, { inbox, contracts: contracts }),
  };
}

describe('participant: reply results checked against the command contract', () => {
  it('replies with the command type echoed when the result matches', async () => {
    const { outbox, deliver } = participant({ authorizationId: 'a-1' });
    await deliver(command());
    const [reply] = outbox.all();
    expect(reply?.headers[SAGA_HEADERS.commandType]).toBe('payment.authorize');
    expect(reply?.payload).toEqual({ result: { authorizationId: 'a-1' } });
  });

  it('fails the attempt (no reply) when the result does not match, then dead-letters it', async () => {
    const { outbox, store, deliver } = participant({ authorizationId: 7 });
    const cmd = command();
    const error = await deliver(cmd).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InboxHandlerFailedError);
    expect((error as Error).message).toContain(
      'The result a handler returned for a "payment.authorize" command does not match the command\'s reply contract (version 1): reply result /authorizationId must be string',
    );
    await deliver({ ...cmd, deliveryAttempt: 2 });
    expect(await store.get({ consumer: 'payment-service', messageId: cmd.id })).toMatchObject({
      status: 'dead_letter',
      attempts: 2,
    });
    expect(outbox.all()).toEqual([]);
  });

  it('does not check a rejection', async () => {
    const { outbox, deliver } = participant(rejectCommand('card declined'));
    await deliver(command());
    expect(outbox.all().map((r) => r.payload)).toEqual([{ error: 'card declined' }]);
  });
});

describe('orchestrator: success results checked against the sent command contract', () => {
  const engine = {
    applyReply: jest.fn(() => Promise.resolve(undefined)),
  } as unknown as SagaReplyEngine<InMemoryTx>;
  const reply = (result: unknown, withType = true) => {
    const m = sagaReplyMessage(parseSagaCommand(command()), { ok: true, result: result as never });
    if (!withType) delete m.headers[SAGA_HEADERS.commandType];
    return { id: 'r-1', ...m };
  };

  it('refuses (contract-invalid) a success result that does not match', async () => {
    const error = await applySagaReply(engine, new InMemoryTx(), reply({}), contracts).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(MessageRefusedError);
    expect((error as MessageRefusedError).reason).toBe('contract-invalid');
    expect((error as Error).message).toMatch(
      /^contract-invalid: the reply result to a "payment.authorize" command does not match its contract \(version 1\): \(payload\) must have required property 'authorizationId'/,
    );
  });

  it('applies a matching one, and one from a participant that does not name the command type', async () => {
    await expect(
      applySagaReply(engine, new InMemoryTx(), reply({ authorizationId: 'a' }), contracts),
    ).resolves.toBeUndefined();
    await expect(
      applySagaReply(engine, new InMemoryTx(), reply({}, false), contracts),
    ).resolves.toBeUndefined();
  });
});
