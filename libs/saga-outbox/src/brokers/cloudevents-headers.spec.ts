import { describe, expect, it } from '@jest/globals';
import type { BrokerMessage } from '../core/ports/broker';
import {
  RESERVED_HEADERS,
  fromCloudEventHeaders,
  parseCloudEventTime,
  toCloudEventHeaders,
} from './cloudevents-headers';

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

const message = (overrides: Partial<BrokerMessage> = {}): BrokerMessage => ({
  id: '0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d',
  destination: 'orders',
  key: 'order-1',
  type: 'order.placed',
  payload: { n: 1 },
  headers: { traceparent: TRACEPARENT, 'sage-saga-id': 'saga-1' },
  time: new Date('2025-01-02T03:04:05.678Z'),
  ...overrides,
});

describe('toCloudEventHeaders', () => {
  it('writes the binary-mode attributes from the fields, plus the message headers', () => {
    expect(toCloudEventHeaders(message(), 'sage')).toEqual({
      'ce-specversion': '1.0',
      'ce-id': '0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d',
      'ce-type': 'order.placed',
      'ce-source': 'sage',
      'ce-time': '2025-01-02T03:04:05.678Z',
      'ce-subject': 'order-1',
      'content-type': 'application/json',
      traceparent: TRACEPARENT,
      'sage-saga-id': 'saga-1',
    });
  });

  it('leaves ce-subject out when the key is null', () => {
    const headers = toCloudEventHeaders(message({ key: null }), 'sage');
    expect(headers).not.toHaveProperty('ce-subject');
  });

  it('drops a message header with a reserved name, in any case: the fields win', () => {
    const headers = toCloudEventHeaders(
      message({
        key: null,
        headers: {
          'ce-id': 'forged',
          'CE-Type': 'forged',
          'ce-specversion': '0.3',
          'Ce-Time': 'yesterday',
          'ce-subject': 'not-the-key',
          'Content-Type': 'text/plain',
          traceparent: TRACEPARENT,
        },
      }),
      'sage',
    );
    expect(headers).toEqual({
      'ce-specversion': '1.0',
      'ce-id': '0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d',
      'ce-type': 'order.placed',
      'ce-source': 'sage',
      'ce-time': '2025-01-02T03:04:05.678Z',
      'content-type': 'application/json',
      traceparent: TRACEPARENT,
    });
    expect([...RESERVED_HEADERS].sort()).toEqual(
      ['ce-id', 'ce-specversion', 'ce-subject', 'ce-time', 'ce-type', 'content-type'].sort(),
    );
  });

  it("keeps the message's own ce-source (any case) over the default, unless it is blank", () => {
    expect(
      toCloudEventHeaders(message({ headers: { 'ce-source': 'orders' } }), 'sage'),
    ).toMatchObject({ 'ce-source': 'orders' });
    const mixedCase = toCloudEventHeaders(message({ headers: { 'CE-Source': 'orders' } }), 'sage');
    expect(mixedCase['CE-Source']).toBe('orders');
    expect(mixedCase).not.toHaveProperty('ce-source');
    const blank = toCloudEventHeaders(message({ headers: { 'ce-source': ' ' } }), 'sage');
    expect(blank['ce-source']).toBe('sage');
  });

  it('leaves ce-time out for an Invalid Date instead of throwing', () => {
    const headers = toCloudEventHeaders(message({ time: new Date(Number.NaN) }), 'sage');
    expect(headers).not.toHaveProperty('ce-time');
    expect(headers['ce-id']).toBe('0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d');
  });

  it('passes odd header values through unchanged', () => {
    const odd = { empty: '', spaces: '  a  b ', unicode: 'zażółć "quoted" \\ back', comma: 'a,b' };
    expect(toCloudEventHeaders(message({ headers: odd }), 'sage')).toMatchObject(odd);
  });
});

describe('fromCloudEventHeaders', () => {
  it('round-trips: the fields come back, the headers come back as sent', () => {
    const sent = message();
    const headers = toCloudEventHeaders(sent, 'sage');
    expect(fromCloudEventHeaders(headers)).toEqual({
      id: sent.id,
      type: sent.type,
      key: sent.key,
      time: sent.time,
      headers,
    });
    const keyless = message({ key: null });
    expect(fromCloudEventHeaders(toCloudEventHeaders(keyless, 'sage')).key).toBeNull();
  });

  it("prefers the transport's own id, type and key; blank ones count as missing", () => {
    const headers = toCloudEventHeaders(message(), 'sage');
    expect(
      fromCloudEventHeaders(headers, { id: 'amqp-id', type: 'amqp.type', key: 'record-key' }),
    ).toMatchObject({ id: 'amqp-id', type: 'amqp.type', key: 'record-key' });
    expect(fromCloudEventHeaders(headers, { id: ' ', type: '', key: '' })).toMatchObject({
      id: message().id,
      type: 'order.placed',
      key: 'order-1',
    });
    expect(fromCloudEventHeaders(headers, { id: 42, type: null })).toMatchObject({
      id: message().id,
      type: 'order.placed',
    });
  });

  it('never makes up an id: a missing id is undefined, a blank one is kept for the check to refuse', () => {
    expect(fromCloudEventHeaders({}).id).toBeUndefined();
    expect(fromCloudEventHeaders({ 'ce-id': '' }).id).toBe('');
    expect(fromCloudEventHeaders({ 'ce-id': '   ' }, { id: '' }).id).toBe('');
  });

  it("gives '' for a missing or blank type and null for a missing or empty key", () => {
    const fields = fromCloudEventHeaders({ 'ce-id': 'x', 'ce-type': '  ', 'ce-subject': '' });
    expect(fields).toMatchObject({ type: '', key: null });
    // A key of spaces is a valid outbox key: kept as it is.
    expect(fromCloudEventHeaders({ 'ce-id': 'x', 'ce-subject': ' ' }).key).toBe(' ');
  });

  it('matches attribute names ignoring case, the exact name first', () => {
    const fields = fromCloudEventHeaders({
      'CE-ID': 'upper',
      'Ce-Type': 't',
      'CE-Subject': 'k',
      'CE-TIME': '2025-01-02T03:04:05.678Z',
    });
    expect(fields).toMatchObject({
      id: 'upper',
      type: 't',
      key: 'k',
      time: new Date('2025-01-02T03:04:05.678Z'),
    });
    expect(fromCloudEventHeaders({ 'CE-ID': 'upper', 'ce-id': 'exact' }).id).toBe('exact');
  });

  it('never gives an Invalid Date: an invalid ce-time falls back to the transport time, then to now', () => {
    const transportTime = new Date('2024-06-01T00:00:00.000Z');
    for (const bad of ['yesterday', '', '2025-13-45', '1', '2025-01-02', '2016-12-31T23:59:60Z']) {
      const headers = { 'ce-id': 'x', 'ce-time': bad };
      expect(fromCloudEventHeaders(headers, { time: transportTime })?.time).toEqual(transportTime);
      const before = Date.now();
      const time = fromCloudEventHeaders(headers, { time: new Date(Number.NaN) })?.time;
      expect(time?.getTime()).toBeGreaterThanOrEqual(before);
      expect(time?.getTime()).toBeLessThanOrEqual(Date.now());
    }
    expect(fromCloudEventHeaders({ 'ce-id': 'x' }, { time: transportTime })?.time).toEqual(
      transportTime,
    );
  });

  it('reads RFC 3339 times with offsets, lower-case separators and more than millisecond digits', () => {
    expect(parseCloudEventTime('2025-01-02T04:04:05.678+01:00')).toEqual(
      new Date('2025-01-02T03:04:05.678Z'),
    );
    expect(parseCloudEventTime('2025-01-02t03:04:05z')).toEqual(new Date('2025-01-02T03:04:05Z'));
    expect(parseCloudEventTime('2025-01-02T03:04:05.678901234Z')).toEqual(
      new Date('2025-01-02T03:04:05.678Z'),
    );
    expect(parseCloudEventTime('2025-01-02 03:04:05Z')).toEqual(new Date('2025-01-02T03:04:05Z'));
    expect(parseCloudEventTime(undefined)).toBeUndefined();
    expect(parseCloudEventTime('Thu, 02 Jan 2025 03:04:05 GMT')).toBeUndefined();
  });

  it('returns a copy of the headers (the caller may change it)', () => {
    const headers = { 'ce-id': 'x', traceparent: TRACEPARENT };
    const fields = fromCloudEventHeaders(headers);
    fields!.headers.extra = 'y';
    expect(headers).toEqual({ 'ce-id': 'x', traceparent: TRACEPARENT });
  });
});
