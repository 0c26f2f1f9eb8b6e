import { describe, expect, it } from '@jest/globals';
import type { JsMsg } from '@nats-io/jetstream';
import { SENT_MESSAGE } from '@test/support/broker-message-fixture';
import { fromCloudEventHeaders, toCloudEventHeaders } from '../cloudevents-headers';
import { headers as natsHeaders, type MsgHdrs } from './nats-client';
import { NatsMessageRejected, decodeMessage, encodeMessage } from './nats-message-codec';

const sent = SENT_MESSAGE;

const STORED = new Date('2025-01-02T03:04:06.000Z');

/** The message as JetStream delivers it: what was published, plus `Nats-Msg-Id` (the publish's msgID). */
function delivered(data: Uint8Array, headers: MsgHdrs, subject = 'sage.orders'): JsMsg {
  return {
    subject,
    data,
    headers,
    seq: 42,
    time: STORED,
    info: { stream: 'SAGE', deliveryCount: 2 },
  } as unknown as JsMsg;
}

function asRecord(h: MsgHdrs): Record<string, string> {
  return Object.fromEntries(h.keys().map((k) => [k, h.get(k)]));
}

describe('NATS message codec', () => {
  it('writes the shared CloudEvents headers as NATS headers and the payload as JSON', () => {
    const encoded = encodeMessage(sent, 'sage.', 'sage');
    expect(encoded.subject).toBe('sage.orders');
    expect(JSON.parse(new TextDecoder().decode(encoded.data))).toEqual(sent.payload);
    expect(asRecord(encoded.headers)).toEqual(toCloudEventHeaders(sent, 'sage'));
  });

  const MAX = 1024 * 1024;
  const decoded = (m: JsMsg) => {
    const inbound = decodeMessage(m, 'sage.', MAX);
    if (!inbound.ok) throw new Error(`dead-lettered: ${inbound.poison.detail}`);
    return inbound.message;
  };
  const json = (text: string) => new TextEncoder().encode(text);

  it('reads the message back, with the headers the shared rule gives (Nats-* left out)', () => {
    const encoded = encodeMessage(sent, 'sage.', 'sage');
    encoded.headers.set('Nats-Msg-Id', sent.id);
    const got = decoded(delivered(encoded.data, encoded.headers));
    expect(got).toEqual({
      ...sent,
      headers: fromCloudEventHeaders(toCloudEventHeaders(sent, 'sage')).headers,
    });
    expect(got.headers).not.toHaveProperty('Nats-Msg-Id');
  });

  it('takes Nats-Msg-Id over ce-id; a bad ce-time falls back to the stored time', () => {
    const h = natsHeaders();
    h.set('ce-id', 'ce');
    h.set('Nats-Msg-Id', 'nats');
    h.set('ce-time', 'garbage');
    expect(decoded(delivered(json('1'), h))).toMatchObject({
      id: 'nats',
      time: STORED,
      key: null,
      type: '',
    });
    const other = natsHeaders();
    other.set('ce-id', 'x');
    expect(decoded(delivered(json('null'), other, 'other.x'))).toMatchObject({
      destination: 'other.x',
      payload: null,
    });
  });

  it('dead-letters a message without an id, never taking its stream position as one', () => {
    const bare = decodeMessage(delivered(json('1'), natsHeaders()), 'sage.', MAX);
    expect(bare).toMatchObject({ ok: false, poison: { reason: 'missing-id' } });
  });

  it('joins the values of a repeated header with ","', () => {
    const h = natsHeaders();
    h.set('ce-id', 'x');
    h.append('multi', 'a');
    h.append('multi', 'b');
    expect(decoded(delivered(json('1'), h)).headers.multi).toBe('a,b');
  });

  it('refuses Nats-* headers and invalid header names, non-retryably', () => {
    expect(() =>
      encodeMessage({ ...sent, headers: { 'nats-rollup': 'sub' } }, 'sage.', 'sage'),
    ).toThrow(NatsMessageRejected);
    expect(() =>
      encodeMessage({ ...sent, headers: { 'bad name:': 'x' } }, 'sage.', 'sage'),
    ).toThrow(NatsMessageRejected);
  });

  it('dead-letters an empty body or one that is not JSON', () => {
    const h = natsHeaders();
    h.set('ce-id', 'x');
    expect(decodeMessage(delivered(json('{'), h), 'sage.', MAX)).toMatchObject({
      ok: false,
      poison: { reason: 'not-json', messageId: 'x' },
    });
    expect(decodeMessage(delivered(new Uint8Array(), h), 'sage.', MAX)).toMatchObject({
      ok: false,
      poison: { reason: 'empty-body' },
    });
  });
});
