import { KafkaParser } from '@nestjs/microservices';
// Nest's default, for comparison (not re-exported from the package root).
import { KafkaRequestDeserializer } from '@nestjs/microservices/deserializers/kafka-request.deserializer';
import { transportMessageId } from '../inbox/transport-message-id';
import { ackRmqAfter } from './rmq-ack';
import { SageKafkaDeserializer } from './sage-kafka.deserializer';
import { SageNatsDeserializer } from './sage-nats.deserializer';
import { SageRmqDeserializer } from './sage-rmq.deserializer';

const ID = '01939a4e-0000-7000-8000-000000000001';
const PAYLOADS = [
  { orderId: 'o-1', data: { x: 1 }, pattern: 'p' },
  'plain',
  '{not json',
  42,
  true,
  null,
  [1, 'a'],
];

/** A kafkajs record as Sage's KafkaBroker writes it, after Nest's KafkaParser (as ServerKafka does). */
function kafkaRecord(payload: unknown, parser = new KafkaParser()) {
  return parser.parse({
    key: Buffer.from('order-1'),
    value: Buffer.from(JSON.stringify(payload)),
    headers: {
      'ce-specversion': Buffer.from('1.0'),
      'ce-id': Buffer.from(ID),
      'ce-type': Buffer.from('order.placed'),
    },
  } as never) as { headers: Record<string, unknown> };
}

describe('SageKafkaDeserializer', () => {
  it.each(PAYLOADS)('gives the handler the outbox payload exactly: %j', (payload) => {
    const record = kafkaRecord(payload);
    expect(new SageKafkaDeserializer().deserialize(record, { channel: 'orders' })).toEqual({
      pattern: 'orders',
      data: payload,
    });
    // The same with keepBinary (value and headers left as Buffers).
    const binary = kafkaRecord(payload, new KafkaParser({ keepBinary: true }));
    expect(new SageKafkaDeserializer().deserialize(binary, { channel: 'orders' })).toEqual({
      pattern: 'orders',
      data: payload,
    });
  });

  it("fixes what Nest's default gets wrong: scalar payloads arrive as their JSON text", () => {
    expect(
      new KafkaRequestDeserializer().deserialize(kafkaRecord('plain'), { channel: 'orders' }),
    ).toEqual({
      pattern: 'orders',
      data: '"plain"',
    });
    expect(
      new KafkaRequestDeserializer().deserialize(kafkaRecord(42), { channel: 'orders' }),
    ).toMatchObject({
      data: '42',
    });
  });

  it('leaves the message id in the record (KafkaContext) and passes non-Sage records as Nest does', () => {
    const record = kafkaRecord({ a: 1 });
    expect(transportMessageId({ getMessage: () => record })).toBe(ID);
    const foreign = new KafkaParser().parse({
      key: null,
      value: Buffer.from('"x"'),
      headers: {},
    } as never);
    expect(new SageKafkaDeserializer().deserialize(foreign, { channel: 't' })).toEqual({
      pattern: 't',
      data: '"x"',
    });
  });
});

describe('SageRmqDeserializer', () => {
  const properties = {
    messageId: ID,
    type: 'order.placed',
    headers: { 'ce-type': 'order.placed', 'ce-specversion': '1.0' },
  };

  it.each(PAYLOADS)(
    'pattern = message type, data = the payload Nest parsed from the body: %j',
    (payload) => {
      const parsed: unknown = JSON.parse(JSON.stringify(payload));
      expect(new SageRmqDeserializer().deserialize(parsed, properties)).toEqual({
        pattern: 'order.placed',
        data: payload,
      });
    },
  );

  it('takes the type from the ce-type header when the AMQP type property is missing, or a custom pattern', () => {
    const headersOnly = { headers: { 'ce-type': Buffer.from('order.cancelled') } };
    expect(new SageRmqDeserializer().deserialize({ a: 1 }, headersOnly).pattern).toBe(
      'order.cancelled',
    );
    const custom = new SageRmqDeserializer({ pattern: ({ type }) => `sage.${type}` });
    expect(custom.deserialize({ a: 1 }, properties).pattern).toBe('sage.order.placed');
  });

  it('never sets a packet id (Sage messages are events, not requests)', () => {
    expect(new SageRmqDeserializer().deserialize({ id: 'x', data: 1 }, properties)).toEqual({
      pattern: 'order.placed',
      data: { id: 'x', data: 1 },
    });
  });

  it('handles non-Sage messages as Nest does: a Nest packet as it is, anything else without a pattern', () => {
    expect(new SageRmqDeserializer().deserialize({ pattern: 'p', data: 1 }, {})).toEqual({
      pattern: 'p',
      data: 1,
    });
    expect(new SageRmqDeserializer().deserialize({ a: 1 }, {})).toEqual({
      pattern: undefined,
      data: { a: 1 },
    });
  });
});

describe('SageNatsDeserializer', () => {
  it.each(PAYLOADS)(
    'pattern = subject, data = the payload decoded from the body: %j',
    (payload) => {
      const body = new TextEncoder().encode(JSON.stringify(payload));
      expect(new SageNatsDeserializer().deserialize(body, { channel: 'sage.orders' })).toEqual({
        pattern: 'sage.orders',
        data: payload,
      });
    },
  );

  it('keeps a body that is not JSON as text, and invalid UTF-8 as bytes', () => {
    const d = new SageNatsDeserializer();
    expect(d.deserialize(new TextEncoder().encode('hello'), { channel: 's' }).data).toBe('hello');
    const bytes = new Uint8Array([0xff, 0xfe]);
    expect(d.deserialize(bytes, { channel: 's' }).data).toBe(bytes);
  });
});

describe('ackRmqAfter', () => {
  const context = () => {
    const channel = { ack: jest.fn(), nack: jest.fn() };
    const message = { fields: { deliveryTag: 1 } };
    return { channel, message, ctx: { getChannelRef: () => channel, getMessage: () => message } };
  };

  it('acks once the work resolved, and returns its result', async () => {
    const { channel, message, ctx } = context();
    await expect(ackRmqAfter(ctx, () => Promise.resolve('done'))).resolves.toBe('done');
    expect(channel.ack).toHaveBeenCalledWith(message);
    expect(channel.nack).not.toHaveBeenCalled();
  });

  it('nacks with requeue when the work rejects, and rethrows', async () => {
    const { channel, message, ctx } = context();
    const error = new Error('rolled back');
    await expect(ackRmqAfter(ctx, () => Promise.reject(error))).rejects.toBe(error);
    expect(channel.nack).toHaveBeenCalledWith(message, false, true);
    expect(channel.ack).not.toHaveBeenCalled();
  });

  it('resolves when the ack cannot be sent (channel closed: the broker redelivers, the inbox skips it)', async () => {
    const { channel, ctx } = context();
    channel.ack.mockImplementation(() => {
      throw new Error('Channel closed');
    });
    await expect(ackRmqAfter(ctx, () => Promise.resolve('done'))).resolves.toBe('done');
  });

  it('rethrows the work’s error even when the channel is already closed', async () => {
    const { channel, ctx } = context();
    channel.nack.mockImplementation(() => {
      throw new Error('Channel closed');
    });
    const error = new Error('rolled back');
    await expect(ackRmqAfter(ctx, () => Promise.reject(error))).rejects.toBe(error);
  });
});
