import { findCardNumber, looksLikeCardNumber } from './card-number';

describe('card numbers in text', () => {
  it.each([
    ['16 digits', '4242424242424242'],
    ['13 digits', '4222222222222'],
    ['19 digits', '6011000990139424123'],
    ['grouped by spaces', '4000 0000 0000 0002'],
    ['grouped by dashes, inside text', 'my card is 5555-5555-5555-4444, thanks'],
    ['followed by an expiry date', '4242 4242 4242 4242 12 29'],
    ['in an email', '4242424242424242@example.com'],
  ])('finds %s', (_label, text) => expect(looksLikeCardNumber(text)).toBe(true));

  it.each([
    ['12 digits', '424242424242'],
    ['a run of 20 digits (not a card number)', '12345678901234567890'],
    ['a UUID', '01a25072-3314-71ab-b6e3-537d88a40348'],
    ['a UUID whose middle groups are all digits', 'ord-0193a9c4-2509-3102-8728-5b6e3537d88a'],
    [
      'an order id made of a UUID with digit-only groups',
      'ord-12345678-1234-4234-8234-123456789012',
    ],
    ['last four digits and a token', 'tok_visa 4242'],
    ['digits grouped by two separators', '4242  4242  4242  4242'],
  ])('does not find one in %s', (_label, text) => expect(looksLikeCardNumber(text)).toBe(false));

  it('names where a card number is in a JSON value, keys included', () => {
    expect(findCardNumber({ a: 1, b: ['x', { c: 'pan 4242424242424242' }] })).toBe('b[1].c');
    expect(findCardNumber({ '4242424242424242': true })).toBe('4242424242424242');
    expect(findCardNumber('4242424242424242')).toBe('(value)');
    expect(findCardNumber({ a: 4242424242424242, b: 'tok_visa', c: null })).toBeUndefined();
  });
});
