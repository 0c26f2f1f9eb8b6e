import { canonicalJson } from './canonical-json';
import type { JsonValue } from './json';

describe('canonicalJson', () => {
  it('writes JSON with object keys sorted at every level, arrays in order', () => {
    const value: JsonValue = {
      b: [3, { z: 1, a: [{ y: null, x: true }] }, 'two'],
      a: { d: -1.5e-7, c: 'é "quoted" \\ back\n' },
      '': 0,
    };
    const text = canonicalJson(value);
    expect(text).toBe(
      '{"":0,"a":{"c":"é \\"quoted\\" \\\\ back\\n","d":-1.5e-7},"b":[3,{"a":[{"x":true,"y":null}],"z":1},"two"]}',
    );
    expect(JSON.parse(text)).toEqual(value);
  });

  it('gives the same text whatever order the keys were written in', () => {
    expect(canonicalJson({ a: 1, b: { c: 2, d: [1, 2] } })).toBe(
      canonicalJson({ b: { d: [1, 2], c: 2 }, a: 1 }),
    );
  });

  it('tells apart values that differ anywhere, array order included', () => {
    const base = canonicalJson({ a: [1, 2], b: 'x' });
    for (const other of [
      { a: [2, 1], b: 'x' },
      { a: [1, 2], b: 'y' },
      { a: [1, 2], b: 'x', c: null },
      { a: [1, 2, null], b: 'x' },
      { a: { 0: 1, 1: 2 }, b: 'x' },
      { a: [1, '2'], b: 'x' },
    ] as JsonValue[]) {
      expect(canonicalJson(other)).not.toBe(base);
    }
  });

  it('writes scalars, empty containers and surrogate pairs as JSON.stringify does', () => {
    for (const v of [
      null,
      true,
      false,
      0,
      -0,
      1e21,
      'x',
      '😀',
      '\u2028',
      [],
      {},
      [[]],
      [{}],
    ] as JsonValue[]) {
      expect(canonicalJson(v)).toBe(JSON.stringify(v));
    }
  });

  it('leaves out undefined object fields, as JSON does', () => {
    const withUndefined = { a: 1, skip: undefined } as unknown as JsonValue;
    expect(canonicalJson(withUndefined)).toBe('{"a":1}');
  });

  it('keeps "__proto__" as an ordinary key', () => {
    const value = JSON.parse('{"__proto__":{"x":1},"a":2}') as JsonValue;
    expect(canonicalJson(value)).toBe('{"__proto__":{"x":1},"a":2}');
  });

  it('does not use the call stack for nesting: 100,000 levels deep', () => {
    let deep: JsonValue = 'leaf';
    for (let i = 0; i < 100_000; i++) deep = i % 2 ? [deep] : { k: deep };
    const text = canonicalJson(deep);
    expect(text.startsWith('[{"k":[{"k":')).toBe(true);
    expect(text.length).toBe((100_000 / 2) * ('[]'.length + '{"k":}'.length) + '"leaf"'.length);
  });
});
