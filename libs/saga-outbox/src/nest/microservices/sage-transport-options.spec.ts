import {
  Transport,
  type ConsumerDeserializer,
  type MicroserviceOptions,
} from '@nestjs/microservices';
import { InvalidOptionsError } from '../../core/errors';
import { SageKafkaDeserializer } from './sage-kafka.deserializer';
import { SageNatsDeserializer } from './sage-nats.deserializer';
import { SageRmqDeserializer } from './sage-rmq.deserializer';
import { sageKafkaOptions, sageNatsOptions, sageRmqOptions } from './sage-transport-options';

describe('sageRmqOptions', () => {
  it('is complete Transport.RMQ options: every option passed through, SageRmqDeserializer set', () => {
    const options: MicroserviceOptions = sageRmqOptions({
      urls: ['amqp://sage:sage@127.0.0.1:5672'],
      queue: 'payments.orders',
      noAssert: true,
      noAck: false,
      prefetchCount: 8,
      queueOptions: { durable: true },
    });
    expect(options).toEqual({
      transport: Transport.RMQ,
      options: {
        urls: ['amqp://sage:sage@127.0.0.1:5672'],
        queue: 'payments.orders',
        noAssert: true,
        noAck: false,
        prefetchCount: 8,
        queueOptions: { durable: true },
        deserializer: expect.any(SageRmqDeserializer) as unknown,
      },
    });
    // Nest's own keys only: `pattern` went to the deserializer, not to ServerRMQ.
    expect(Object.keys(options.options ?? {})).not.toContain('pattern');
  });

  it('dispatches a Sage message by its type, or by `pattern` when given', () => {
    const sage = { type: 'order.placed', headers: { 'ce-specversion': '1.0' } };
    const byType = sageRmqOptions().options.deserializer as ConsumerDeserializer;
    expect(byType.deserialize({ id: 1 }, sage)).toEqual({
      pattern: 'order.placed',
      data: { id: 1 },
    });
    const custom = sageRmqOptions({ pattern: ({ type }) => `sage.${type}` }).options
      .deserializer as ConsumerDeserializer;
    expect(custom.deserialize({ id: 1 }, sage)).toEqual({
      pattern: 'sage.order.placed',
      data: { id: 1 },
    });
  });

  it('refuses a deserializer of its own with a clear error (it would make Sage messages unroutable)', () => {
    const build = () =>
      sageRmqOptions({ queue: 'q', deserializer: new SageRmqDeserializer() } as never);
    expect(build).toThrow(InvalidOptionsError);
    expect(build).toThrow(
      'Invalid Sage option "sageRmqOptions({ deserializer })": Sage sets the deserializer (SageRmqDeserializer) so that its messages reach your @EventPattern handlers; remove it (pass `pattern` to choose what @EventPattern matches).',
    );
    // And at compile time:
    // @ts-expect-error deserializer is Sage's
    expect(() => sageRmqOptions({ deserializer: new SageRmqDeserializer() })).toThrow();
  });
});

describe('sageKafkaOptions', () => {
  it('is complete Transport.KAFKA options: client, consumer, run, parser passed through, SageKafkaDeserializer set', () => {
    const options: MicroserviceOptions = sageKafkaOptions({
      client: { clientId: 'payments', brokers: ['127.0.0.1:9092'] },
      consumer: { groupId: 'payments' },
      run: { autoCommit: true },
      subscribe: { fromBeginning: true },
      parser: { keepBinary: true },
    });
    expect(options).toEqual({
      transport: Transport.KAFKA,
      options: {
        client: { clientId: 'payments', brokers: ['127.0.0.1:9092'] },
        consumer: { groupId: 'payments' },
        run: { autoCommit: true },
        subscribe: { fromBeginning: true },
        parser: { keepBinary: true },
        deserializer: expect.any(SageKafkaDeserializer) as unknown,
      },
    });
  });

  it('refuses a deserializer of its own', () => {
    expect(() => sageKafkaOptions({ deserializer: new SageKafkaDeserializer() } as never)).toThrow(
      `Invalid Sage option "sageKafkaOptions({ deserializer })": Sage sets the deserializer (SageKafkaDeserializer) so that its messages reach your @EventPattern handlers; remove it (records from other producers are handled as Nest's default deserializer does).`,
    );
    // @ts-expect-error deserializer is Sage's
    expect(() => sageKafkaOptions({ deserializer: new SageKafkaDeserializer() })).toThrow();
  });
});

describe('sageNatsOptions', () => {
  it('is complete Transport.NATS options: servers, queue and the rest passed through, SageNatsDeserializer set', () => {
    const options: MicroserviceOptions = sageNatsOptions({
      servers: ['nats://127.0.0.1:4222'],
      queue: 'payments',
      name: 'payments-service',
      maxReconnectAttempts: -1,
    });
    expect(options).toEqual({
      transport: Transport.NATS,
      options: {
        servers: ['nats://127.0.0.1:4222'],
        queue: 'payments',
        name: 'payments-service',
        maxReconnectAttempts: -1,
        deserializer: expect.any(SageNatsDeserializer) as unknown,
      },
    });
  });

  it('keeps the named NATS options typed despite their index signature', () => {
    // @ts-expect-error `queue` is a string in Nest's NatsOptions
    const bad = sageNatsOptions({ queue: 42 });
    expect(bad.transport).toBe(Transport.NATS);
  });

  it('refuses a deserializer of its own', () => {
    expect(() => sageNatsOptions({ deserializer: new SageNatsDeserializer() } as never)).toThrow(
      'Invalid Sage option "sageNatsOptions({ deserializer })": Sage sets the deserializer (SageNatsDeserializer) so that its messages reach your @EventPattern handlers; remove it (subjects that carry Nest packets (ClientProxy.emit) need a transport of their own, `{ transport: Transport.NATS, options }`).',
    );
    // @ts-expect-error deserializer is Sage's
    expect(() => sageNatsOptions({ deserializer: new SageNatsDeserializer() })).toThrow();
  });
});
