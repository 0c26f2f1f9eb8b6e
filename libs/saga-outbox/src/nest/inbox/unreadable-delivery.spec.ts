import { randomUUID } from 'node:crypto';
import type { DeliveredMessage } from '../../core/ports/broker';
import { DataUnreadableError } from '../../core/protection/protection-errors';
import type { PostgresInboxStore } from '../../persistence/postgres/postgres-inbox-store';
import { InMemoryInboxStore } from '../../testing/in-memory-inbox-store';
import { SageBrokerContext } from '../microservices/sage-broker.transport';
import { InboxService } from './inbox.service';
import { unreadableDelivery } from './unreadable-delivery';

const CIPHERTEXT = { 'sage:enc': 'v1', key: 'master:k1', iv: 'x', data: 'y', tag: 'z' };

function delivered(): DeliveredMessage {
  return {
    id: randomUUID(),
    destination: 'customers',
    key: 'c-1',
    type: 'customer.registered',
    payload: { customerId: 'c-1', email: CIPHERTEXT },
    headers: { 'sage-encrypted': 'v1' },
    time: new Date(),
    deliveryAttempt: 1,
  };
}

const unreadable = (message: DeliveredMessage) =>
  new DataUnreadableError('no-keys', `message/${message.id}/${message.type}`, '');

describe('InboxService.handle() with a message SageBrokerTransport could not decrypt', () => {
  const inboxOf = () => {
    const store = new InMemoryInboxStore();
    return { store, inbox: new InboxService(store as unknown as PostgresInboxStore) };
  };

  it('dead-letters it at once with the reason, the message as received, without running the handler', async () => {
    const { inbox } = inboxOf();
    const message = delivered();
    const error = unreadable(message);
    const handler = jest.fn(() => Promise.resolve());
    const result = await inbox.handle('mailer', new SageBrokerContext([message], error), handler);
    expect(result).toMatchObject({ outcome: 'dead-lettered', attempts: 1, error: error.message });
    expect(handler).not.toHaveBeenCalled();
    const dead = await inbox.get({ consumer: 'mailer', messageId: message.id });
    expect(dead?.status).toBe('dead_letter');
    expect(dead?.lastError).toBe(error.message);
    expect(dead?.lastError).toMatch(/^no-keys: /);
    expect(dead?.message).toMatchObject({
      id: message.id,
      type: 'customer.registered',
      payload: { customerId: 'c-1', email: CIPHERTEXT },
    });
    // A redelivery is a duplicate: still never handled.
    await inbox.handle('mailer', new SageBrokerContext([message], error), handler);
    expect(handler).not.toHaveBeenCalled();
  });

  it('keeps the given `message` instead when there is one', async () => {
    const { inbox } = inboxOf();
    const message = delivered();
    await inbox.handle('mailer', new SageBrokerContext([message], unreadable(message)), jest.fn(), {
      message: { given: true },
    });
    expect((await inbox.get({ consumer: 'mailer', messageId: message.id }))?.message).toEqual({
      given: true,
    });
  });

  it('runs the handler of a readable message as before', async () => {
    const { inbox } = inboxOf();
    const message = delivered();
    const result = await inbox.handle('mailer', new SageBrokerContext([message]), () =>
      Promise.resolve('done'),
    );
    expect(result).toMatchObject({ outcome: 'processed', value: 'done' });
  });
});

describe('unreadableDelivery', () => {
  it('reads SageBrokerContext, and nothing from other sources', () => {
    const message = delivered();
    const error = unreadable(message);
    expect(unreadableDelivery(new SageBrokerContext([message], error))).toEqual({ error, message });
    expect(unreadableDelivery(new SageBrokerContext([message]))).toBeUndefined();
    expect(unreadableDelivery(message.id)).toBeUndefined();
    expect(unreadableDelivery({ getUnreadableError: () => new Error('not ours') })).toBeUndefined();
    expect(unreadableDelivery({ getMessage: () => ({ headers: {} }) })).toBeUndefined();
  });
});
