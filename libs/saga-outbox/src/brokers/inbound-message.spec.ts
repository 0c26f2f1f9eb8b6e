import { describe, expect, it } from '@jest/globals';
import { MAX_JSON_DEPTH } from '../core/json';
import { DERIVED_ID_PREFIX, MAX_MESSAGE_ID_LENGTH } from '../core/message-id';
import { inboundMessage, type InboundInput } from './inbound-message';

const input = (overrides: Partial<InboundInput> = {}): InboundInput => ({
  destination: 'orders',
  headers: { 'ce-id': 'm-1', 'ce-type': 'order.placed' },
  transport: {},
  body: Buffer.from('{"a":1}'),
  maxMessageBytes: 1024,
  ...overrides,
});

const reasonOf = (overrides: Partial<InboundInput>) => {
  const inbound = inboundMessage(input(overrides));
  return inbound.ok ? 'handed over' : inbound.poison.reason;
};

describe('inboundMessage: the checks every adapter runs on a received message', () => {
  it('hands a good message over with its id, type and parsed payload', () => {
    expect(inboundMessage(input())).toMatchObject({
      ok: true,
      message: { id: 'm-1', type: 'order.placed', destination: 'orders', payload: { a: 1 } },
    });
  });

  it.each([
    ['no id', { 'ce-type': 't' }, 'missing-id'],
    ['a blank id', { 'ce-id': '  ' }, 'missing-id'],
    ['an id with NUL', { 'ce-id': 'a\u0000b' }, 'unusable-id'],
    ['an id with a lone surrogate', { 'ce-id': 'a\ud800' }, 'unusable-id'],
    ['an id over the limit', { 'ce-id': 'x'.repeat(MAX_MESSAGE_ID_LENGTH + 1) }, 'unusable-id'],
  ])('dead-letters a message with %s', (_what, headers, reason) => {
    expect(reasonOf({ headers })).toBe(reason);
  });

  it('accepts an id at the length limit', () => {
    expect(reasonOf({ headers: { 'ce-id': 'x'.repeat(MAX_MESSAGE_ID_LENGTH) } })).toBe(
      'handed over',
    );
  });

  it('records an unusable id under a stable derived id: the same raw id, the same derived id', () => {
    const long = { 'ce-id': 'x'.repeat(600) };
    const a = inboundMessage(input({ headers: long }));
    const b = inboundMessage(input({ headers: long, body: Buffer.from('[2]') }));
    expect(a.ok || a.poison.messageId.startsWith(DERIVED_ID_PREFIX)).toBe(true);
    expect(!a.ok && !b.ok && a.poison.messageId === b.poison.messageId).toBe(true);
  });

  it('derives a missing id from the content: different messages, different ids', () => {
    const a = inboundMessage(input({ headers: {}, body: Buffer.from('[1]') }));
    const b = inboundMessage(input({ headers: {}, body: Buffer.from('[2]') }));
    const again = inboundMessage(input({ headers: {}, body: Buffer.from('[1]') }));
    if (a.ok || b.ok || again.ok) throw new Error('expected dead letters');
    expect(a.poison.messageId).not.toBe(b.poison.messageId);
    expect(a.poison.messageId).toBe(again.poison.messageId);
  });

  it('dead-letters an oversize body without decoding it, an empty one, and bytes that are not UTF-8 JSON', () => {
    expect(reasonOf({ body: Buffer.alloc(1025, 0x20) })).toBe('too-large');
    expect(reasonOf({ body: Buffer.alloc(0) })).toBe('empty-body');
    expect(reasonOf({ body: null })).toBe('empty-body');
    expect(reasonOf({ body: Buffer.from('not json') })).toBe('not-json');
    expect(reasonOf({ body: Buffer.from([0xff, 0xfe, 0x7b]) })).toBe('not-json');
  });

  it('never quotes the body in the reason (it may hold personal data)', () => {
    const inbound = inboundMessage(input({ body: Buffer.from('{"email":"jan@example.com"') }));
    expect(inbound.ok).toBe(false);
    expect(JSON.stringify(inbound)).not.toContain('jan@example.com');
  });

  it(`dead-letters JSON nested more than ${MAX_JSON_DEPTH} deep before parsing it`, () => {
    const deep = (n: number) => Buffer.from('['.repeat(n) + ']'.repeat(n));
    expect(reasonOf({ body: deep(MAX_JSON_DEPTH) })).toBe('handed over');
    expect(reasonOf({ body: deep(MAX_JSON_DEPTH + 1), maxMessageBytes: 1e6 })).toBe('too-deep');
    expect(reasonOf({ body: deep(5000), maxMessageBytes: 1e6 })).toBe('too-deep');
  });

  it('never makes a message poison because of its headers or time', () => {
    const odd = {
      'ce-id': 'm-1',
      'ce-time': 'not a date',
      'x-crlf': 'a\r\nb',
      'x name': 'tab\tquote"',
      'x-uni': '\ud83d\ude00 é',
    };
    const inbound = inboundMessage(input({ headers: odd }));
    expect(inbound.ok).toBe(true);
    if (inbound.ok) expect(Number.isNaN(inbound.message.time.getTime())).toBe(false);
  });
});
