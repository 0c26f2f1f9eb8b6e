import { InvalidOptionsError } from '../errors';
import { InMemoryInboxStore } from '../../testing/in-memory-inbox-store';
import type { InMemoryTx } from '../../testing/in-memory-saga-store';
import { InboxHandlerFailedError, InboxMessageIdMissingError } from './inbox-errors';
import type { InboxEvent } from './inbox-events';
import {
  DEFAULT_INBOX_MAX_ATTEMPTS,
  InboxProcessor,
  type InboxHandler,
  type InboxProcessorOptions,
} from './inbox-processor';

// ------------------------------------------------------------------------------------ helpers

interface Deferred<T = void> {
  promise: Promise<T>;
  resolve: (value: T) => void;
}
function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((res) => (resolve = res));
  return { promise, resolve };
}

/** A processor on an in-memory store; `effects` holds what handlers committed. */
function setup(options: Partial<InboxProcessorOptions<InMemoryTx>> = {}) {
  const store = new InMemoryInboxStore();
  const processor = new InboxProcessor<InMemoryTx>({ store, ...options });
  const events: InboxEvent[] = [];
  processor.onEvent((e) => events.push(e));
  const effects: string[] = [];
  /** A handler committing one effect named after the message, optionally failing or pausing first. */
  const effect =
    (name: string, before?: () => Promise<void> | void): InboxHandler<InMemoryTx, string> =>
    async ({ tx }) => {
      tx.onCommit(() => effects.push(name));
      await before?.();
      return name;
    };
  return { store, processor, events, effects, effect };
}

const delivery = (messageId: string, consumer = 'payments.on-order-placed') => ({
  consumer,
  messageId,
  message: { type: 'order.placed', payload: { orderId: messageId } },
});

const boom = (text = 'boom'): (() => never) => {
  return () => {
    throw new Error(text);
  };
};

// -------------------------------------------------------------------------------------- tests

describe('InboxProcessor', () => {
  it('runs the handler once per (consumer, message): a redelivery is skipped, counted and acknowledged', async () => {
    const { processor, store, effects, effect, events } = setup();
    await expect(processor.process(delivery('m1'), effect('e1'))).resolves.toEqual({
      outcome: 'processed',
      attempt: 1,
      value: 'e1',
    });
    const handler = jest.fn(effect('e1-again'));
    await expect(processor.process(delivery('m1'), handler)).resolves.toEqual({
      outcome: 'duplicate',
    });
    expect(handler).not.toHaveBeenCalled();
    expect(effects).toEqual(['e1']);
    expect(processor.stats).toEqual({ processed: 1, duplicates: 1, failed: 0, deadLettered: 0 });
    expect(events.map((e) => e.type)).toEqual(['inbox.processed', 'inbox.duplicate']);
    await expect(
      store.get({ consumer: 'payments.on-order-placed', messageId: 'm1' }),
    ).resolves.toMatchObject({ status: 'processed', attempts: 1, lastError: null, message: null });
  });

  it('keeps consumers independent: each consumer handles the same message once', async () => {
    const { processor, effects, effect } = setup();
    await processor.process(delivery('m1', 'billing'), effect('billing'));
    await processor.process(delivery('m1', 'shipping'), effect('shipping'));
    await processor.process(delivery('m1', 'billing'), effect('billing-again'));
    expect(effects).toEqual(['billing', 'shipping']);
  });

  it('passes the transaction, the key and the attempt to the handler', async () => {
    const { processor } = setup();
    const seen = jest.fn(() => Promise.resolve());
    await processor.process(delivery('m1'), seen);
    expect(seen).toHaveBeenCalledWith({
      tx: expect.any(Object),
      consumer: 'payments.on-order-placed',
      messageId: 'm1',
      attempt: 1,
    });
  });

  it('serialises racing deliveries of one message: the second waits for the first to commit, then is a duplicate', async () => {
    const { processor, effects, effect } = setup();
    const gate = deferred();
    const firstRunning = deferred();
    const first = processor.process(
      delivery('m1'),
      effect('first', async () => {
        firstRunning.resolve();
        await gate.promise;
      }),
    );
    await firstRunning.promise;
    const secondHandler = jest.fn(effect('second'));
    let secondSettled = false;
    const second = processor.process(delivery('m1'), secondHandler).finally(() => {
      secondSettled = true;
    });
    // The second is blocked on the first's uncommitted inbox row.
    await new Promise((resolve) => setImmediate(resolve));
    expect(secondSettled).toBe(false);
    gate.resolve();
    await expect(first).resolves.toMatchObject({ outcome: 'processed' });
    await expect(second).resolves.toEqual({ outcome: 'duplicate' });
    expect(secondHandler).not.toHaveBeenCalled();
    expect(effects).toEqual(['first']);
  });

  it('when the first of two racing deliveries fails, the second runs the handler: still one effect', async () => {
    const { processor, effects, effect } = setup();
    const gate = deferred();
    const firstRunning = deferred();
    const first = processor.process(
      delivery('m1'),
      effect('first', async () => {
        firstRunning.resolve();
        await gate.promise;
        throw new Error('first attempt fails');
      }),
    );
    await firstRunning.promise;
    const second = processor.process(delivery('m1'), effect('second'));
    gate.resolve();
    await expect(first).rejects.toBeInstanceOf(InboxHandlerFailedError);
    await expect(second).resolves.toMatchObject({ outcome: 'processed' });
    expect(effects).toEqual(['second']);
  });

  it('20 deliveries of one message racing: exactly one effect, 19 duplicates', async () => {
    const { processor, effects, effect } = setup();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        processor.process(
          delivery('m1'),
          effect(`d${i}`, () => new Promise((r) => setTimeout(r, 1))),
        ),
      ),
    );
    expect(effects).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'processed')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'duplicate')).toHaveLength(19);
  });

  it('a handler error rolls back (no effect, no inbox row), counts the attempt and asks for redelivery; the retry succeeds once', async () => {
    const { processor, store, effects, effect, events } = setup();
    const key = { consumer: 'payments.on-order-placed', messageId: 'm1' };
    const error = await processor
      .process(delivery('m1'), effect('doomed', boom('card service down')))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InboxHandlerFailedError);
    expect(error).toMatchObject({
      code: 'INBOX_HANDLER_FAILED',
      consumer: key.consumer,
      messageId: 'm1',
      attempts: 1,
      maxAttempts: DEFAULT_INBOX_MAX_ATTEMPTS,
    });
    expect((error as Error).message).toContain('card service down');
    expect((error as Error).message).toContain('attempt 1 of 5');
    expect((error as Error).cause).toEqual(new Error('card service down'));
    expect(effects).toEqual([]);
    await expect(store.get(key)).resolves.toBeUndefined();
    await expect(store.getFailure(key)).resolves.toMatchObject({
      attempts: 1,
      lastError: 'card service down',
    });

    const attempts: number[] = [];
    await expect(
      processor.process(delivery('m1'), async (ctx) => {
        attempts.push(ctx.attempt);
        return effect('charged')(ctx);
      }),
    ).resolves.toEqual({ outcome: 'processed', attempt: 2, value: 'charged' });
    expect(attempts).toEqual([2]);
    expect(effects).toEqual(['charged']);
    await expect(store.get(key)).resolves.toMatchObject({ status: 'processed', attempts: 2 });
    await expect(store.getFailure(key)).resolves.toBeUndefined();
    expect(processor.stats).toEqual({ processed: 1, duplicates: 0, failed: 1, deadLettered: 0 });
    expect(events.map((e) => e.type)).toEqual(['inbox.failed', 'inbox.processed']);
    expect(events[0]).toMatchObject({ attempts: 1, maxAttempts: 5, error: 'card service down' });
  });

  it('a commit failure after the handler ran counts as a failed attempt and applies nothing', async () => {
    const { processor, store, effects, effect } = setup();
    store.setFault((point) => (point === 'commit' ? new Error('could not serialize') : undefined));
    await expect(processor.process(delivery('m1'), effect('e'))).rejects.toMatchObject({
      attempts: 1,
    });
    expect(effects).toEqual([]);
    store.setFault(undefined);
    await expect(processor.process(delivery('m1'), effect('e'))).resolves.toMatchObject({
      outcome: 'processed',
      attempt: 2,
    });
    expect(effects).toEqual(['e']);
  });

  it('poison: dead-lettered when the last allowed attempt fails, acknowledged, never handled again', async () => {
    const { processor, store, effects, effect, events } = setup({ maxAttempts: 3 });
    const key = { consumer: 'payments.on-order-placed', messageId: 'poison' };
    for (const attempt of [1, 2]) {
      await expect(
        processor.process(delivery('poison'), effect('x', boom(`bad payload ${attempt}`))),
      ).rejects.toMatchObject({ attempts: attempt, maxAttempts: 3 });
    }
    await expect(
      processor.process(delivery('poison'), effect('x', boom('bad payload 3'))),
    ).resolves.toEqual({ outcome: 'dead-lettered', attempts: 3, error: 'bad payload 3' });
    await expect(store.get(key)).resolves.toMatchObject({
      status: 'dead_letter',
      attempts: 3,
      lastError: 'bad payload 3',
      message: { type: 'order.placed', payload: { orderId: 'poison' } },
    });
    await expect(store.getFailure(key)).resolves.toBeUndefined();

    const later = jest.fn(effect('late'));
    await expect(processor.process(delivery('poison'), later)).resolves.toEqual({
      outcome: 'duplicate',
    });
    expect(later).not.toHaveBeenCalled();
    expect(effects).toEqual([]);
    expect(processor.stats).toEqual({ processed: 0, duplicates: 1, failed: 2, deadLettered: 1 });
    expect(events.map((e) => e.type)).toEqual([
      'inbox.failed',
      'inbox.failed',
      'inbox.dead-lettered',
      'inbox.duplicate',
    ]);

    // Other messages keep flowing.
    await expect(processor.process(delivery('fine'), effect('fine'))).resolves.toMatchObject({
      outcome: 'processed',
    });
    expect(effects).toEqual(['fine']);
    await expect(store.listDeadLetters({}, 10)).resolves.toMatchObject({
      entries: [{ messageId: 'poison' }],
      nextCursor: null,
    });
  });

  it('maxAttempts 1 dead-letters on the first failure; a per-call maxAttempts overrides the default', async () => {
    const { processor } = setup({ maxAttempts: 1 });
    await expect(processor.process(delivery('a'), boom())).resolves.toMatchObject({
      outcome: 'dead-lettered',
      attempts: 1,
    });
    await expect(processor.process(delivery('b'), boom(), { maxAttempts: 2 })).rejects.toThrow(
      InboxHandlerFailedError,
    );
    await expect(
      processor.process(delivery('b'), boom(), { maxAttempts: 2 }),
    ).resolves.toMatchObject({ outcome: 'dead-lettered', attempts: 2 });
  });

  it('when the failure cannot be recorded (database down) it still asks for redelivery, attempt uncounted', async () => {
    const { processor, store, events } = setup();
    store.setFault((point) =>
      point === 'recordFailure' ? new Error('connection lost') : undefined,
    );
    await expect(processor.process(delivery('m1'), boom('handler'))).rejects.toMatchObject({
      attempts: null,
      cause: new Error('handler'),
    });
    expect(events).toEqual([
      expect.objectContaining({ type: 'inbox.failed', attempts: null, error: 'handler' }),
    ]);
    expect(processor.stats.failed).toBe(1);
  });

  it('a failure recorded after another delivery handled the message is a duplicate, not a failure', async () => {
    const { processor, store, effects, effect } = setup();
    // Another delivery commits between this delivery's rollback and its failure record.
    const record = store.recordFailure.bind(store);
    jest.spyOn(store, 'recordFailure').mockImplementationOnce(async (failure) => {
      await processor.process(delivery('m1'), effect('other'));
      return record(failure);
    });
    await expect(processor.process(delivery('m1'), effect('mine', boom()))).resolves.toEqual({
      outcome: 'duplicate',
    });
    expect(effects).toEqual(['other']);
    await expect(
      store.getFailure({ consumer: 'payments.on-order-placed', messageId: 'm1' }),
    ).resolves.toBeUndefined();
  });

  it('rejects bad input before anything is written', async () => {
    const { processor, store } = setup();
    const handler = jest.fn(() => Promise.resolve());
    for (const messageId of ['', '   ', 'a\u0000b', 'x'.repeat(513)]) {
      await expect(processor.process({ consumer: 'c', messageId }, handler)).rejects.toThrow(
        InboxMessageIdMissingError,
      );
    }
    await expect(
      processor.process({ consumer: 'c', messageId: undefined as unknown as string }, handler),
    ).rejects.toThrow(InboxMessageIdMissingError);
    await expect(processor.process({ consumer: '', messageId: 'm' }, handler)).rejects.toThrow(
      InvalidOptionsError,
    );
    await expect(
      processor.process({ consumer: 'c', messageId: 'm' }, handler, { maxAttempts: 0 }),
    ).rejects.toThrow(InvalidOptionsError);
    expect(handler).not.toHaveBeenCalled();
    expect(store.all()).toEqual([]);
    expect(() => new InboxProcessor({ store, maxAttempts: 1.5 })).toThrow(InvalidOptionsError);
  });

  it('a throwing event listener does not disturb processing', async () => {
    const { processor, effects, effect } = setup();
    processor.onEvent(() => {
      throw new Error('listener bug');
    });
    await expect(processor.process(delivery('m1'), effect('e'))).resolves.toMatchObject({
      outcome: 'processed',
    });
    expect(effects).toEqual(['e']);
  });

  it('keeps NUL out of the stored error and cuts long errors', async () => {
    const { processor, store } = setup();
    await processor.process(delivery('m1'), boom(`a\u0000b${'x'.repeat(5000)}`)).catch(() => {});
    const failure = await store.getFailure({
      consumer: 'payments.on-order-placed',
      messageId: 'm1',
    });
    expect(failure?.lastError.startsWith('a\\0b')).toBe(true);
    expect(failure?.lastError).toHaveLength(2000);
  });
});
