import { randomBytes } from 'node:crypto';
import { InMemoryInboxStore } from '../../testing/in-memory-inbox-store';
import { InMemoryOutboxStore } from '../../testing/in-memory-outbox-store';
import type { InMemoryTx } from '../../testing/in-memory-saga-store';
import { InMemorySubjectKeyStore } from '../../testing/in-memory-subject-key-store';
import { DeliveryDeferredError } from '../errors';
import { InboxProcessor } from '../inbox/inbox-processor';
import { deliverThroughInbox, type InboxEndpoint } from '../inbox/inbox-subscription';
import { OutboxMessageTooLargeError } from '../outbox/outbox-errors';
import { OutboxPublisher } from '../outbox/outbox-publisher';
import type { DeliveredMessage } from '../ports/broker';
import type { SubjectKeyStore } from '../ports/subject-key-store';
import { signingKeys } from '../signing/signing-keys';
import { verifyMessageSignature } from '../signing/message-signature';
import { validateDataProtection, type DataProtectionOptions } from './data-protection-options';
import { DataProtector, ENCRYPTED_HEADER } from './data-protector';
import { encryptionKeys } from './encryption-keys';

const EMAIL = 'ada@example.test';
const masterKey = randomBytes(32);

function protectorWith(extra: Partial<DataProtectionOptions> = {}): DataProtector<InMemoryTx> {
  return new DataProtector<InMemoryTx>(
    validateDataProtection({
      keys: encryptionKeys({ active: 'k1', keys: { k1: masterKey } }),
      subjectKeys: new InMemorySubjectKeyStore(),
      messages: { 'customer.registered': { fields: ['email'], subject: 'customerId' } },
      ...extra,
    })!,
  );
}

async function written(
  protector: DataProtector<InMemoryTx>,
  payload = { customerId: 'c-1', email: EMAIL },
  extra: { maxMessageBytes?: number; signed?: boolean } = {},
) {
  const outbox = new InMemoryOutboxStore();
  const keys = signingKeys({ active: 's1', keys: { s1: randomBytes(32) } });
  const publisher = new OutboxPublisher<InMemoryTx>({
    writer: outbox,
    protector,
    signingKeys: extra.signed ? keys : undefined,
    maxMessageBytes: extra.maxMessageBytes,
  });
  await outbox.transaction((tx) =>
    publisher.publish(
      { destination: 'customers', type: 'customer.registered', payload },
      { manager: tx },
    ),
  );
  return { stored: outbox.all(), keys };
}

function delivered(m: {
  id: string;
  type: string;
  payload: DeliveredMessage['payload'];
  headers: Record<string, string>;
}): DeliveredMessage {
  return {
    ...m,
    destination: 'customers',
    key: null,
    time: new Date(),
    deliveryAttempt: 1,
  };
}

function consumer() {
  const store = new InMemoryInboxStore();
  const inbox = new InboxProcessor<InMemoryTx>({ store, maxAttempts: 3 });
  const seen: DeliveredMessage[] = [];
  const endpoint: InboxEndpoint<InMemoryTx, void> = {
    destination: 'customers',
    consumer: 'mailer',
    handle: (m) => {
      seen.push(m);
      return Promise.resolve();
    },
    deliveryError: { message: 'could not take it', event: 'mailer.delivery_error' },
  };
  return { store, inbox, seen, endpoint };
}

describe('OutboxPublisher with data protection', () => {
  it('stores declared fields encrypted, marks the message, and signs the ciphertext', async () => {
    const { stored, keys } = await written(protectorWith(), undefined, { signed: true });
    expect(stored).toHaveLength(1);
    const [m] = stored;
    expect(JSON.stringify(m)).not.toContain(EMAIL);
    expect(m!.payload).toMatchObject({ customerId: 'c-1' });
    expect(m!.headers[ENCRYPTED_HEADER]).toBe('v1');
    // Signed after sealing: the stored (encrypted) message verifies.
    expect(() => verifyMessageSignature(m!, keys)).not.toThrow();
  });

  it('refuses a message too large once encrypted, writing nothing', async () => {
    const payload = { customerId: 'c-1', email: 'x'.repeat(300) };
    // Fits in clear (about 330 bytes), not encrypted (base64 grows it by a third, plus the envelope).
    await expect(
      written(protectorWith(), payload, { maxMessageBytes: 400 }),
    ).rejects.toBeInstanceOf(OutboxMessageTooLargeError);
    await expect(
      written(protectorWith(), payload, { maxMessageBytes: 1000 }),
    ).resolves.toBeDefined();
  });
});

describe('deliverThroughInbox with data protection', () => {
  it('hands the handler plaintext; the producer and consumer share the keys', async () => {
    const subjectKeys = new InMemorySubjectKeyStore();
    const { stored } = await written(protectorWith({ subjectKeys }));
    const c = consumer();
    await deliverThroughInbox(c.endpoint, delivered(stored[0]!), {
      inbox: c.inbox,
      protector: protectorWith({ subjectKeys, messages: {} }),
    });
    expect(c.seen).toHaveLength(1);
    expect(c.seen[0]!.payload).toEqual({ customerId: 'c-1', email: EMAIL });
  });

  it('without keys: dead-lettered at once (no-keys), never handled, the snapshot still encrypted', async () => {
    const { stored } = await written(protectorWith());
    const c = consumer();
    const m = delivered(stored[0]!);
    await deliverThroughInbox(c.endpoint, m, { inbox: c.inbox });
    expect(c.seen).toHaveLength(0);
    const entry = await c.store.get({ consumer: 'mailer', messageId: m.id });
    expect(entry).toMatchObject({ status: 'dead_letter', attempts: 1 });
    expect(entry!.lastError).toMatch(/^no-keys: the encrypted value at message\//);
    expect(JSON.stringify(entry!.message)).not.toContain(EMAIL);
    expect(JSON.stringify(entry!.message)).toContain('sage:enc');
  });

  it('an erased subject or another key store: dead-lettered at once (subject-erased)', async () => {
    const { stored } = await written(protectorWith());
    const c = consumer();
    const m = delivered(stored[0]!);
    // A consumer with the master key but not the producer's subject key store.
    await deliverThroughInbox(c.endpoint, m, { inbox: c.inbox, protector: protectorWith() });
    expect(c.seen).toHaveLength(0);
    const entry = await c.store.get({ consumer: 'mailer', messageId: m.id });
    expect(entry?.lastError).toMatch(/^subject-erased:/);
  });

  it('a key store that is down defers the delivery (redelivered, not counted)', async () => {
    const subjectKeys = new InMemorySubjectKeyStore();
    const { stored } = await written(protectorWith({ subjectKeys }));
    const down: SubjectKeyStore = {
      findBySubject: () => Promise.reject(new Error('ECONNREFUSED')),
      findById: () => Promise.reject(new Error('ECONNREFUSED')),
      insertIfAbsent: () => Promise.reject(new Error('ECONNREFUSED')),
      erase: () => Promise.reject(new Error('ECONNREFUSED')),
      wrappedWithOther: () => Promise.reject(new Error('ECONNREFUSED')),
      rewrap: () => Promise.reject(new Error('ECONNREFUSED')),
    };
    const c = consumer();
    const m = delivered(stored[0]!);
    await expect(
      deliverThroughInbox(c.endpoint, m, {
        inbox: c.inbox,
        protector: protectorWith({ subjectKeys: down }),
      }),
    ).rejects.toBeInstanceOf(DeliveryDeferredError);
    expect(c.seen).toHaveLength(0);
    await expect(c.store.get({ consumer: 'mailer', messageId: m.id })).resolves.toBeUndefined();
    await expect(
      c.store.getFailure({ consumer: 'mailer', messageId: m.id }),
    ).resolves.toBeUndefined();
  });

  it('a message in clear passes through untouched, with or without keys', async () => {
    const c = consumer();
    const m = delivered({ id: 'm-clear', type: 'other', payload: { email: EMAIL }, headers: {} });
    await deliverThroughInbox(c.endpoint, m, { inbox: c.inbox });
    await deliverThroughInbox(
      c.endpoint,
      { ...m, id: 'm-clear-2' },
      {
        inbox: c.inbox,
        protector: protectorWith(),
      },
    );
    expect(c.seen.map((s) => s.payload)).toEqual([{ email: EMAIL }, { email: EMAIL }]);
  });
});
