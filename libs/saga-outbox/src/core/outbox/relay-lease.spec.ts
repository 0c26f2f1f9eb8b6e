import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { InMemoryOutboxStore } from '../../testing/in-memory-outbox-store';
import { InvalidOptionsError } from '../errors';
import type { Broker } from '../ports/broker';
import { OutboxRelay } from './outbox-relay';
import { relayLeaseMs, type RelayLeaseInputs } from './relay-lease';

/** A broker that only states its publish timeout (relayLeaseMs reads nothing else). */
const broker = (publishTimeoutMs?: number): Broker =>
  ({ name: 'slowmq', publishTimeoutMs }) as unknown as Broker;

const relayDefaults = { batchSize: 500, publishBatchSize: 100, maxInFlight: 8 };
const lease = (o: Partial<RelayLeaseInputs> & { broker: Broker }): number =>
  relayLeaseMs({ leaseMs: undefined, ...relayDefaults, ...o });

function leaseError(o: Partial<RelayLeaseInputs> & { broker: Broker }): InvalidOptionsError {
  try {
    lease(o);
  } catch (error) {
    if (error instanceof InvalidOptionsError) return error;
    throw error;
  }
  throw new Error(`relayLeaseMs accepted ${JSON.stringify({ ...o, broker: o.broker.name })}`);
}

describe('relayLeaseMs: the claim lease must outlast a claim at the broker', () => {
  it('leaves the lease alone when the broker states no publish timeout', () => {
    expect(lease({ broker: broker() })).toBe(30_000);
    expect(lease({ broker: broker(), leaseMs: 5 })).toBe(5);
    expect(lease({ broker: broker(Number.NaN), leaseMs: 5 })).toBe(5);
  });

  it('defaults to 30 s, or 1.5 × the broker time of a claim when that is longer', () => {
    expect(lease({ broker: broker(10_000) })).toBe(30_000); // RabbitMQ's default
    expect(lease({ broker: broker(5_000) })).toBe(30_000); // NATS's default
    expect(lease({ broker: broker(30_000) })).toBe(45_000); // Kafka's default request timeout
  });

  it('accepts a lease of at least 1.5 × the broker time, and rejects a shorter one naming the option, the numbers and the fix', () => {
    expect(lease({ broker: broker(10_000), leaseMs: 15_000 })).toBe(15_000);
    const error = leaseError({ broker: broker(10_000), leaseMs: 14_999 });
    expect(error.option).toBe('outbox.relay.leaseMs');
    expect(error.message).toContain('must be at least 15000 ms');
    expect(error.message).toContain('got 14999');
    expect(error.message).toContain(
      'Broker "slowmq" may take up to its publishTimeoutMs of 10000 ms',
    );
    expect(error.message).toContain('raise leaseMs to 15000 or more');
    expect(error.message).toContain("lower the broker's publishTimeoutMs");
  });

  it('rejects a lease equal to the publish timeout: it cannot work', () => {
    expect(leaseError({ broker: broker(30_000), leaseMs: 30_000 }).message).toContain(
      'must be at least 45000 ms',
    );
  });

  it('counts rounds of publish calls: a claim bigger than maxInFlight calls waits several timeouts', () => {
    // 2000 / 100 = 20 calls, 8 at a time: 3 rounds of up to 10 s each.
    const big = { broker: broker(10_000), batchSize: 2000 };
    expect(lease(big)).toBe(45_000);
    const error = leaseError({ ...big, leaseMs: 30_000 });
    expect(error.message).toContain(
      'a claim of batchSize 2000 is 20 calls of publishBatchSize 100, maxInFlight 8 at a time, so 3 rounds of calls: up to 30000 ms',
    );
    expect(lease({ ...big, maxInFlight: 20, leaseMs: 15_000 })).toBe(15_000);
  });

  it('is checked when a relay is built: it fails at startup, before anything is claimed', () => {
    const store = new InMemoryOutboxStore();
    const slow = new InMemoryBroker({ latencyMs: 2_000 });
    expect(slow.publishTimeoutMs).toBe(2_000);
    expect(() => new OutboxRelay({ store, broker: slow, leaseMs: 2_500 })).toThrow(
      expect.objectContaining({ option: 'outbox.relay.leaseMs' }) as Error,
    );
    expect(() => new OutboxRelay({ store, broker: slow, leaseMs: 3_000 })).not.toThrow();
    expect(() => new OutboxRelay({ store, broker: slow })).not.toThrow();
    expect(new InMemoryBroker().publishTimeoutMs).toBeUndefined();
  });
});
