import { KafkaBroker } from '../../brokers/kafka/kafka-broker';
import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { NatsJetStreamBroker } from '../../brokers/nats/nats-broker';
import { InvalidOptionsError } from '../../core/errors';
import { brokerFromUrl } from './broker-url';
import { validateRelayModuleOptions } from './outbox-relay.options';

describe('brokerFromUrl', () => {
  it('builds the in-memory broker from memory://, with an optional latency', async () => {
    expect(brokerFromUrl('memory://')).toBeInstanceOf(InMemoryBroker);
    const slow = brokerFromUrl('memory://relay?latencyMs=30') as InMemoryBroker;
    expect(slow.name).toBe('relay');
    const began = Date.now();
    await slow.publish([
      { id: 'a', destination: 'd', type: 't', key: null, payload: 1, headers: {} } as never,
    ]);
    expect(Date.now() - began).toBeGreaterThanOrEqual(25);
  });

  it('builds the Kafka and NATS adapters lazily, without connecting', async () => {
    const kafka = brokerFromUrl('kafka://k1:9092,k2?clientId=orders');
    expect(kafka).toBeInstanceOf(KafkaBroker);
    const nats = brokerFromUrl('nats://n1:4222,n2?stream=ORDERS&prefix=orders.');
    expect(nats).toBeInstanceOf(NatsJetStreamBroker);
    await Promise.all([kafka.close(), nats.close()]);
  });

  it.each([
    ['kafka://broker:9092?acks=1', 'unknown parameter "acks" for kafka://'],
    ['amqp://user:secret@rabbit:5672?queueType=lazy', 'queueType must be quorum or classic'],
    ['nats://nats:4222?durable=x', 'unknown parameter "durable" for nats://'],
    ['redis://cache:6379', 'unsupported broker scheme "redis://"; supported: memory://'],
    ['memory://?latency=5', 'unknown parameter "latency"'],
    ['memory://?latencyMs=-1', 'latencyMs must be a number >= 0'],
    ['not a url', 'is not a valid URL'],
  ])('%s → InvalidOptionsError', (url, says) => {
    let error: unknown;
    try {
      brokerFromUrl(url);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as InvalidOptionsError).option).toBe('SAGE_BROKER_URL');
    expect((error as Error).message).toContain(says);
    // Credentials in a URL are never echoed.
    expect((error as Error).message).not.toContain('secret');
  });
});

describe('validateRelayModuleOptions', () => {
  const broker = new InMemoryBroker();
  it.each([
    [undefined, 'options'],
    [{ broker }, 'postgres'],
    [{ postgres: { url: 'postgres://h/db' } }, 'broker'],
    [{ postgres: { url: 'postgres://h/db' }, broker, sagas: [] }, 'sagas'],
    [
      { postgres: { url: 'postgres://h/db' }, broker, outbox: { relay: { enabled: false } } },
      'outbox.relay.enabled',
    ],
    [{ postgres: { url: 'mysql://h/db' }, broker }, 'postgres.url'],
    [{ postgres: { url: 'postgres://h/db' }, broker, schema: 'Bad-Schema' }, 'schema'],
  ])('rejects %j (option %s)', (options, option) => {
    expect(() => validateRelayModuleOptions(options as never)).toThrow(
      expect.objectContaining({ option }) as Error,
    );
  });

  it('accepts a database and a broker', () => {
    const options = { postgres: { url: 'postgres://h/db' }, broker, schema: 'sage' };
    expect(validateRelayModuleOptions(options)).toBe(options);
  });
});
