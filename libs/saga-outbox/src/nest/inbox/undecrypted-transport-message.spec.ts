import { randomUUID } from 'node:crypto';
import type { PostgresInboxStore } from '../../persistence/postgres/postgres-inbox-store';
import { InMemoryInboxStore } from '../../testing/in-memory-inbox-store';
import { InboxService } from './inbox.service';
import { transportHeader } from './transport-message-id';
import { UndecryptedTransportMessageError } from './undecrypted-transport-message.error';

/** Transport contexts shaped as Nest's (duck-typed, as InboxService reads them). */
const contexts = (id: string, encrypted: boolean) => {
  const extra: Record<string, string> = encrypted ? { 'sage-encrypted': 'v1' } : {};
  const natsHeaders = new Map<string, string>([['Nats-Msg-Id', id], ...Object.entries(extra)]);
  return {
    kafka: {
      getMessage: () => ({
        headers: Object.fromEntries(
          Object.entries({ 'ce-id': id, ...extra }).map(([k, v]) => [k, Buffer.from(v)]),
        ),
      }),
    },
    rmq: { getMessage: () => ({ properties: { messageId: id, headers: { ...extra } } }) },
    nats: { getHeaders: () => ({ get: (name: string) => natsHeaders.get(name) ?? '' }) },
  };
};

const inboxOf = () => new InboxService(new InMemoryInboxStore() as unknown as PostgresInboxStore);

describe.each(['kafka', 'rmq', 'nats'] as const)(
  'InboxService.handle() from a Nest %s transport context',
  (transport) => {
    it('dead-letters a message marked sage-encrypted without running the handler (its @Payload() is still encrypted)', async () => {
      const inbox = inboxOf();
      const id = randomUUID();
      const handler = jest.fn(() => Promise.resolve());
      const result = await inbox.handle('mailer', contexts(id, true)[transport], handler, {
        message: { email: { 'sage:enc': 'v1' } },
      });
      const reason = new UndecryptedTransportMessageError('mailer', id).message;
      expect(result).toMatchObject({ outcome: 'dead-lettered', attempts: 1, error: reason });
      expect(handler).not.toHaveBeenCalled();
      const dead = await inbox.get({ consumer: 'mailer', messageId: id });
      expect(dead?.status).toBe('dead_letter');
      expect(dead?.lastError).toBe(reason);
      expect(dead?.message).toEqual({ email: { 'sage:enc': 'v1' } });
    });

    it('handles a message in clear as before', async () => {
      const inbox = inboxOf();
      const id = randomUUID();
      const result = await inbox.handle('mailer', contexts(id, false)[transport], () =>
        Promise.resolve('done'),
      );
      expect(result).toMatchObject({ outcome: 'processed', value: 'done' });
    });
  },
);

it('UndecryptedTransportMessageError names the way out and no payload', () => {
  const error = new UndecryptedTransportMessageError('mailer', 'm-1');
  expect(error.code).toBe('MESSAGE_NOT_DECRYPTED');
  expect(error.message).toMatch(/SageBrokerTransport given `protector: app.get\(DATA_PROTECTOR\)`/);
  expect(error.message).toMatch(/"m-1".*"mailer"/);
});

describe('transportHeader', () => {
  it('reads a header from Kafka, RabbitMQ and NATS contexts, nothing from other sources', () => {
    for (const ctx of Object.values(contexts('m-1', true)))
      expect(transportHeader(ctx, 'sage-encrypted')).toBe('v1');
    for (const ctx of Object.values(contexts('m-1', false)))
      expect(transportHeader(ctx, 'sage-encrypted')).toBeUndefined();
    expect(transportHeader('m-1', 'sage-encrypted')).toBeUndefined();
    expect(
      transportHeader({ id: 'm-1', headers: { 'sage-encrypted': 'v1' } }, 'sage-encrypted'),
    ).toBeUndefined();
    expect(transportHeader({ getMessage: () => null }, 'sage-encrypted')).toBeUndefined();
  });
});
