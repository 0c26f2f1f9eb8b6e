import type { JsonValue } from './json';

/** Text written as it is (punctuation, a quoted key), as opposed to a value still to be written. */
class Verbatim {
  constructor(readonly text: string) {}
}

/**
 * `value` as canonical JSON: JSON.stringify's text, but with every object's keys in sorted order
 * (by UTF-16 code units, as Array.prototype.sort compares strings) and no whitespace, so two
 * values that are equal as JSON give the same text whatever order their keys were written in.
 * `undefined` object fields are left out, as JSON.stringify does.
 *
 * Iterative, not recursive: the value may be untrusted input, and its nesting depth must not decide
 * whether the call stack holds. It is expected to have passed assertJsonSerializable (no cycles,
 * plain objects only).
 */
export function canonicalJson(value: JsonValue): string {
  const out: string[] = [];
  // Taken from the end: a value to write, or verbatim text. Children are pushed in reverse.
  const work: (JsonValue | undefined | Verbatim)[] = [value];
  while (work.length) {
    const item = work.pop();
    if (item instanceof Verbatim) {
      out.push(item.text);
    } else if (item === null || item === undefined || typeof item !== 'object') {
      // Scalars as JSON writes them; an undefined array element (refused upstream) as null.
      out.push(item === undefined ? 'null' : JSON.stringify(item));
    } else if (Array.isArray(item)) {
      work.push(new Verbatim(']'));
      for (let i = item.length - 1; i >= 0; i--) {
        work.push(item[i]);
        if (i > 0) work.push(new Verbatim(','));
      }
      work.push(new Verbatim('['));
    } else {
      const keys = Object.keys(item)
        .filter((k) => item[k] !== undefined)
        .sort();
      work.push(new Verbatim('}'));
      for (let i = keys.length - 1; i >= 0; i--) {
        const key = keys[i]!;
        work.push(item[key]);
        work.push(new Verbatim(`${i > 0 ? ',' : ''}${JSON.stringify(key)}:`));
      }
      work.push(new Verbatim('{'));
    }
  }
  return out.join('');
}
