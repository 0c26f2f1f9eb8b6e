import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { InMemoryOutboxStore } from '../../testing/in-memory-outbox-store';
import { deferred, waitUntil } from '../../testing/async';
import type { Broker, BrokerMessage, PublishResult } from '../ports/broker';
import type { OutboxEvent } from './outbox-events';
import { OutboxPublisher } from './outbox-publisher';
import { OutboxRelay } from './outbox-relay';

/** The relay's outbox events (path 'relay'), emitted around one claim-publish-mark round. */
describe('OutboxRelay events', () => {
  let store: InMemoryOutboxStore;
  let broker: InMemoryBroker;
  let events: OutboxEvent[];
  let relay: OutboxRelay;

  const write = (n: number, type = 'order.placed'): Promise<string[]> => {
    const publisher = new OutboxPublisher({ writer: store });
    return store.transaction((tx) =>
      publisher.publish(
        Array.from({ length: n }, (_, i) => ({
          destination: 'orders',
          type,
          key: `k${i}`,
          payload: { i },
        })),
        { manager: tx },
      ),
    );
  };

  beforeEach(() => {
    store = new InMemoryOutboxStore();
    broker = new InMemoryBroker();
    relay = new OutboxRelay({ store, broker, retry: { maxAttempts: 3, jitter: 0 } });
    events = [];
    relay.onEvent((e) => events.push(e));
  });

  it('a successful round: claimed, one published per message, then batch', async () => {
    const ids = await write(3);
    await relay.runOnce();

    expect(events.map((e) => e.type)).toEqual([
      'outbox.claimed',
      'outbox.published',
      'outbox.published',
      'outbox.published',
      'outbox.batch',
    ]);
    expect(events[0]).toMatchObject({ type: 'outbox.claimed', path: 'relay', count: 3 });
    const published = events.filter((e) => e.type === 'outbox.published');
    expect(published.map((e) => e.messageId).sort()).toEqual([...ids].sort());
    for (const e of published) {
      expect(e).toMatchObject({
        path: 'relay',
        destination: 'orders',
        messageType: 'order.placed',
      });
      expect(e.publishMs).toBeGreaterThanOrEqual(0);
      expect(e.commitToPublishMs).toBeGreaterThanOrEqual(0);
    }
    expect(events[4]).toMatchObject({
      type: 'outbox.batch',
      path: 'relay',
      claimed: 3,
      sent: 3,
      failed: 0,
    });
  });

  it('failures: retryable → failed (not dead-lettered); non-retryable → failed, dead-lettered', async () => {
    const [retryable, fatal] = await write(2);
    broker.setFault((m) =>
      m.id === retryable
        ? { error: 'nack', retryable: true }
        : { error: 'too large', retryable: false },
    );
    await relay.runOnce();

    const failed = events.filter((e) => e.type === 'outbox.failed');
    expect(failed).toHaveLength(2);
    expect(failed.find((e) => e.messageId === retryable)).toMatchObject({
      path: 'relay',
      reason: 'broker_error',
      deadLettered: false,
      messageType: 'order.placed',
    });
    expect(failed.find((e) => e.messageId === fatal)).toMatchObject({
      reason: 'broker_error',
      deadLettered: true,
    });
    expect(events.at(-1)).toMatchObject({ type: 'outbox.batch', sent: 0, failed: 2 });
    expect((await store.get(fatal!))?.status).toBe('dead_letter');
  });

  it('an ack whose claim was lost meanwhile (lease expired, reaped) is a stale_claim failure; reaping is an event', async () => {
    let now = 1_000_000;
    const clock = { now: () => now, sleep: () => Promise.resolve() };
    store = new InMemoryOutboxStore(clock);
    const slowBroker = new InMemoryBroker();
    const reaper = new OutboxRelay({ store, broker: slowBroker, clock });
    relay = new OutboxRelay({
      store,
      clock,
      leaseMs: 10,
      broker: {
        name: 'stalling',
        publish: async (batch: readonly BrokerMessage[]): Promise<PublishResult[]> => {
          now += 100; // the publish outlived the lease...
          await reaper.reap(); // ...and another relay's reaper freed the rows
          return slowBroker.publish(batch);
        },
        subscribe: (d, h, o) => slowBroker.subscribe(d, h, o),
        health: () => slowBroker.health(),
        close: () => slowBroker.close(),
      },
    });
    relay.onEvent((e) => events.push(e));
    const reaperEvents: OutboxEvent[] = [];
    reaper.onEvent((e) => reaperEvents.push(e));
    const [id] = await write(1);

    await relay.runOnce();

    expect(events.filter((e) => e.type === 'outbox.failed')).toEqual([
      expect.objectContaining({ messageId: id, reason: 'stale_claim', deadLettered: false }),
    ]);
    expect(events.filter((e) => e.type === 'outbox.published')).toEqual([]);
    expect(events.at(-1)).toMatchObject({ type: 'outbox.batch', sent: 0, failed: 1 });
    expect(reaperEvents).toEqual([expect.objectContaining({ type: 'outbox.reaped', count: 1 })]);
    expect((await store.get(id!))?.status).toBe('pending');
  });

  it('a publish that failed after its claim was lost is a stale_claim too (whoever holds the message now publishes it), not a broker_error', async () => {
    let now = 1_000_000;
    const clock = { now: () => now, sleep: () => Promise.resolve() };
    store = new InMemoryOutboxStore(clock);
    const reaper = new OutboxRelay({ store, broker: new InMemoryBroker(), clock });
    relay = new OutboxRelay({
      store,
      clock,
      leaseMs: 10,
      retry: { maxAttempts: 1 }, // the failure would dead-letter the message, had the claim held
      broker: {
        name: 'stalling',
        publish: async (batch: readonly BrokerMessage[]): Promise<PublishResult[]> => {
          now += 100; // the publish outlived the lease...
          await reaper.reap(); // ...another relay's reaper freed the rows...
          // ...and the broker's answer is a timeout: the message may well have gone out.
          return batch.map((m) => ({
            id: m.id,
            ok: false,
            error: 'confirm timed out after 90 ms',
            retryable: true,
          }));
        },
        subscribe: (d, h, o) => broker.subscribe(d, h, o),
        health: () => broker.health(),
        close: () => broker.close(),
      },
    });
    relay.onEvent((e) => events.push(e));
    const [id] = await write(1);

    const report = await relay.runOnce();

    expect(report).toMatchObject({ claimed: 1, staleMarks: 1, retried: 0, deadLettered: 0 });
    expect(events.filter((e) => e.type === 'outbox.failed')).toEqual([
      expect.objectContaining({
        messageId: id,
        reason: 'stale_claim',
        deadLettered: false,
        error: expect.stringMatching(
          /^confirm timed out after 90 ms; and the claim was lost/,
        ) as unknown,
      }),
    ]);
    expect(events.at(-1)).toMatchObject({ type: 'outbox.batch', sent: 0, failed: 1 });
    expect((await store.get(id!))?.status).toBe('pending'); // the reaper's, not dead-lettered
  });

  describe('publishes abandoned at the shutdown bound', () => {
    /** A broker whose publishes wait until aborted, then report failure (fate unknown). */
    const untilAborted = (started: () => void): Broker => ({
      name: 'stuck',
      publish: (batch, signal) =>
        new Promise((resolve) => {
          started();
          signal?.addEventListener(
            'abort',
            () =>
              resolve(
                batch.map((m) => ({
                  id: m.id,
                  ok: false,
                  error: 'publish aborted before the broker confirmed it',
                  retryable: true,
                })),
              ),
            { once: true },
          );
        }),
      subscribe: (d, h, o) => broker.subscribe(d, h, o),
      health: () => broker.health(),
      close: () => broker.close(),
    });

    it('are handed back and counted as timeout', async () => {
      const started = deferred();
      relay = new OutboxRelay({
        store,
        broker: untilAborted(() => started.resolve()),
        shutdownTimeoutMs: 20,
        listen: false,
      });
      relay.onEvent((e) => events.push(e));
      const [id] = await write(1);
      relay.start();
      await started.promise;
      await relay.stop();

      expect(events.filter((e) => e.type === 'outbox.failed')).toEqual([
        expect.objectContaining({ messageId: id, reason: 'timeout', deadLettered: false }),
      ]);
      expect(events).toContainEqual(
        expect.objectContaining({ type: 'outbox.released', path: 'relay', count: 1 }),
      );
      expect(relay.stats).toMatchObject({ released: 1, staleMarks: 0 });
      expect((await store.get(id!))?.status).toBe('pending');
    });

    it('whose claim was lost meanwhile are stale_claim, and not handed back', async () => {
      const started = deferred();
      relay = new OutboxRelay({
        store,
        broker: untilAborted(() => started.resolve()),
        leaseMs: 1,
        shutdownTimeoutMs: 20,
        listen: false,
      });
      relay.onEvent((e) => events.push(e));
      const reaper = new OutboxRelay({ store, broker });
      const [id] = await write(1);
      relay.start();
      await started.promise;
      await waitUntil(async () => (await reaper.reap()) === 1, 'the lease to expire and be reaped');
      await relay.stop();

      expect(events.filter((e) => e.type === 'outbox.failed')).toEqual([
        expect.objectContaining({ messageId: id, reason: 'stale_claim', deadLettered: false }),
      ]);
      expect(events.some((e) => e.type === 'outbox.released')).toBe(false);
      expect(relay.stats).toMatchObject({ released: 0, staleMarks: 1 });
    });
  });

  it('a throwing listener never breaks the relay; unsubscribing stops delivery', async () => {
    const unsubscribe = relay.onEvent(() => {
      throw new Error('listener bug');
    });
    const [id] = await write(1);
    const report = await relay.runOnce();
    expect(report.sent).toBe(1);
    expect((await store.get(id!))?.status).toBe('sent');
    expect(events.some((e) => e.type === 'outbox.published')).toBe(true);

    unsubscribe();
    const seen: OutboxEvent[] = [];
    const off = relay.onEvent((e) => seen.push(e));
    off();
    await write(1);
    await relay.runOnce();
    expect(seen).toEqual([]);
  });
});
