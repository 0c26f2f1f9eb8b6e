/**
 * outbox-commit-to-ack's 'direct' variant: messages go out alone while calls are free, coalesce
 * (at most batchSize per call) while every call is in flight, and each is acked once its call resolves.
 */
import type { BrokerMessage } from '@sage/saga-outbox';
import type { RawPublisher } from '../../benchmarks/harness/brokers';
import { DirectSender } from '../../benchmarks/harness/direct-sender';

function message(id: string): BrokerMessage {
  return { id, destination: 'd', key: null, type: 't', payload: {}, headers: {}, time: new Date() };
}

/** A publisher whose calls resolve (or fail) only when the test says so. */
function manualPublisher() {
  const calls: { ids: string[]; settle: (ok: boolean) => void }[] = [];
  const raw: RawPublisher = {
    publish: (batch) =>
      new Promise<void>((resolve, reject) =>
        calls.push({
          ids: batch.map((m) => m.id),
          settle: (ok) => (ok ? resolve() : reject(new Error('nack'))),
        }),
      ),
    close: () => Promise.resolve(),
  };
  return { raw, calls };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('DirectSender', () => {
  it('sends alone while calls are free, then coalesces what queued into calls of at most batchSize', async () => {
    const { raw, calls } = manualPublisher();
    const acked: string[] = [];
    const sender = new DirectSender(raw, (id) => acked.push(id), 2, 2);
    for (const id of ['a', 'b', 'c', 'd', 'e']) sender.send(message(id));
    expect(calls.map((c) => c.ids)).toEqual([['a'], ['b']]);

    calls[0]!.settle(true);
    await flush();
    expect(acked).toEqual(['a']);
    expect(calls.map((c) => c.ids)).toEqual([['a'], ['b'], ['c', 'd']]);

    calls[1]!.settle(false);
    calls[2]!.settle(true);
    await flush();
    expect(calls.map((c) => c.ids)).toEqual([['a'], ['b'], ['c', 'd'], ['e']]);
    calls[3]!.settle(true);
    await flush();
    expect(acked).toEqual(['a', 'c', 'd', 'e']);
    expect(sender.failedMessages).toBe(1);
    expect(sender.calls).toBe(4);
  });
});
