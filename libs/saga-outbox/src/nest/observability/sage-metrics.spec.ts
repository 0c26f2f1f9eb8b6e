import { Registry } from 'prom-client';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { SageMetrics } from './sage-metrics';
import { ProbeTimeoutError, withTimeout } from './with-timeout';

async function series(registry: Registry, name: string) {
  return (await registry.getSingleMetric(name)!.get()).values;
}

describe('SageMetrics', () => {
  it('counts outbox failures by reason and nothing by id', async () => {
    const registry = new Registry();
    const metrics = new SageMetrics({ registry });
    for (const reason of ['broker_error', 'broker_error', 'timeout'] as const) {
      metrics.onOutboxEvent({
        type: 'outbox.failed',
        path: 'relay',
        messageId: `id-${Math.random()}`,
        destination: 'd',
        messageType: 't',
        reason,
        error: 'x',
        deadLettered: false,
        at: 0,
      });
    }
    expect(await series(registry, 'outbox_failed_total')).toEqual([
      { labels: { reason: 'broker_error' }, value: 2 },
      { labels: { reason: 'timeout' }, value: 1 },
    ]);
    metrics.dispose();
  });

  it("counts a broker's dead letters by broker, destination and reason, fed by Broker.onDeadLetter", async () => {
    const registry = new Registry();
    const metrics = new SageMetrics({ registry });
    const broker = new InMemoryBroker();
    const off = broker.onDeadLetter(metrics.onBrokerDeadLetter);
    await broker.subscribe('orders', () => Promise.resolve());
    broker.deliverWire({ destination: 'orders', headers: {}, body: Buffer.from('{}') });
    broker.deliverWire({
      destination: 'orders',
      headers: { 'ce-id': 'x' },
      body: Buffer.from('no'),
    });
    broker.deliverWire({
      destination: 'orders',
      headers: { 'ce-id': 'y' },
      body: Buffer.from('no'),
    });
    off();
    expect(await series(registry, 'broker_dead_lettered_total')).toEqual([
      { labels: { broker: 'memory', destination: 'orders', reason: 'missing-id' }, value: 1 },
      { labels: { broker: 'memory', destination: 'orders', reason: 'not-json' }, value: 2 },
    ]);
    metrics.dispose();
  });

  it('bounds the scrape-time query: on timeout the gauges keep their value and the error is counted', async () => {
    const registry = new Registry();
    const metrics = new SageMetrics({ registry, probeTimeoutMs: 20 });
    let hang = false;
    metrics.setSources({
      backlog: () =>
        hang
          ? new Promise(() => undefined)
          : Promise.resolve({ pending: 7, oldestPendingAgeSeconds: 3, deadLetters: 1 }),
    });
    await registry.metrics();
    expect((await series(registry, 'outbox_pending_messages'))[0]?.value).toBe(7);
    hang = true;
    const started = Date.now();
    const text = await registry.metrics();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(text).toMatch(/^outbox_pending_messages 7$/m);
    // One query shared by the three outbox gauges of the scrape, so one error.
    expect(await series(registry, 'sage_metrics_probe_errors_total')).toEqual([
      { labels: { probe: 'outbox_backlog' }, value: 1 },
    ]);
    metrics.dispose();
    expect(registry.getMetricsAsArray()).toHaveLength(0);
  });

  it('ignores events after dispose instead of throwing into the engine', () => {
    const metrics = new SageMetrics({ registry: new Registry() });
    metrics.dispose();
    expect(() =>
      metrics.onSagaEvent({ type: 'saga.started', sagaId: 's', saga: 'x', at: 0 }),
    ).not.toThrow();
  });
});

describe('withTimeout', () => {
  it('rejects with ProbeTimeoutError after the bound and clears its timer when work settles', async () => {
    await expect(withTimeout('slow', 10, () => new Promise(() => undefined))).rejects.toThrow(
      ProbeTimeoutError,
    );
    const spy = jest.spyOn(global, 'clearTimeout');
    await expect(withTimeout('fast', 10_000, () => Promise.resolve(42))).resolves.toBe(42);
    expect(spy).toHaveBeenCalled();
    spy.mockRestore();
  });
});
