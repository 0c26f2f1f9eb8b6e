import { describe, expect, it } from '@jest/globals';
import type { IHeaders, KafkaMessage, Message } from 'kafkajs';
import { SENT_MESSAGE } from '@test/support/broker-message-fixture';
import { fromCloudEventHeaders, toCloudEventHeaders } from '../cloudevents-headers';
import { fromKafkaRecord, toKafkaRecord } from './kafka-message-codec';

const sent = SENT_MESSAGE;

/** The record as kafkajs hands it to a consumer: key, value and header values as Buffers. */
function received(record: Message, overrides: { headers?: IHeaders } = {}): KafkaMessage {
  const headers: IHeaders = {};
  for (const [name, value] of Object.entries(record.headers ?? {}))
    headers[name] = Buffer.from(String(value));
  return {
    key: record.key === null || record.key === undefined ? null : Buffer.from(record.key),
    value: record.value === null || record.value === undefined ? null : Buffer.from(record.value),
    headers: overrides.headers ?? headers,
    timestamp: '1735787000000',
    attributes: 0,
    offset: '17',
  };
}

describe('Kafka message codec', () => {
  it('writes the shared CloudEvents headers as record headers, the key as record key, the payload as JSON', () => {
    const record = toKafkaRecord(sent, 'sage');
    expect(record).toEqual({
      key: 'order-1',
      value: JSON.stringify(sent.payload),
      headers: toCloudEventHeaders(sent, 'sage'),
    });
    expect(toKafkaRecord({ ...sent, key: null }, 'sage').key).toBeNull();
  });

  const MAX = 1024 * 1024;
  const accepted = (record: KafkaMessage) => {
    const inbound = fromKafkaRecord('orders', record, MAX);
    if (!inbound.ok) throw new Error(`dead-lettered: ${inbound.poison.detail}`);
    return inbound.message;
  };

  it('reads the record back into the message, with the headers the shared rule gives', () => {
    const record = toKafkaRecord(sent, 'sage');
    const delivered = accepted(received(record));
    expect(delivered).toEqual({
      ...sent,
      headers: fromCloudEventHeaders(toCloudEventHeaders(sent, 'sage')).headers,
    });
    expect(delivered.headers).toMatchObject({ ...sent.headers, 'ce-source': 'sage' });
  });

  it('takes the record timestamp for a bad ce-time and joins repeated headers', () => {
    const delivered = accepted(
      received(
        { key: null, value: '{"a":1}' },
        {
          headers: {
            'ce-id': Buffer.from('m-1'),
            'ce-time': Buffer.from('not a time'),
            multi: ['a', Buffer.from('b')],
          },
        },
      ),
    );
    expect(delivered).toMatchObject({
      id: 'm-1',
      type: '',
      key: null,
      payload: { a: 1 },
      time: new Date(1735787000000),
      headers: { 'ce-time': 'not a time', multi: 'a,b' },
    });
  });

  it('dead-letters a record without ce-id, with text or a tombstone as value: never makes up an id', () => {
    const noId = fromKafkaRecord('orders', received({ key: null, value: '{"a":1}' }), MAX);
    expect(noId).toMatchObject({ ok: false, poison: { reason: 'missing-id' } });
    const text = fromKafkaRecord(
      'orders',
      received({ key: null, value: 'not json' }, { headers: { 'ce-id': Buffer.from('x') } }),
      MAX,
    );
    expect(text).toMatchObject({ ok: false, poison: { reason: 'not-json', messageId: 'x' } });
    const tombstone = fromKafkaRecord(
      'orders',
      received({ key: 'k', value: null }, { headers: { 'ce-id': Buffer.from('x') } }),
      MAX,
    );
    expect(tombstone).toMatchObject({ ok: false, poison: { reason: 'empty-body' } });
  });

  it('takes the record key over ce-subject, and ce-subject when the record has no key', () => {
    const headers = { 'ce-id': Buffer.from('x'), 'ce-subject': Buffer.from('subject') };
    expect(accepted(received({ key: 'record-key', value: '1' }, { headers })).key).toBe(
      'record-key',
    );
    expect(accepted(received({ key: null, value: '1' }, { headers })).key).toBe('subject');
  });
});
