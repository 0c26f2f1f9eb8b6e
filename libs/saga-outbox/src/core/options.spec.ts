import { InvalidOptionsError } from './errors';
import {
  choiceOption,
  optionalName,
  optionalPositiveInteger,
  optionalPositiveNumber,
  requiredName,
  assertStorableText,
} from './options';

function thrown(run: () => unknown): InvalidOptionsError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidOptionsError);
    return error as InvalidOptionsError;
  }
  throw new Error('expected an InvalidOptionsError');
}

describe('option validators', () => {
  it('optionalPositiveInteger: undefined or an integer >= 1 (<= max)', () => {
    expect(() => optionalPositiveInteger('a', undefined)).not.toThrow();
    expect(() => optionalPositiveInteger('a', 1)).not.toThrow();
    expect(() => optionalPositiveInteger('port', 65535, 65535)).not.toThrow();
    for (const [bad, shown] of [
      [0, '0'],
      [-1, '-1'],
      [1.5, '1.5'],
      [Number.NaN, 'NaN'],
      [Infinity, 'Infinity'],
      ['3', '"3"'],
      [null, 'null'],
      [{ n: 3 }, '{"n":3}'],
    ] as const) {
      const error = thrown(() => optionalPositiveInteger('inbox.maxAttempts', bad));
      expect(error.option).toBe('inbox.maxAttempts');
      expect(error.message).toContain(`must be an integer >= 1, got ${shown}`);
    }
    expect(thrown(() => optionalPositiveInteger('port', 65536, 65535)).message).toContain(
      'must be an integer >= 1 and <= 65535, got 65536',
    );
  });

  it('optionalPositiveNumber: undefined or a finite number > 0', () => {
    expect(() => optionalPositiveNumber('a', undefined)).not.toThrow();
    expect(() => optionalPositiveNumber('a', 0.5)).not.toThrow();
    for (const bad of [0, -5, Number.NaN, Infinity]) {
      expect(thrown(() => optionalPositiveNumber('saga.leaseMs', bad)).message).toContain(
        `"saga.leaseMs": must be a positive number, got ${String(bad)}`,
      );
    }
    expect(thrown(() => optionalPositiveNumber('saga.leaseMs', '5')).message).toContain('got "5"');
  });

  it('requiredName / optionalName: a non-blank string within the limits', () => {
    expect(requiredName('a', 'orders')).toBe('orders');
    expect(() => optionalName('a', undefined)).not.toThrow();
    expect(thrown(() => requiredName('sagaEvents.destination', ' ')).message).toContain(
      'must be a non-empty string, got " "',
    );
    expect(
      thrown(() => optionalName('saga.replyTo', 'x'.repeat(256), { maxLength: 255 })).message,
    ).toContain('must be a non-empty string of at most 255 characters, got');
    expect(thrown(() => requiredName('a', 42)).message).toContain('got 42');
  });

  it.each([
    ['NUL', 'a\u0000b', 'contains the NUL character (\\u0000), got "a\\u0000b"'],
    ['a lone high surrogate', 'a\ud800b', 'contains an unpaired UTF-16 surrogate'],
    ['a lone low surrogate', '\udc00', 'contains an unpaired UTF-16 surrogate'],
    ['a reversed pair', '\udc00\ud800', 'contains an unpaired UTF-16 surrogate'],
  ])(
    'requiredName / optionalName / assertStorableText refuse %s, naming the option',
    (_l, bad, problem) => {
      for (const check of [
        () => requiredName('consumer', bad, { maxLength: 512 }),
        () => optionalName('saga.replyTo', bad),
        () => assertStorableText('idempotencyKey', bad),
      ]) {
        const error = thrown(check);
        expect(error.message).toContain(problem);
        expect(error.message).toContain('PostgreSQL cannot store it as given');
      }
      // The shown value is escaped: the message itself is storable text.
      const message = thrown(() => assertStorableText('k', bad)).message;
      expect(message).not.toContain('\u0000');
      expect(message).not.toMatch(/[\ud800-\udfff]/);
    },
  );

  it('assertStorableText returns text PostgreSQL stores as given, paired surrogates included', () => {
    for (const ok of ['order-1', 'ünïcødé ✓', '😀 emoji (a surrogate pair)', '\\0 escaped']) {
      expect(assertStorableText('k', ok)).toBe(ok);
      expect(requiredName('k', ok)).toBe(ok);
    }
  });

  it('choiceOption: the fallback when undefined, else one of the choices', () => {
    const choices = ['reject', 'return-existing'] as const;
    expect(choiceOption('c', undefined, choices, 'reject')).toBe('reject');
    expect(choiceOption('c', 'return-existing', choices, 'reject')).toBe('return-existing');
    const error = thrown(() =>
      choiceOption('saga.idempotencyConflict', 'ignore', choices, 'reject'),
    );
    expect(error.option).toBe('saga.idempotencyConflict');
    expect(error.message).toContain('must be one of "reject", "return-existing", got "ignore"');
  });

  it('names a field inside an option: "<field> must be …"', () => {
    const error = thrown(() =>
      optionalPositiveInteger({ option: '@IdempotentHandler', field: 'A.b: maxAttempts' }, 0),
    );
    expect(error.option).toBe('@IdempotentHandler');
    expect(error.message).toBe(
      'Invalid Sage option "@IdempotentHandler": A.b: maxAttempts must be an integer >= 1, got 0',
    );
  });
});
