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

  it('reads the record back into the message, with the headers the shared rule gives', () => {
    const record = toKafkaRecord(sent, 'sage');
    const delivered = fromKafkaRecord('orders', 2, received(record), 3);
    expect(delivered).toEqual({
      ...sent,
      headers: fromCloudEventHeaders(toCloudEventHeaders(sent, 'sage'))?.headers,
      deliveryAttempt: 3,
    });
    expect(delivered.headers).toMatchObject({ ...sent.headers, 'ce-source': 'sage' });
  });

  it('gives a record from another producer its position as id, its timestamp as time, its text as payload', () => {
    const delivered = fromKafkaRecord(
      'orders',
      2,
      received(
        { key: null, value: 'not json', headers: { 'ce-time': 'not a time' } },
        { headers: { 'ce-time': Buffer.from('not a time'), multi: ['a', Buffer.from('b')] } },
      ),
      1,
    );
    expect(delivered).toMatchObject({
      id: 'orders/2/17',
      type: '',
      key: null,
      payload: 'not json',
      time: new Date(1735787000000),
      headers: { 'ce-time': 'not a time', multi: 'a,b' },
    });
    expect(fromKafkaRecord('t', 0, received({ key: 'k', value: null }), 1).payload).toBeNull();
  });

  it('takes the record key over ce-subject, and ce-subject when the record has no key', () => {
    const headers = { 'ce-id': Buffer.from('x'), 'ce-subject': Buffer.from('subject') };
    const withKey = fromKafkaRecord(
      't',
      0,
      received({ key: 'record-key', value: '1' }, { headers }),
      1,
    );
    expect(withKey.key).toBe('record-key');
    const noKey = fromKafkaRecord('t', 0, received({ key: null, value: '1' }, { headers }), 1);
    expect(noKey.key).toBe('subject');
  });
});
