import { NotSerializableError } from './errors';
import { assertJsonSerializable, jsonTextDepth, mapJsonStrings, MAX_JSON_DEPTH } from './json';

function rejection(value: unknown): NotSerializableError {
  try {
    assertJsonSerializable(value, 'Input of saga "s"');
  } catch (error) {
    expect(error).toBeInstanceOf(NotSerializableError);
    return error as NotSerializableError;
  }
  throw new Error('expected NotSerializableError');
}

describe('assertJsonSerializable', () => {
  it.each([
    ['null', null],
    ['string', 'x'],
    ['empty string', ''],
    ['boolean', false],
    ['zero', 0],
    ['negative float', -1.5],
    ['max safe integer', Number.MAX_SAFE_INTEGER],
    ['empty object', {}],
    ['empty array', []],
    ['nested', { a: [1, { b: 'c', d: [null, true] }], e: { f: { g: 1 } } }],
    ['null-prototype object', Object.assign(Object.create(null) as object, { a: 1 })],
    ['undefined object field (dropped by JSON)', { a: 1, b: undefined }],
  ])('accepts %s', (_label, value) => {
    expect(() => assertJsonSerializable(value, 'x')).not.toThrow();
  });

  it('accepts the same object reachable twice (a DAG, not a cycle)', () => {
    const shared = { id: 1 };
    expect(() => assertJsonSerializable({ a: shared, b: [shared, shared] }, 'x')).not.toThrow();
  });

  it.each([
    ['undefined', undefined, '$'],
    ['a function', () => 1, '$'],
    ['a nested function', { a: { b: () => 1 } }, '$.a.b'],
    ['a BigInt', { n: 10n }, '$.n'],
    ['a symbol', { s: Symbol('x') }, '$.s'],
    ['NaN', { n: Number.NaN }, '$.n'],
    ['Infinity', [1, Number.POSITIVE_INFINITY], '$[1]'],
    ['-Infinity', Number.NEGATIVE_INFINITY, '$'],
    ['a Date', { at: new Date(0) }, '$.at'],
    ['a Map', new Map([[1, 2]]), '$'],
    ['a Set', { s: new Set([1]) }, '$.s'],
    [
      'a class instance',
      {
        o: new (class Money {
          amount = 1;
        })(),
      },
      '$.o',
    ],
    ['an Error', { e: new Error('x') }, '$.e'],
    ['a Buffer', { b: Buffer.from('x') }, '$.b'],
    ['a boxed number', { n: new Number(1) }, '$.n'],
    ['an undefined array element', [1, undefined], '$[1]'],
  ])('rejects %s, naming the path', (_label, value, path) => {
    const err = rejection(value);
    expect(err.code).toBe('NOT_JSON_SERIALIZABLE');
    expect(err.path).toBe(path);
    expect(err.message).toContain('Input of saga "s"');
    expect(err.message).toContain(path);
  });

  it('names the class of a rejected instance', () => {
    class Money {
      amount = 1;
    }
    expect(rejection({ price: new Money() }).message).toContain('Money');
  });

  it('rejects a direct and an indirect cycle', () => {
    const a: Record<string, unknown> = { x: 1 };
    a.self = a;
    expect(rejection(a).message).toMatch(/circular/);
    const b: unknown[] = [];
    const c = { list: b };
    b.push(c);
    expect(rejection({ c }).message).toMatch(/circular/);
  });

  // PostgreSQL jsonb rejects "\u0000" ("unsupported Unicode escape sequence") and lone surrogates
  // ("invalid input syntax for type json"): refused at the boundary, before a step's work is done.
  it('rejects a string containing NUL, which jsonb cannot store', () => {
    expect(rejection({ note: 'a\u0000b' }).path).toBe('$.note');
  });
  it('rejects a string containing a lone surrogate, which jsonb cannot store', () => {
    expect(rejection(['\ud800']).path).toBe('$[0]');
  });

  it('agrees with a JSON round-trip for accepted values', () => {
    const value = { a: [1, 'two', null, { b: false }], c: { d: -0.25 } };
    assertJsonSerializable(value, 'x');
    expect(JSON.parse(JSON.stringify(value))).toEqual(value);
  });

  /** An array nested `depth` levels deep, built without recursion. */
  const nested = (depth: number): unknown => {
    let v: unknown = 1;
    for (let i = 0; i < depth; i++) v = [v];
    return v;
  };

  it(`accepts ${MAX_JSON_DEPTH} levels of nesting and refuses one more, with a typed error`, () => {
    expect(() => assertJsonSerializable(nested(MAX_JSON_DEPTH), 'x')).not.toThrow();
    expect(rejection(nested(MAX_JSON_DEPTH + 1)).message).toMatch(/nested deeper than 100/);
  });

  it('refuses a value nested 20,000 levels deep without overflowing the stack', () => {
    // Recursion would throw RangeError (Maximum call stack size exceeded) here.
    expect(rejection(nested(20_000))).toBeInstanceOf(NotSerializableError);
    expect(rejection(JSON.parse('['.repeat(20_000) + ']'.repeat(20_000)))).toBeInstanceOf(
      NotSerializableError,
    );
  });

  it('reports errors in document order, as a recursive walk would', () => {
    expect(rejection({ a: [1, { b: Infinity }], c: NaN }).path).toBe('$.a[1].b');
  });

  it('accepts the same object twice side by side (only a cycle is refused)', () => {
    const shared = { x: 1 };
    expect(() => assertJsonSerializable({ a: shared, b: [shared, shared] }, 'x')).not.toThrow();
  });
});

describe('jsonTextDepth', () => {
  it('counts nesting without parsing, ignoring brackets inside strings', () => {
    expect(jsonTextDepth('1')).toBe(0);
    expect(jsonTextDepth('{"a":[1,{"b":"[[[{"}]}')).toBe(3);
    expect(jsonTextDepth('["\\"[[["]')).toBe(1);
  });
  it('stops as soon as the limit is passed', () => {
    expect(jsonTextDepth('['.repeat(5_000_000), 100)).toBe(101);
  });
});

describe('mapJsonStrings', () => {
  it('maps every string and key, deep values included, without recursion', () => {
    const deep = JSON.parse('['.repeat(50_000) + '"a\\u0000"' + ']'.repeat(50_000)) as unknown[];
    let out = mapJsonStrings(deep as never, (t) => t.replace('\u0000', '?'));
    for (let i = 0; i < 50_000; i++) out = (out as unknown[])[0] as never;
    expect(out).toBe('a?');
  });
  it('keeps a "__proto__" key a key', () => {
    const value = JSON.parse('{"__proto__":{"polluted":true},"k":"v"}') as never;
    const out = mapJsonStrings(value, (t) => t.toUpperCase()) as Record<string, unknown>;
    expect(Object.keys(out)).toEqual(['__PROTO__', 'K']);
    const same = mapJsonStrings(value, (t) => t) as Record<string, unknown>;
    expect(Object.prototype.hasOwnProperty.call(same, '__proto__')).toBe(true);
    expect((same as { polluted?: boolean }).polluted).toBeUndefined();
  });
});
