import { InvalidOptionsError } from '../errors';
import { InMemoryInboxStore } from '../../testing/in-memory-inbox-store';
import type { InMemoryTx } from '../../testing/in-memory-saga-store';
import type { DeliveredMessage } from '../ports/broker';
import { NO_TRACING, type SageTracer } from '../ports/tracer';
import { MessageRefusedError } from './message-refused';
import type { InboxEvent } from './inbox-events';
import { InboxProcessor, type InboxBatchDelivery } from './inbox-processor';
import {
  deliverBatchThroughInbox,
  InboxSubscriptions,
  type InboxEndpoint,
} from './inbox-subscription';
import type { Broker, SubscribeOptions } from '../ports/broker';

const CONSUMER = 'billing.on-order';

function setup(batchSize?: number) {
  const store = new InMemoryInboxStore();
  const processor = new InboxProcessor<InMemoryTx>({ store, batchSize, maxAttempts: 3 });
  const events: InboxEvent[] = [];
  processor.onEvent((e) => events.push(e));
  const effects: string[] = [];
  const ran: string[] = [];
  /** A delivery whose handler commits one effect named after its id (`fail`: throws instead). */
  const d = (messageId: string, fail = false): InboxBatchDelivery<InMemoryTx, string> => ({
    messageId,
    handle: ({ tx, attempt }) => {
      ran.push(messageId);
      if (fail) return Promise.reject(new Error(`poison ${messageId}`));
      tx.onCommit(() => effects.push(messageId));
      return Promise.resolve(`${messageId}@${attempt}`);
    },
  });
  return { store, processor, events, effects, ran, d };
}

function delivered(id: string, overrides: Partial<DeliveredMessage> = {}): DeliveredMessage {
  return {
    id,
    destination: 'orders',
    key: 'k',
    type: 'order.placed',
    payload: { id },
    headers: {},
    time: new Date('2026-01-02T03:04:05.000Z'),
    deliveryAttempt: 1,
    ...overrides,
  };
}

describe('InboxProcessor.processBatch', () => {
  it('runs each new delivery once, in order, in one transaction; repeats inside and across batches are duplicates', async () => {
    const { processor, store, events, effects, ran, d } = setup();
    await expect(
      processor.processBatch(CONSUMER, [d('a'), d('b'), d('a'), d('c')]),
    ).resolves.toEqual([
      { outcome: 'processed', attempt: 1, value: 'a@1' },
      { outcome: 'processed', attempt: 1, value: 'b@1' },
      { outcome: 'duplicate' },
      { outcome: 'processed', attempt: 1, value: 'c@1' },
    ]);
    await expect(processor.processBatch(CONSUMER, [d('c'), d('d')])).resolves.toEqual([
      { outcome: 'duplicate' },
      { outcome: 'processed', attempt: 1, value: 'd@1' },
    ]);
    expect(ran).toEqual(['a', 'b', 'c', 'd']);
    expect(effects).toEqual(['a', 'b', 'c', 'd']);
    expect(processor.stats).toMatchObject({ processed: 4, duplicates: 2, failed: 0 });
    expect(events.map((e) => `${e.type}:${e.messageId}`)).toEqual([
      'inbox.processed:a',
      'inbox.processed:b',
      'inbox.duplicate:a',
      'inbox.processed:c',
      'inbox.duplicate:c',
      'inbox.processed:d',
    ]);
    expect(store.all().map((e) => [e.messageId, e.status])).toEqual([
      ['a', 'processed'],
      ['b', 'processed'],
      ['c', 'processed'],
      ['d', 'processed'],
    ]);
  });

  it('a handler that throws rolls the whole batch back: undefined, nothing recorded, counted or announced', async () => {
    const { processor, store, events, effects, d } = setup();
    await expect(processor.processBatch(CONSUMER, [d('a'), d('b', true), d('c')])).resolves.toBe(
      undefined,
    );
    expect(effects).toEqual([]);
    expect(store.all()).toEqual([]);
    await expect(store.getFailure({ consumer: CONSUMER, messageId: 'b' })).resolves.toBe(undefined);
    expect(events).toEqual([]);
    expect(processor.stats).toEqual({ processed: 0, duplicates: 0, failed: 0, deadLettered: 0 });
    // One by one afterwards: the others take effect, the poison is counted.
    await processor.process({ consumer: CONSUMER, messageId: 'a' }, d('a').handle);
    await expect(
      processor.process({ consumer: CONSUMER, messageId: 'b' }, d('b', true).handle),
    ).rejects.toThrow('poison b');
    expect(effects).toEqual(['a']);
    await expect(store.getFailure({ consumer: CONSUMER, messageId: 'b' })).resolves.toMatchObject({
      attempts: 1,
    });
  });

  it('numbers each delivery by its own failures so far, and clears them with the commit', async () => {
    const { processor, store, d } = setup();
    await store.recordFailure({
      consumer: CONSUMER,
      messageId: 'b',
      error: 'once',
      maxAttempts: 3,
      message: null,
    });
    await expect(processor.processBatch(CONSUMER, [d('a'), d('b')])).resolves.toEqual([
      { outcome: 'processed', attempt: 1, value: 'a@1' },
      { outcome: 'processed', attempt: 2, value: 'b@2' },
    ]);
    await expect(store.getFailure({ consumer: CONSUMER, messageId: 'b' })).resolves.toBe(undefined);
  });

  it('a dead letter in the inbox is a duplicate for a batch: its handler never runs again', async () => {
    const { processor, ran, d } = setup();
    await processor.deadLetter({ consumer: CONSUMER, messageId: 'x' }, 'refused');
    await expect(processor.processBatch(CONSUMER, [d('x'), d('y')])).resolves.toEqual([
      { outcome: 'duplicate' },
      { outcome: 'processed', attempt: 1, value: 'y@1' },
    ]);
    expect(ran).toEqual(['y']);
  });

  it('rejects more deliveries than batchSize, and bad ids, before anything is written', async () => {
    const { processor, store, d } = setup(2);
    await expect(processor.processBatch(CONSUMER, [d('a'), d('b'), d('c')])).rejects.toThrow(
      /"batchSize": processBatch got 3 deliveries; at most batchSize \(2\)/,
    );
    await expect(processor.processBatch(CONSUMER, [d('a'), d('')])).rejects.toThrow(/message id/i);
    expect(store.all()).toEqual([]);
  });

  it.each([0, 1001, 1.5, Number.NaN])('batchSize %p is refused, naming the option', (size) => {
    expect(() => setup(size)).toThrow(InvalidOptionsError);
    expect(() => setup(size)).toThrow(/batchSize/);
  });

  it('without markProcessedBatch in the store: undefined, nothing run (the caller goes one by one)', async () => {
    const store = new InMemoryInboxStore();
    const processor = new InboxProcessor<InMemoryTx>({
      store: {
        transaction: (body) => store.transaction(body),
        markProcessed: (tx, key) => store.markProcessed(tx, key),
        recordFailure: (f) => store.recordFailure(f),
        get: (k) => store.get(k),
        getFailure: (k) => store.getFailure(k),
        listDeadLetters: (f, l, a) => store.listDeadLetters(f, l, a),
        deleteDeadLetters: (c, ids) => store.deleteDeadLetters(c, ids),
        deleteProcessedBatch: (o, l) => store.deleteProcessedBatch(o, l),
      },
    });
    const handle = jest.fn(() => Promise.resolve());
    await expect(processor.processBatch(CONSUMER, [{ messageId: 'a', handle }])).resolves.toBe(
      undefined,
    );
    expect(handle).not.toHaveBeenCalled();
  });
});

describe('deliverBatchThroughInbox', () => {
  function endpointSetup(endpoint: Partial<InboxEndpoint<InMemoryTx, unknown>> = {}) {
    const { store, processor } = setup();
    const effects: string[] = [];
    const committed: unknown[] = [];
    const spans: string[] = [];
    const tracer: SageTracer = {
      ...NO_TRACING,
      inboxHandling: (consumer, messageId, _message, fn) => {
        spans.push(`${consumer}/${messageId}`);
        return fn();
      },
    };
    const ep: InboxEndpoint<InMemoryTx, unknown> = {
      destination: 'orders',
      consumer: CONSUMER,
      handle: (m, { tx }) => {
        tx.onCommit(() => effects.push(m.id));
        return Promise.resolve(m.id);
      },
      committed: (value) => committed.push(value),
      deliveryError: { message: 'order could not be taken', event: 'billing.delivery_error' },
      ...endpoint,
    };
    return { store, processor, effects, committed, spans, tracer, endpoint: ep };
  }

  it('true once all took effect; `committed` for each new one, a span per handler', async () => {
    const { processor, effects, committed, spans, tracer, endpoint } = endpointSetup();
    const batch = [delivered('a'), delivered('b'), delivered('a')];
    await expect(
      deliverBatchThroughInbox(endpoint, batch, { inbox: processor, tracer }),
    ).resolves.toBe(true);
    expect(effects).toEqual(['a', 'b']);
    expect(committed).toEqual(['a', 'b']);
    expect(spans).toEqual([`${CONSUMER}/a`, `${CONSUMER}/b`]);
  });

  it('false, nothing recorded, when a handler throws or a message needs more than a plain handling', async () => {
    const failing = endpointSetup({
      handle: (m) => (m.id === 'b' ? Promise.reject(new Error('poison')) : Promise.resolve(m.id)),
    });
    await expect(
      deliverBatchThroughInbox(failing.endpoint, [delivered('a'), delivered('b')], {
        inbox: failing.processor,
      }),
    ).resolves.toBe(false);
    expect(failing.store.all()).toEqual([]);

    const refusing = endpointSetup({
      verify: (m) => {
        if (m.id === 'b') throw new MessageRefusedError('signature-missing', 'not signed');
      },
    });
    await expect(
      deliverBatchThroughInbox(refusing.endpoint, [delivered('a'), delivered('b')], {
        inbox: refusing.processor,
      }),
    ).resolves.toBe(false);
    const badId = endpointSetup();
    await expect(
      deliverBatchThroughInbox(badId.endpoint, [delivered('a'), delivered(' ')], {
        inbox: badId.processor,
      }),
    ).resolves.toBe(false);
    expect([...refusing.store.all(), ...badId.store.all()]).toEqual([]);
    expect([...refusing.effects, ...badId.effects]).toEqual([]);
  });

  it('InboxSubscriptions offers batches only with `batches` and a batchSize above 1', async () => {
    const seen: (SubscribeOptions | undefined)[] = [];
    const broker = {
      subscribe: (_d: string, _h: unknown, options?: SubscribeOptions) => {
        seen.push(options);
        return Promise.resolve({ unsubscribe: () => Promise.resolve() });
      },
    } as unknown as Broker;
    const { processor, endpoint } = endpointSetup();
    await new InboxSubscriptions({ inbox: processor, batches: true }).subscribe(broker, [endpoint]);
    await new InboxSubscriptions({ inbox: processor }).subscribe(broker, [endpoint]);
    const single = new InboxProcessor<InMemoryTx>({
      store: new InMemoryInboxStore(),
      batchSize: 1,
    });
    await new InboxSubscriptions({ inbox: single, batches: true }).subscribe(broker, [endpoint]);
    expect(seen.map((o) => o?.batch?.maxSize)).toEqual([64, undefined, undefined]);
  });
});
