import { InMemoryOutboxStore } from '../testing/in-memory-outbox-store';
import { OutboxRelay } from '../core/outbox/outbox-relay';
import type { Broker } from '../core/ports/broker';
import { KafkaBroker } from './kafka/kafka-broker';
import { InMemoryBroker } from './memory/in-memory-broker';
import { NatsJetStreamBroker } from './nats/nats-broker';
import { RabbitMqBroker } from './rabbitmq/rabbitmq-broker';

/**
 * Every adapter states how long one publish may wait for the broker (Broker.publishTimeoutMs),
 * so a relay can refuse a claim lease that a publish outlasts (core/outbox/relay-lease.ts).
 * Nothing here connects: Kafka and NATS connect on first use; RabbitMQ's connection attempt to a
 * closed port is stopped by close().
 */
describe('Broker.publishTimeoutMs, per adapter', () => {
  const brokers: Broker[] = [];
  afterEach(async () => {
    await Promise.all(brokers.splice(0).map((b) => b.close()));
  });
  const keep = <B extends Broker>(b: B): B => {
    brokers.push(b);
    return b;
  };

  it.each([
    ['kafka (requestTimeoutMs)', () => new KafkaBroker({ brokers: ['127.0.0.1:1'] }), 30_000],
    [
      'kafka, set',
      () => new KafkaBroker({ brokers: ['127.0.0.1:1'], requestTimeoutMs: 4_000 }),
      4_000,
    ],
    ['nats', () => new NatsJetStreamBroker({ servers: 'nats://127.0.0.1:1' }), 5_000],
    [
      'nats, set',
      () => new NatsJetStreamBroker({ servers: 'nats://127.0.0.1:1', publishTimeoutMs: 700 }),
      700,
    ],
    ['rabbitmq', () => new RabbitMqBroker({ url: 'amqp://127.0.0.1:1' }), 10_000],
    [
      'rabbitmq, set',
      () => new RabbitMqBroker({ url: 'amqp://127.0.0.1:1', publishTimeoutMs: 2_500 }),
      2_500,
    ],
    ['memory (latencyMs)', () => new InMemoryBroker({ latencyMs: 40 }), 40],
    ['memory, no latency', () => new InMemoryBroker(), undefined],
  ])('%s: %s', (_name, build, expected) => {
    expect(keep(build()).publishTimeoutMs).toBe(expected);
  });

  it("a relay on Kafka's defaults gets a longer lease by default, and refuses a 30 s one", () => {
    const store = new InMemoryOutboxStore();
    const kafka = keep(new KafkaBroker({ brokers: ['127.0.0.1:1'] }));
    expect(() => new OutboxRelay({ store, broker: kafka })).not.toThrow();
    expect(() => new OutboxRelay({ store, broker: kafka, leaseMs: 30_000 })).toThrow(
      /outbox\.relay\.leaseMs.*must be at least 45000 ms.*Broker "kafka"/s,
    );
    const rabbit = keep(new RabbitMqBroker({ url: 'amqp://127.0.0.1:1' }));
    expect(() => new OutboxRelay({ store, broker: rabbit, leaseMs: 10_000 })).toThrow(
      /must be at least 15000 ms/,
    );
  });
});
