import { randomUUID } from 'node:crypto';
import { describeBrokerConformance } from '../../testing/broker-conformance';
import { InMemoryBroker } from './in-memory-broker';

describeBrokerConformance('in-memory', () => {
  const broker = new InMemoryBroker({ maxMessageBytes: 256 * 1024 });
  return Promise.resolve({
    broker,
    destination: () => Promise.resolve(`dest-${randomUUID()}`),
    cleanup: () => Promise.resolve(),
    deliveryTimeoutMs: 2000,
    maxMessageBytes: 256 * 1024,
    sendRaw: (destination, messages) => {
      for (const m of messages)
        broker.deliverWire({
          destination,
          headers: { ...m.headers, 'ce-subject': m.key },
          body: m.body,
        });
      return Promise.resolve();
    },
  });
});

describe('InMemoryBroker fault injection', () => {
  const msg = (id: string = randomUUID()) => ({
    id,
    destination: 'd',
    key: 'k',
    type: 't',
    payload: 1,
    headers: {},
    time: new Date(),
  });

  it('rejects every publish while unavailable and accepts again after recovery', async () => {
    const broker = new InMemoryBroker();
    broker.setAvailable(false);
    await expect(broker.publish([msg()])).rejects.toThrow(/unavailable/);
    await expect(broker.health()).resolves.toMatchObject({ up: false });
    broker.setAvailable(true);
    await expect(broker.publish([msg()])).resolves.toMatchObject([{ ok: true }]);
    expect(broker.published).toHaveLength(1);
  });

  it('fails only the messages the fault selects', async () => {
    const broker = new InMemoryBroker();
    broker.setFault((m) => (m.id === 'bad' ? { error: 'poison', retryable: true } : undefined));
    const results = await broker.publish([msg('a'), msg('bad'), msg('c')]);
    expect(results).toEqual([
      { id: 'a', ok: true },
      { id: 'bad', ok: false, error: 'poison', retryable: true },
      { id: 'c', ok: true },
    ]);
    expect(broker.published.map((m) => m.id)).toEqual(['a', 'c']);
  });
});
