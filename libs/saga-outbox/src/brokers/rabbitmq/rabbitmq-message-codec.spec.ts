import { describe, expect, it } from '@jest/globals';
import type { Message, MessageProperties } from 'amqplib';
import { SENT_MESSAGE } from '@test/support/broker-message-fixture';
import { fromCloudEventHeaders, toCloudEventHeaders } from '../cloudevents-headers';
import { fromAmqpMessage, toAmqpMessage, type AmqpMessage } from './rabbitmq-message-codec';

const sent = SENT_MESSAGE;

/** The message as amqplib hands it to a consumer (routing key = destination). */
function received(
  encoded: AmqpMessage,
  overrides: { headers?: Record<string, unknown>; properties?: Partial<MessageProperties> } = {},
): Message {
  const { headers, ...properties } = encoded.properties;
  return {
    content: encoded.content,
    fields: { deliveryTag: 1, redelivered: false, exchange: 'sage', routingKey: 'orders' },
    properties: {
      ...(properties as MessageProperties),
      headers: { ...(headers as Record<string, unknown>), ...overrides.headers },
      ...overrides.properties,
    },
  };
}

const MAX = 1024 * 1024;
/** The decoded message; throws if it was dead-lettered. */
function decode(raw: Message) {
  const inbound = fromAmqpMessage(raw, MAX);
  if (!inbound.ok) throw new Error(`dead-lettered: ${inbound.poison.detail}`);
  return inbound.message;
}

describe('AMQP message codec', () => {
  it('writes id, type and time as AMQP properties too, content-type as the property, the rest as headers', () => {
    const { content, properties } = toAmqpMessage(sent, 'sage');
    const { 'content-type': contentType, ...table } = toCloudEventHeaders(sent, 'sage');
    expect(JSON.parse(content.toString('utf8'))).toEqual(sent.payload);
    expect(properties).toEqual({
      messageId: sent.id,
      type: sent.type,
      timestamp: Math.floor(sent.time.getTime() / 1000),
      contentType,
      contentEncoding: 'utf-8',
      headers: table,
    });
    expect(properties.headers).not.toHaveProperty('content-type');
  });

  it('reads the message back, with the headers the shared rule gives (content-type back among them)', () => {
    const decoded = decode(received(toAmqpMessage(sent, 'sage')));
    expect(decoded).toEqual({
      ...sent,
      headers: fromCloudEventHeaders(toCloudEventHeaders(sent, 'sage')).headers,
    });
    expect(decoded?.headers).toMatchObject({
      'ce-specversion': '1.0',
      'ce-id': sent.id,
      'ce-type': sent.type,
      'ce-subject': sent.key,
      'ce-source': 'sage',
      traceparent: sent.headers.traceparent,
    });
  });

  it('leaves out the headers the broker adds, and reads byte, number and boolean header values', () => {
    const decoded = decode(
      received(toAmqpMessage(sent, 'sage'), {
        headers: {
          'x-delivery-count': 2,
          'x-death': [{ count: 1 }],
          bytes: Buffer.from('b'),
          count: 3,
          flag: true,
          table: { nested: 1 },
        },
      }),
    );
    expect(decoded?.headers).toMatchObject({ bytes: 'b', count: '3', flag: 'true' });
    for (const name of ['x-delivery-count', 'x-death', 'table'])
      expect(decoded?.headers).not.toHaveProperty(name);
  });

  it('prefers the AMQP properties, falls back to the headers, and to the AMQP timestamp for a bad ce-time', () => {
    const encoded = toAmqpMessage(sent, 'sage');
    const decoded = decode(
      received(encoded, {
        headers: { 'ce-time': 'garbage' },
        properties: { messageId: '', type: ' ' },
      }),
    );
    expect(decoded).toMatchObject({
      id: sent.id,
      type: sent.type,
      time: new Date('2025-01-02T03:04:05.000Z'),
    });
    const other = decode(
      received(encoded, { properties: { messageId: 'amqp-id', type: 'amqp.type' } }),
    );
    expect(other).toMatchObject({ id: 'amqp-id', type: 'amqp.type' });
  });

  it('dead-letters a message with no id at all or a body that is not JSON, with the reason', () => {
    const noId = received(toAmqpMessage(sent, 'sage'), {
      headers: { 'ce-id': '' },
      properties: { messageId: undefined },
    });
    expect(fromAmqpMessage(noId, MAX)).toMatchObject({
      ok: false,
      poison: { reason: 'missing-id' },
    });
    const notJson = { ...received(toAmqpMessage(sent, 'sage')), content: Buffer.from('{') };
    expect(fromAmqpMessage(notJson, MAX)).toMatchObject({
      ok: false,
      poison: { reason: 'not-json', messageId: sent.id },
    });
  });

  it('throws for a payload that cannot be serialised, and leaves the timestamp out for an invalid time', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => toAmqpMessage({ ...sent, payload: cyclic as never }, 'sage')).toThrow();
    const { properties } = toAmqpMessage({ ...sent, time: new Date(Number.NaN) }, 'sage');
    expect(properties).not.toHaveProperty('timestamp');
    expect(properties.headers).not.toHaveProperty('ce-time');
  });
});
