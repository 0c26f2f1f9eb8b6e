import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { InMemoryOutboxStore } from '../../testing/in-memory-outbox-store';
import type { SageLogger } from '../ports/logger';
import { OutboxPublisher } from './outbox-publisher';
import { OutboxRelay } from './outbox-relay';

/**
 * A broker outage must never spend a message's attempts: however long the broker is down, the
 * messages wait in the outbox and are all delivered once it is back (the outbox's promise). A
 * failure of the message itself still counts and dead-letters after `maxAttempts`.
 */
describe('OutboxRelay during a broker outage', () => {
  let now = 1_000_000;
  const clock = { now: () => now, sleep: () => Promise.resolve() };
  let store: InMemoryOutboxStore;
  let broker: InMemoryBroker;
  let warnings: { message: string; fields?: Record<string, unknown> }[];
  let relay: OutboxRelay;

  const write = (n: number): Promise<string[]> =>
    store.transaction((tx) =>
      new OutboxPublisher({ writer: store }).publish(
        Array.from({ length: n }, (_, i) => ({
          destination: 'orders',
          type: 'order.placed',
          key: `k${i}`,
          payload: { i },
        })),
        { manager: tx },
      ),
    );

  /** One relay round after the longest outage backoff (10 s) has passed. */
  const round = async () => {
    now += 11_000;
    return relay.runOnce();
  };

  beforeEach(() => {
    now = 1_000_000;
    store = new InMemoryOutboxStore(clock);
    broker = new InMemoryBroker();
    warnings = [];
    const logger: SageLogger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (message, fields) => warnings.push({ message, fields }),
      error: (message, fields) => warnings.push({ message, fields }),
    };
    relay = new OutboxRelay({
      store,
      broker,
      clock,
      logger,
      retry: { maxAttempts: 2, initialDelayMs: 100, jitter: 0 },
    });
  });

  it('many more failed rounds than maxAttempts: nothing is dead-lettered, attempts stay 0, all delivered after', async () => {
    const ids = await write(6);
    broker.setAvailable(false);
    for (let i = 0; i < 8; i++) {
      const report = await round();
      expect(report).toMatchObject({ claimed: 6, sent: 0, deadLettered: 0, retried: 6 });
    }
    const rows = await Promise.all(ids.map((id) => store.get(id)));
    expect(rows.map((r) => [r?.status, r?.attempts])).toEqual(ids.map(() => ['pending', 0]));
    expect(rows[0]?.lastError).toContain('unavailable');

    // One WARN a minute for the outage (88 s here: two), not one line per message and round.
    const outage = warnings.filter((w) => w.fields?.event === 'outbox.broker.unreachable');
    expect(outage).toHaveLength(2);
    expect(outage[0]!.message).toContain('broker "memory" is unreachable');
    expect(warnings.filter((w) => w.fields?.event === 'outbox.message.retry')).toHaveLength(0);

    broker.setAvailable(true);
    expect(await round()).toMatchObject({ sent: 6, deadLettered: 0 });
    expect(broker.published.map((m) => m.id).sort()).toEqual([...ids].sort());
  });

  it('the backoff grows per round while the broker is down, capped at 10 s, and resets once it is back', async () => {
    const [id] = await write(1);
    broker.setAvailable(false);
    const delays: number[] = [];
    for (let i = 0; i < 10; i++) {
      await round();
      delays.push((await store.get(id!))!.nextAttemptAt.getTime() - now);
    }
    expect(delays.slice(0, 4)).toEqual([100, 200, 400, 800]);
    expect(Math.max(...delays)).toBe(10_000);
    broker.setAvailable(true);
    await round();
    const [next] = await write(1);
    broker.setFault(() => ({ error: 'nacked', retryable: true }));
    await round();
    // A failure of the message itself: counted, and backed off from the start of the policy.
    const row = await store.get(next!);
    expect(row?.attempts).toBe(1);
    expect(row!.nextAttemptAt.getTime() - now).toBe(100);
  });

  it('a failure of the message itself still counts and dead-letters after maxAttempts', async () => {
    const [id] = await write(1);
    broker.setFault(() => ({ error: 'nacked', retryable: true }));
    await round();
    expect((await store.get(id!))?.attempts).toBe(1);
    expect(await round()).toMatchObject({ deadLettered: 1 });
    expect((await store.get(id!))?.status).toBe('dead_letter');
  });
});
