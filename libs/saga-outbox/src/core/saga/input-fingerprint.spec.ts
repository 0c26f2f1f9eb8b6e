import { createHash } from 'node:crypto';
import { sagaInputFingerprint } from './input-fingerprint';

describe('sagaInputFingerprint', () => {
  it('is the SHA-256 (hex) of the canonical JSON of [saga name, input]', () => {
    const expected = createHash('sha256').update('["order",{"a":1,"b":[true]}]').digest('hex');
    expect(sagaInputFingerprint('order', { b: [true], a: 1 })).toBe(expected);
    expect(sagaInputFingerprint('order', { a: 1, b: [true] })).toMatch(/^[0-9a-f]{64}$/);
  });

  it('changes with the input and with the saga name, not with key order', () => {
    const f = sagaInputFingerprint('order', { id: 1, lines: [{ sku: 'a', qty: 2 }] });
    expect(sagaInputFingerprint('order', { lines: [{ qty: 2, sku: 'a' }], id: 1 })).toBe(f);
    expect(sagaInputFingerprint('order', { id: 1, lines: [{ sku: 'a', qty: 3 }] })).not.toBe(f);
    expect(sagaInputFingerprint('refund', { id: 1, lines: [{ sku: 'a', qty: 2 }] })).not.toBe(f);
    // No ambiguity between where the name ends and the input begins.
    expect(sagaInputFingerprint('a', 'bc')).not.toBe(sagaInputFingerprint('ab', 'c'));
  });
});
