import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { waitUntil } from '../../testing/async';
import { InMemoryOutboxStore } from '../../testing/in-memory-outbox-store';
import { InvalidOptionsError } from '../errors';
import type { Broker, BrokerMessage, PublishResult } from '../ports/broker';
import {
  OptimisticSender,
  resolveOptimisticSettings,
  withOptimisticSend,
  type OptimisticSenderOptions,
} from './optimistic-sender';
import type { OutboxEvent } from './outbox-events';
import type { OutboxMessageInput } from './outbox-message';
import { OutboxPublisher } from './outbox-publisher';
import { OutboxRelay } from './outbox-relay';

/** A broker whose publishes never settle (and ignore the abort signal) until released. */
function hangingBroker(inner: InMemoryBroker): Broker & { calls: number; resume(): void } {
  let resume: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (resume = resolve));
  const broker = {
    name: 'hanging',
    calls: 0,
    resume: () => resume(),
    publish: async (batch: readonly BrokerMessage[]): Promise<PublishResult[]> => {
      broker.calls++;
      await gate;
      return inner.publish(batch);
    },
    subscribe: inner.subscribe.bind(inner),
    health: inner.health.bind(inner),
    close: inner.close.bind(inner),
  };
  return broker;
}

describe('OptimisticSender', () => {
  let store: InMemoryOutboxStore;
  let broker: InMemoryBroker;
  let optimistic: OptimisticSender;
  let outbox: OutboxPublisher<Parameters<InMemoryOutboxStore['insert']>[0]>;
  let events: OutboxEvent[];

  /**
   * `claimAtWrite: false` hands withOptimisticSend a writer without insertClaimed, so every row
   * goes through the claim after the commit (claimByIds), as with a store that cannot claim at write.
   */
  const setup = (
    options: Partial<OptimisticSenderOptions> = {},
    b: Broker = broker,
    { claimAtWrite = true } = {},
  ): void => {
    optimistic = new OptimisticSender({ store, broker: b, enabled: true, ...options });
    events = [];
    optimistic.onEvent((e) => events.push(e));
    const writer = claimAtWrite
      ? store
      : { isTransaction: store.isTransaction.bind(store), insert: store.insert.bind(store) };
    outbox = new OutboxPublisher({ writer: withOptimisticSend(writer, store, optimistic) });
  };
  const commit = (messages: OutboxMessageInput[]): Promise<string[]> =>
    store.transaction((tx) => outbox.publish(messages, { manager: tx }));
  const msg = (n: number, key: string | null = `k${n}`, type = 'order.placed') => ({
    destination: 'orders',
    type,
    key,
    payload: { n },
  });

  beforeEach(() => {
    store = new InMemoryOutboxStore();
    broker = new InMemoryBroker();
  });
  afterEach(async () => {
    await optimistic?.stop();
  });

  it('publishes exactly the committed rows right after commit, fenced like the relay; nothing left for the relay', async () => {
    setup();
    const relay = new OutboxRelay({ store, broker });
    const ids = await commit([msg(1), msg(2), msg(3)]);
    await optimistic.idle();

    expect(broker.published.map((m) => m.id)).toEqual(ids);
    expect(store.all().map((m) => m.status)).toEqual(['sent', 'sent', 'sent']);
    expect((await relay.runOnce()).claimed).toBe(0);
    expect(events.map((e) => e.type)).toEqual([
      'outbox.claimed',
      'outbox.published',
      'outbox.published',
      'outbox.published',
      'outbox.batch',
    ]);
    expect(events.every((e) => !('path' in e) || e.path === 'optimistic')).toBe(true);
    expect(optimistic.stats).toMatchObject({ attempts: 1, claimed: 3, sent: 3, released: 0 });
  });

  it('a rolled-back transaction publishes nothing', async () => {
    setup();
    await expect(
      store.transaction(async (tx) => {
        await outbox.publish([msg(1)], { manager: tx });
        throw new Error('business rule failed');
      }),
    ).rejects.toThrow('business rule failed');
    await optimistic.idle();
    expect(broker.published).toEqual([]);
    expect(store.all()).toEqual([]);
    expect(optimistic.stats.attempts).toBe(0);
  });

  it('all messages of one transaction (several publish calls) go in one attempt, per-key order kept', async () => {
    setup();
    const ids = await store.transaction(async (tx) => [
      ...(await outbox.publish([msg(1, 'same'), msg(2, 'same')], { manager: tx })),
      ...(await outbox.publish([msg(3, 'same')], { manager: tx })),
    ]);
    await optimistic.idle();
    // Head-of-key claims: one message of the key per round, in order.
    expect(broker.published.map((m) => m.id)).toEqual(ids);
    expect(optimistic.stats).toMatchObject({ attempts: 1, sent: 3 });
    expect(events.filter((e) => e.type === 'outbox.claimed').length).toBe(3);
  });

  it('a broker error hands the rows back to the relay at once: pending, due now, attempts unchanged', async () => {
    setup();
    broker.setAvailable(false);
    const [id] = await commit([msg(1)]);
    await optimistic.idle();

    const row = await store.get(id!);
    expect(row).toMatchObject({ status: 'pending', attempts: 0 });
    expect(row!.nextAttemptAt.getTime()).toBeLessThanOrEqual(Date.now());
    expect(events.filter((e) => e.type === 'outbox.failed')).toEqual([
      expect.objectContaining({ messageId: id, reason: 'broker_error', path: 'optimistic' }),
    ]);
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'outbox.released', path: 'optimistic', count: 1 }),
    );

    broker.setAvailable(true);
    const relay = new OutboxRelay({ store, broker });
    expect((await relay.runOnce()).sent).toBe(1);
    expect(broker.published.map((m) => m.id)).toEqual([id]);
  });

  it('a hanging broker: the caller is not blocked; after timeoutMs the rows go back to the relay', async () => {
    const hanging = hangingBroker(broker);
    setup({ timeoutMs: 50 }, hanging);
    const [id] = await commit([msg(1)]); // resolves although the publish hangs
    await waitUntil(() => hanging.calls === 1, 'the optimistic publish to start');
    expect((await store.get(id!))?.status).toBe('claimed');

    await optimistic.idle(); // the attempt gives up at its deadline
    expect((await store.get(id!))?.status).toBe('pending');
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'outbox.failed', reason: 'timeout', messageId: id }),
    );
    const relay = new OutboxRelay({ store, broker });
    expect((await relay.runOnce()).sent).toBe(1);
    hanging.resume(); // the abandoned call acks late: a duplicate, which the timeout event counted
    await broker.waitFor((p) => p.length === 2);
    expect((await store.get(id!))?.status).toBe('sent');
  });

  it('a failed publish whose claim was lost meanwhile (lease expired, reaped) is a stale_claim, not a broker_error', async () => {
    let now = Date.now();
    const clock = { now: () => now, sleep: () => Promise.resolve() };
    store = new InMemoryOutboxStore(clock);
    const reaper = new OutboxRelay({ store, broker, clock });
    const failing: Broker = {
      name: 'slow-then-failing',
      publish: async (batch) => {
        now += 60_000; // past the optimistic lease...
        await reaper.reap(); // ...and a relay's reaper freed the rows
        return batch.map((m) => ({
          id: m.id,
          ok: false,
          error: 'connection lost before the confirm',
          retryable: true,
        }));
      },
      subscribe: (d, h, o) => broker.subscribe(d, h, o),
      health: () => broker.health(),
      close: () => broker.close(),
    };
    setup({ timeoutMs: 5_000 }, failing);
    const [id] = await commit([msg(1)]);
    await optimistic.idle();

    expect(events.filter((e) => e.type === 'outbox.failed')).toEqual([
      expect.objectContaining({ messageId: id, reason: 'stale_claim', path: 'optimistic' }),
    ]);
    expect(events.some((e) => e.type === 'outbox.released')).toBe(false);
    expect(optimistic.stats).toMatchObject({ released: 0, staleMarks: 1 });
    expect((await store.get(id!))?.status).toBe('pending'); // the reaper's: the relay sends it
  });

  it('commits landing together share one attempt (one claim, one publish round)', async () => {
    setup();
    const ids = (await Promise.all([commit([msg(1)]), commit([msg(2)]), commit([msg(3)])])).flat();
    await optimistic.idle();
    expect(broker.published.map((m) => m.id).sort()).toEqual([...ids].sort());
    expect(optimistic.stats).toMatchObject({ attempts: 1, sent: 3 });
  });

  it('saturated (maxConcurrent in flight and the queue full): later commits are skipped and counted; their rows stay for the relay', async () => {
    const hanging = hangingBroker(broker);
    // One attempt at a time, 4 ids per attempt, so at most 4 ids may wait for it.
    setup({ maxConcurrent: 1, timeoutMs: 5_000, publishBatchSize: 1 }, hanging, {
      claimAtWrite: false,
    });
    const [first] = await commit([msg(1)]);
    await waitUntil(() => hanging.calls === 1, 'the first attempt to hang');
    const queued = await commit([msg(2), msg(3), msg(4), msg(5)]);
    const [sixth, seventh] = await commit([msg(6), msg(7)]);
    expect(optimistic.stats).toMatchObject({ inFlight: 1, queued: 4, skippedSaturated: 2 });
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'outbox.skipped', reason: 'saturated', count: 2 }),
    );
    expect((await store.get(sixth!))?.status).toBe('pending');
    expect((await store.get(seventh!))?.status).toBe('pending');
    hanging.resume();
    await optimistic.idle();
    expect((await store.get(first!))?.status).toBe('sent');
    for (const id of queued) expect((await store.get(id))?.status).toBe('sent');
    expect((await store.get(sixth!))?.status).toBe('pending');
  });

  it('rows not claimable yet are retried within the deadline, then left to the relay', async () => {
    setup({ timeoutMs: 200 }, broker, { claimAtWrite: false });
    let claimable = false;
    store.setClaimable(() => claimable);
    const [id] = await commit([msg(1)]);
    setTimeout(() => (claimable = true), 20);
    await optimistic.idle();
    expect((await store.get(id!))?.status).toBe('sent');

    claimable = false;
    const [late] = await commit([msg(2)]);
    await optimistic.idle();
    expect((await store.get(late!))?.status).toBe('pending');
    expect(optimistic.stats.leftToRelay).toBe(1);
  });

  it('a row a relay claimed first is not waited for (the attempt ends at once, not at its deadline)', async () => {
    setup({ timeoutMs: 60_000 }, broker, { claimAtWrite: false });
    const relay = new OutboxRelay({ store, broker });
    let relayRound: Promise<unknown> = Promise.resolve();
    const ids = await store.transaction(async (tx) => {
      // Registered before the write, so the relay claims right after commit, before the hook.
      tx.onCommit(() => {
        relayRound = relay.runOnce();
      });
      return outbox.publish([msg(1)], { manager: tx });
    });
    await relayRound;
    await optimistic.idle(); // would hang until the 60 s deadline if the attempt waited
    expect(broker.published.map((m) => m.id)).toEqual(ids);
    expect(optimistic.stats).toMatchObject({ attempts: 1, claimed: 0, sent: 0 });
    expect(relay.stats.sent).toBe(1);
  });

  it('rollout: percent and per-type overrides decide per message', async () => {
    let draw = 0;
    setup({
      percent: 50,
      types: { 'audit.logged': 0, 'payment.captured': 100 },
      random: () => draw,
    });
    draw = 0.6; // ≥ 50 %: not selected for the default percentage
    const [a, b, c] = await commit([
      msg(1, 'a', 'order.placed'),
      msg(2, 'b', 'audit.logged'),
      msg(3, 'c', 'payment.captured'),
    ]);
    await optimistic.idle();
    expect(broker.published.map((m) => m.id)).toEqual([c]);
    draw = 0.2; // < 50 %: selected
    const [d] = await commit([msg(4, 'd', 'order.placed')]);
    await optimistic.idle();
    expect(broker.published.map((m) => m.id)).toEqual([c, d]);
    expect((await store.get(a!))?.status).toBe('pending');
    expect((await store.get(b!))?.status).toBe('pending');

    optimistic.setRollout({ percent: 0, types: {} });
    await commit([msg(5)]);
    await optimistic.idle();
    expect(broker.published).toHaveLength(2);
    expect(optimistic.stats.attempts).toBe(2);
  });

  it('disabled: nothing is sent optimistically', async () => {
    setup({ enabled: false });
    await commit([msg(1)]);
    await optimistic.idle();
    expect(broker.published).toEqual([]);
    expect(optimistic.stats.selected).toBe(0);
  });

  it('stop(): in-flight attempts give up and hand their rows back', async () => {
    const hanging = hangingBroker(broker);
    setup({ timeoutMs: 60_000 }, hanging);
    const [id] = await commit([msg(1)]);
    await waitUntil(() => hanging.calls === 1, 'the optimistic publish to start');
    expect((await store.get(id!))?.status).toBe('claimed');
    await optimistic.stop();
    expect((await store.get(id!))?.status).toBe('pending');
    expect(optimistic.enabled).toBe(false);
    await commit([msg(2)]);
    expect(optimistic.stats.attempts).toBe(1);
    hanging.resume();
  });

  it('a database error on claim leaves the rows to the relay and never reaches the caller', async () => {
    setup({}, broker, { claimAtWrite: false });
    store.setFault((op) => (op === 'claimByIds' ? new Error('connection reset') : undefined));
    const [id] = await commit([msg(1)]);
    await optimistic.idle();
    expect((await store.get(id!))?.status).toBe('pending');
    expect(optimistic.stats.errors).toBe(1);
  });

  it('claimed at write: the heads of their keys are published with no claim after the commit; the rest of a key follows', async () => {
    setup();
    store.setFault((op) => (op === 'claimByIds' ? new Error('no claim expected') : undefined));
    const ids = await commit([msg(1, 'a'), msg(2, 'b'), msg(3, null)]);
    await optimistic.idle();
    expect(broker.published.map((m) => m.id)).toEqual(ids);
    expect(store.all().map((m) => m.status)).toEqual(['sent', 'sent', 'sent']);
    expect(optimistic.stats).toMatchObject({ attempts: 1, claimed: 3, sent: 3, errors: 0 });

    // A second message of a key is written pending behind the first: claimed once that is sent.
    store.setFault(undefined);
    const [a1, a2] = await commit([msg(4, 'k'), msg(5, 'k')]);
    await optimistic.idle();
    expect(broker.published.map((m) => m.id).slice(-2)).toEqual([a1, a2]);
    expect((await store.get(a2!))?.status).toBe('sent');
  });

  it('claimed at write but rolled back: nothing is published', async () => {
    setup();
    const failure = new Error('business rule failed');
    await expect(
      store.transaction(async (tx) => {
        await outbox.publish([msg(1)], { manager: tx });
        throw failure;
      }),
    ).rejects.toBe(failure);
    await optimistic.idle();
    expect(broker.published).toEqual([]);
    expect(store.all()).toEqual([]);
  });

  it('claimed at write but saturated or stopped: the rows are handed back to the relay at once, not left to their lease', async () => {
    const hanging = hangingBroker(broker);
    setup({ maxConcurrent: 1, timeoutMs: 5_000, publishBatchSize: 1 }, hanging);
    const handedBack: number[] = [];
    const [first] = await commit([msg(1)]);
    await waitUntil(() => hanging.calls === 1, 'the first attempt to hang');
    await commit([msg(2), msg(3), msg(4), msg(5)]); // fills the queue
    const skipped = await commit([msg(6), msg(7)]);
    expect(optimistic.stats).toMatchObject({ inFlight: 1, queued: 4, skippedSaturated: 2 });
    await waitUntil(
      async () =>
        (await Promise.all(skipped.map((id) => store.get(id)))).every(
          (m) => m?.status === 'pending',
        ),
      'the skipped rows to be released',
    );
    handedBack.push(optimistic.stats.released);
    await optimistic.stop();
    hanging.resume();
    expect(handedBack[0]).toBe(2);
    // stop(): the queued rows claimed at write go back too; the hanging one is released by its attempt.
    for (const m of store.all()) expect(m.status === 'pending' || m.id === first).toBe(true);
    expect(store.all().filter((m) => m.status === 'claimed')).toEqual([]);
  });

  it('a throwing event listener breaks nothing', async () => {
    setup();
    optimistic.onEvent(() => {
      throw new Error('listener bug');
    });
    const [id] = await commit([msg(1)]);
    await optimistic.idle();
    expect((await store.get(id!))?.status).toBe('sent');
  });

  it.each([
    [{ percent: 101 }, 'outbox.optimistic.percent'],
    [{ percent: -1 }, 'outbox.optimistic.percent'],
    [{ types: { x: 200 } }, 'outbox.optimistic.types.x'],
    [{ timeoutMs: 0 }, 'outbox.optimistic.timeoutMs'],
    [{ maxConcurrent: 1.5 }, 'outbox.optimistic.maxConcurrent'],
    [{ timeoutMs: 1000, leaseMs: 1000 }, 'outbox.optimistic.leaseMs'],
    [{ enabled: 'yes' }, 'outbox.optimistic.enabled'],
  ])('rejects invalid settings %j', (settings, option) => {
    expect(() => resolveOptimisticSettings(settings as never)).toThrow(InvalidOptionsError);
    expect(() => resolveOptimisticSettings(settings as never)).toThrow(option);
  });
});
