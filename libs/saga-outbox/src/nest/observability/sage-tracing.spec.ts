import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import type { BrokerMessage } from '../../core/ports/broker';
import { tracedBroker } from './sage-tracing';

// No OpenTelemetry SDK is registered in this file: the API is a no-op.
describe('tracedBroker without an SDK', () => {
  const message = (headers: Record<string, string>): BrokerMessage => ({
    id: `m-${Object.keys(headers).length}`,
    destination: 'orders',
    key: 'k',
    type: 'order.placed',
    payload: null,
    headers,
    time: new Date(),
  });

  it('publishes the batch as it is: a stored traceparent passes on unchanged, none is invented', async () => {
    const inner = new InMemoryBroker();
    const publish = jest.spyOn(inner, 'publish');
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const batch = [message({ traceparent }), message({})];
    await expect(tracedBroker(inner).publish(batch)).resolves.toEqual([
      { id: 'm-1', ok: true },
      { id: 'm-0', ok: true },
    ]);
    expect(publish.mock.calls[0]![0]).toBe(batch);
    expect(inner.published.map((m) => m.headers)).toEqual([{ traceparent }, {}]);
  });

  it("passes the broker's publishTimeoutMs through (the relay checks its lease against it)", () => {
    expect(tracedBroker(new InMemoryBroker({ latencyMs: 1500 })).publishTimeoutMs).toBe(1500);
    expect(tracedBroker(new InMemoryBroker()).publishTimeoutMs).toBeUndefined();
  });
});
