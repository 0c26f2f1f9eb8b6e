import { randomBytes, randomUUID } from 'node:crypto';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import type { BrokerMessage } from '../../core/ports/broker';
import type { StoredSubjectKey } from '../../core/ports/subject-key-store';
import { createDataProtection } from '../../core/protection/data-protection';
import { ENCRYPTED_HEADER } from '../../core/protection/data-protector';
import { encryptionKeys } from '../../core/protection/encryption-keys';
import { DataUnreadableError } from '../../core/protection/protection-errors';
import { MessageRefusedError } from '../../core/inbox/message-refused';
import { defineContract, dataschemaOf } from '../../core/contracts/message-contract';
import { createContracts } from '../contracts/create-contracts';
import { InMemorySubjectKeyStore } from '../../testing/in-memory-subject-key-store';
import { waitUntil } from '../../testing/async';
import {
  SageBrokerTransport,
  type SageBrokerContext,
  type SageBrokerTransportOptions,
} from './sage-broker.transport';

const EMAIL = `grace.${randomUUID().slice(0, 8)}@example.test`;

/** A subject key store whose reads fail while `down` is set. */
class FlakySubjectKeyStore extends InMemorySubjectKeyStore {
  down = false;
  override findById(id: string): Promise<StoredSubjectKey | undefined> {
    if (this.down) return Promise.reject(new Error('connection refused'));
    return super.findById(id);
  }
}

const keys = encryptionKeys({ active: 'k1', keys: { k1: randomBytes(32) } });
const store = new FlakySubjectKeyStore();
const options = {
  keys,
  subjectKeys: store,
  messages: { 'customer.registered': { subject: 'customerId', fields: ['email'] } },
};
const producer = createDataProtection(options).protector;

async function encryptedMessage(): Promise<BrokerMessage> {
  const id = randomUUID();
  return producer.sealMessage({
    id,
    destination: 'customers',
    key: 'c-1',
    type: 'customer.registered',
    payload: { customerId: 'c-1', email: EMAIL },
    headers: {},
    time: new Date(),
  });
}

interface Seen {
  payload: unknown;
  ctx: SageBrokerContext;
}

const running: { transport: SageBrokerTransport; broker: InMemoryBroker }[] = [];

async function listen(
  protector: SageBrokerTransportOptions['protector'],
  contracts?: SageBrokerTransportOptions['contracts'],
): Promise<Seen[]> {
  const broker = new InMemoryBroker({ redeliveryDelayMs: 1 });
  const transport = new SageBrokerTransport({ broker, protector, contracts });
  running.push({ transport, broker });
  const seen: Seen[] = [];
  transport.addHandler(
    'customers',
    (payload: unknown, ctx: SageBrokerContext) => {
      seen.push({ payload, ctx });
      return Promise.resolve();
    },
    true,
  );
  let failure: unknown;
  await transport.listen((error) => {
    failure = error;
  });
  if (failure) throw failure as Error;
  return seen;
}

const publish = async (message: BrokerMessage) => {
  const [result] = await running.at(-1)!.broker.publish([message]);
  expect(result?.ok).toBe(true);
};

afterEach(async () => {
  store.down = false;
  for (const { transport, broker } of running.splice(0)) {
    await transport.close();
    await broker.close();
  }
});

describe('SageBrokerTransport with dataProtection', () => {
  it('hands the handler the plaintext payload, and a context that says it was readable', async () => {
    const seen = await listen(createDataProtection(options).protector);
    const message = await encryptedMessage();
    expect(JSON.stringify(message.payload)).not.toContain(EMAIL);
    await publish(message);
    await waitUntil(() => seen.length === 1, 'handled');
    expect(seen[0]!.payload).toEqual({ customerId: 'c-1', email: EMAIL });
    expect(seen[0]!.ctx.getDeliveredMessage().payload).toEqual({ customerId: 'c-1', email: EMAIL });
    expect(seen[0]!.ctx.getDeliveredMessage().headers[ENCRYPTED_HEADER]).toBe('v1');
    expect(seen[0]!.ctx.getUnreadableError()).toBeUndefined();
  });

  it('without a protector: the message as received, with the no-keys DataUnreadableError in the context', async () => {
    const seen = await listen(null);
    const message = await encryptedMessage();
    await publish(message);
    await waitUntil(() => seen.length === 1, 'handed over');
    expect(JSON.stringify(seen[0]!.payload)).not.toContain(EMAIL);
    expect(seen[0]!.payload).toEqual(message.payload);
    const error = seen[0]!.ctx.getUnreadableError() as DataUnreadableError;
    expect(error).toBeInstanceOf(DataUnreadableError);
    expect(error.reason).toBe('no-keys');
    expect(error.location).toBe(`message/${message.id}/customer.registered`);
  });

  it('a message in clear needs no protector', async () => {
    const seen = await listen(undefined);
    await publish({ ...(await encryptedMessage()), payload: { plain: true }, headers: {} });
    await waitUntil(() => seen.length === 1, 'handled');
    expect(seen[0]!.payload).toEqual({ plain: true });
    expect(seen[0]!.ctx.getUnreadableError()).toBeUndefined();
  });

  it('a subject key store that is down: not handed over, redelivered, then handled in clear', async () => {
    // A fresh protector: its key cache is empty, so it must read the store.
    const seen = await listen(createDataProtection(options).protector);
    const message = await encryptedMessage();
    store.down = true;
    await publish(message);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen).toHaveLength(0);
    store.down = false;
    await waitUntil(() => seen.length === 1, 'handled once the store is back');
    expect(seen[0]!.payload).toEqual({ customerId: 'c-1', email: EMAIL });
    expect(seen[0]!.ctx.getDeliveredMessage().deliveryAttempt).toBeGreaterThan(1);
  });
});

describe('SageBrokerTransport with contracts', () => {
  const v1 = defineContract({
    type: 'customer.registered',
    version: 1,
    schema: {
      type: 'object',
      required: ['customerId', 'email'],
      properties: { customerId: { type: 'string' }, email: { type: 'string', format: 'email' } },
      additionalProperties: false,
    },
  });
  const v2 = defineContract({
    type: 'customer.registered',
    version: 2,
    schema: {
      type: 'object',
      required: ['customer'],
      properties: {
        customer: {
          type: 'object',
          required: ['id', 'email'],
          properties: { id: { type: 'string' }, email: { type: 'string', format: 'email' } },
        },
      },
    },
    upcast: (p) => {
      const { customerId, email } = p as { customerId: string; email: string };
      return { customer: { id: customerId, email } };
    },
  });
  const incoming = () => createContracts({ consumes: [v1, v2] }).incoming;
  const raw = (payload: BrokerMessage['payload'], version?: number): BrokerMessage => ({
    id: randomUUID(),
    destination: 'customers',
    key: 'c-2',
    type: 'customer.registered',
    payload,
    headers: version ? { 'ce-dataschema': dataschemaOf('customer.registered', version) } : {},
    time: new Date(),
  });

  it('hands the handler a v1 message upcast to v2', async () => {
    const seen = await listen(null, incoming());
    await publish(raw({ customerId: 'c-2', email: EMAIL }, 1));
    await waitUntil(() => seen.length === 1, 'handled');
    expect(seen[0]!.payload).toEqual({ customer: { id: 'c-2', email: EMAIL } });
    expect(seen[0]!.ctx.getDeliveredMessage().headers['ce-dataschema']).toBe(
      dataschemaOf('customer.registered', 2),
    );
    expect(seen[0]!.ctx.getUnreadableError()).toBeUndefined();
  });

  it('a message that does not match: as received, with the contract-invalid refusal in the context (never the value)', async () => {
    const seen = await listen(null, incoming());
    await publish(raw({ customerId: 'c-2', email: 'not-an-email' }, 1));
    await waitUntil(() => seen.length === 1, 'handed over');
    expect(seen[0]!.payload).toEqual({ customerId: 'c-2', email: 'not-an-email' });
    const error = seen[0]!.ctx.getUnreadableError();
    expect(error).toBeInstanceOf(MessageRefusedError);
    expect((error as MessageRefusedError).reason).toBe('contract-invalid');
    expect(error!.message).toMatch(/\/email must match format "email"/);
    expect(error!.message).not.toContain('not-an-email');
  });
});
