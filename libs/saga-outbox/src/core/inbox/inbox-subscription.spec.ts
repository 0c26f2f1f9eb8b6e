import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { waitUntil } from '../../testing/async';
import { InMemoryInboxStore } from '../../testing/in-memory-inbox-store';
import type { InMemoryTx } from '../../testing/in-memory-saga-store';
import type { Broker, BrokerMessage, Subscription } from '../ports/broker';
import type { SageLogger } from '../ports/logger';
import type { SageTracer } from '../ports/tracer';
import { NO_TRACING } from '../ports/tracer';
import { DeliveryDeferredError } from '../errors';
import { InboxHandlerFailedError } from './inbox-errors';
import { InboxProcessor } from './inbox-processor';
import { deliverThroughInbox, InboxSubscriptions, type InboxEndpoint } from './inbox-subscription';

let seq = 0;
function message(overrides: Partial<BrokerMessage> = {}): BrokerMessage {
  seq++;
  return {
    id: `m-${seq}`,
    destination: 'orders',
    key: 'order-1',
    type: 'order.placed',
    payload: { n: seq },
    headers: { 'ce-id': `m-${seq}` },
    time: new Date('2026-01-02T03:04:05.000Z'),
    ...overrides,
  };
}

function recordingLogger(): SageLogger & { errors: Record<string, unknown>[] } {
  const errors: Record<string, unknown>[] = [];
  return {
    errors,
    debug: () => undefined,
    info: () => undefined,
    warn: () => undefined,
    error: (msg, fields) => errors.push({ msg, ...fields }),
  };
}

function setup(endpoint: Partial<InboxEndpoint<InMemoryTx, unknown>> = {}) {
  const store = new InMemoryInboxStore();
  const inbox = new InboxProcessor<InMemoryTx>({ store, maxAttempts: 3 });
  const broker = new InMemoryBroker({ maxDeliveries: 10 });
  const logger = recordingLogger();
  const effects: string[] = [];
  const committed: unknown[] = [];
  const ep: InboxEndpoint<InMemoryTx, unknown> = {
    destination: 'orders',
    consumer: 'billing',
    handle: (m, { tx, attempt }) => {
      tx.onCommit(() => effects.push(m.id));
      return Promise.resolve({ id: m.id, attempt });
    },
    committed: (value) => committed.push(value),
    deliveryError: { message: 'order could not be taken', event: 'billing.delivery_error' },
    ...endpoint,
  };
  const subscriptions = new InboxSubscriptions<InMemoryTx>({ inbox, logger });
  return { store, inbox, broker, logger, effects, committed, endpoint: ep, subscriptions };
}

describe('InboxSubscriptions', () => {
  it('handles each message once per consumer in the inbox transaction, then reports the commit', async () => {
    const { broker, store, effects, committed, endpoint, subscriptions, inbox } = setup();
    await subscriptions.subscribe(broker, [endpoint]);
    expect(subscriptions.size).toBe(1);
    const m = message();
    await broker.publish([m]);
    await broker.publish([m]); // redelivered by the broker: a duplicate for the inbox
    await waitUntil(() => inbox.stats.processed + inbox.stats.duplicates === 2, 'two deliveries');
    expect(effects).toEqual([m.id]);
    expect(committed).toEqual([{ id: m.id, attempt: 1 }]);
    expect(inbox.stats).toMatchObject({ processed: 1, duplicates: 1 });
    await expect(store.get({ consumer: 'billing', messageId: m.id })).resolves.toMatchObject({
      status: 'processed',
    });
  });

  it('subscribes with the consumer name as the broker group: two consumers each get the message', async () => {
    const a = setup();
    const b = { ...a.endpoint, consumer: 'shipping' };
    await a.subscriptions.subscribe(a.broker, [a.endpoint, b]);
    await a.broker.publish([message()]);
    await waitUntil(() => a.inbox.stats.processed === 2, 'both consumers');
    expect(a.subscriptions.size).toBe(2);
  });

  it('a failing handler is redelivered, then dead-lettered with the delivered message; nothing of it commits', async () => {
    const { broker, store, effects, committed, logger, subscriptions, endpoint } = setup({
      handle: (m, { tx }) => {
        tx.onCommit(() => effects.push(m.id));
        return Promise.reject(new Error('no stock'));
      },
    });
    await subscriptions.subscribe(broker, [endpoint]);
    const m = message();
    await broker.publish([m]);
    await waitUntil(
      async () =>
        (await store.get({ consumer: 'billing', messageId: m.id }))?.status === 'dead_letter',
      'the dead letter',
    );
    const dead = await store.get({ consumer: 'billing', messageId: m.id });
    expect(dead).toMatchObject({ attempts: 3, lastError: 'no stock' });
    expect(dead?.message).toMatchObject({
      id: m.id,
      destination: 'orders',
      key: 'order-1',
      type: 'order.placed',
      headers: m.headers,
      payload: m.payload,
    });
    expect(effects).toEqual([]);
    expect(committed).toEqual([]);
    // Handler failures are the inbox's to count and log, not delivery errors.
    expect(logger.errors).toEqual([]);
    // Acknowledged once dead-lettered: the broker stopped redelivering.
    expect(broker.deadLetters).toEqual([]);
  });

  it('keeps the delivered message with a dead letter, unless keepMessage is false', async () => {
    const { inbox, store } = setup();
    const endpoint = (consumer: string, keepMessage?: boolean): InboxEndpoint<InMemoryTx> => ({
      destination: 'orders',
      consumer,
      maxAttempts: 1,
      keepMessage,
      handle: () => Promise.reject(new Error('not handled')),
      deliveryError: { message: 'x', event: 'x' },
    });
    const m = { ...message(), deliveryAttempt: 1 };
    await deliverThroughInbox(endpoint('kept'), m, { inbox });
    await deliverThroughInbox(endpoint('not-kept', false), m, { inbox });
    await expect(store.get({ consumer: 'kept', messageId: m.id })).resolves.toMatchObject({
      status: 'dead_letter',
      message: {
        id: m.id,
        destination: 'orders',
        key: 'order-1',
        type: 'order.placed',
        headers: m.headers,
        payload: m.payload,
        time: '2026-01-02T03:04:05.000Z',
      },
    });
    await expect(store.get({ consumer: 'not-kept', messageId: m.id })).resolves.toMatchObject({
      status: 'dead_letter',
      message: null,
    });
  });

  it('committed runs only for a commit: not when the commit fails, not for a duplicate', async () => {
    const { inbox, store, committed, endpoint } = setup();
    const m = { ...message(), deliveryAttempt: 1 };
    let failCommit = true;
    store.setFault((point) => {
      if (point !== 'commit' || !failCommit) return undefined;
      failCommit = false;
      return new Error('connection lost at commit');
    });
    await expect(deliverThroughInbox(endpoint, m, { inbox })).rejects.toBeInstanceOf(
      InboxHandlerFailedError,
    );
    expect(committed).toEqual([]);
    await deliverThroughInbox(endpoint, { ...m, deliveryAttempt: 2 }, { inbox });
    await deliverThroughInbox(endpoint, { ...m, deliveryAttempt: 3 }, { inbox });
    expect(committed).toEqual([{ id: m.id, attempt: 2 }]);
  });

  it.each([
    ['blank', ''],
    ['containing NUL', 'a\u0000b'],
    ['over 512 characters', 'x'.repeat(600)],
  ])(
    'dead-letters a message whose id is %s under a derived id, without running the handler',
    async (_what, id) => {
      const { inbox, store, effects, endpoint } = setup();
      const bad = { ...message({ id }), deliveryAttempt: 1 };
      await deliverThroughInbox(endpoint, bad, { inbox }); // resolves: the broker acks it
      await deliverThroughInbox(endpoint, { ...bad, deliveryAttempt: 2 }, { inbox }); // redelivery
      expect(effects).toEqual([]);
      const page = await store.listDeadLetters({ consumer: 'billing' }, 10);
      expect(page.entries).toHaveLength(1);
      expect(page.entries[0]).toMatchObject({
        messageId: expect.stringMatching(/^sage-derived:[0-9a-f]{64}$/) as string,
        lastError: expect.stringContaining('recorded under a derived id') as string,
      });
      expect(inbox.stats).toMatchObject({ deadLettered: 1, duplicates: 1 });
    },
  );

  it('keeps a defensive snapshot: a bad time, deep payload and huge headers never break recording', async () => {
    const { inbox, store, endpoint } = setup({
      handle: () => Promise.reject(new Error('boom')),
      maxAttempts: 1,
    });
    let deep: unknown = 1;
    for (let i = 0; i < 5000; i++) deep = [deep];
    const bad = {
      ...message({ time: new Date('nope'), payload: deep as never }),
      headers: { big: 'h'.repeat(10_000) },
      deliveryAttempt: 1,
    };
    await deliverThroughInbox(endpoint, bad, { inbox });
    const page = await store.listDeadLetters({ consumer: 'billing' }, 10);
    expect(page.entries[0]?.message).toMatchObject({
      time: null,
      payload: { '@sage.truncated': true },
      headers: { big: expect.stringMatching(/^h{1024}…$/) as string },
    });
  });

  it('a delivery the inbox cannot record is logged as the endpoint says and deferred (not counted)', async () => {
    const { inbox, store, logger, endpoint } = setup();
    store.transaction = () => Promise.reject(new Error('database down'));
    store.recordFailure = () => Promise.reject(new Error('database down'));
    const m = { ...message(), deliveryAttempt: 1 };
    await expect(deliverThroughInbox(endpoint, m, { inbox, logger })).rejects.toBeInstanceOf(
      DeliveryDeferredError,
    );
    expect(logger.errors).toEqual([]); // the inbox logged the uncounted failure itself
    const odd = { ...message({ id: '' }), deliveryAttempt: 1 };
    await expect(deliverThroughInbox(endpoint, odd, { inbox, logger })).rejects.toBeInstanceOf(
      DeliveryDeferredError,
    );
    expect(logger.errors).toEqual([
      expect.objectContaining({
        msg: 'order could not be taken',
        event: 'billing.delivery_error',
        consumer: 'billing',
        messageId: expect.stringMatching(/^sage-derived:/) as string,
        error: 'database down',
      }),
    ]);
  });

  it('runs each delivery inside the tracer’s inboxHandling, with the delivered message as its source', async () => {
    const { inbox, endpoint, effects } = setup();
    const seen: unknown[][] = [];
    const tracer: SageTracer = {
      ...NO_TRACING,
      inboxHandling: async (consumer, messageId, source, handle) => {
        seen.push([consumer, messageId, source, effects.length]);
        const result = await handle();
        seen.push(['after', effects.length]);
        return result;
      },
    };
    const m = { ...message(), deliveryAttempt: 1 };
    await deliverThroughInbox(endpoint, m, { inbox, tracer });
    expect(seen).toEqual([
      ['billing', m.id, m, 0],
      ['after', 1],
    ]);
  });

  it('subscribing is all or none: a failing subscription undoes those made before it', async () => {
    const { inbox, endpoint } = setup();
    const unsubscribed: string[] = [];
    const calls: [string, string | undefined][] = [];
    const broker: Broker = {
      name: 'flaky',
      publish: () => Promise.resolve([]),
      health: () => Promise.resolve({ up: true }),
      close: () => Promise.resolve(),
      subscribe: (destination, _handler, options): Promise<Subscription> => {
        calls.push([destination, options?.group]);
        if (destination === 'broken') return Promise.reject(new Error('no such queue'));
        return Promise.resolve({
          unsubscribe: () => {
            unsubscribed.push(destination);
            return Promise.resolve();
          },
        });
      },
    };
    const subscriptions = new InboxSubscriptions<InMemoryTx>({ inbox });
    const subscribed: string[] = [];
    await expect(
      subscriptions.subscribe(
        broker,
        [endpoint, { ...endpoint, destination: 'broken', consumer: 'b' }],
        (e) => subscribed.push(e.destination),
      ),
    ).rejects.toThrow('no such queue');
    expect(calls).toEqual([
      ['orders', 'billing'],
      ['broken', 'b'],
    ]);
    expect(subscribed).toEqual(['orders']);
    expect(unsubscribed).toEqual(['orders']);
    expect(subscriptions.size).toBe(0);
  });

  it('unsubscribeAll stops delivery and waits for the running handler', async () => {
    let release!: () => void;
    let entered!: () => void;
    const running = new Promise<void>((resolve) => (entered = resolve));
    const finished: string[] = [];
    const { broker, subscriptions, endpoint, inbox } = setup({
      handle: async (m) => {
        entered();
        await new Promise<void>((resolve) => (release = resolve));
        finished.push(m.id);
      },
    });
    await subscriptions.subscribe(broker, [endpoint]);
    const m = message();
    await broker.publish([m]);
    await running;
    const stopping = subscriptions.unsubscribeAll();
    let stopped = false;
    void stopping.then(() => (stopped = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(finished).toEqual([m.id]);
    expect(subscriptions.size).toBe(0);
    await broker.publish([message()]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(inbox.stats.processed).toBe(1);
  });
});
