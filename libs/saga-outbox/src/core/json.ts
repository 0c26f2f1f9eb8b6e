import { NotSerializableError } from './errors';
import { storableTextProblem } from './text-checks';

/** JSON values as stored in jsonb columns. */
export type JsonValue =
  null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * The deepest nesting of arrays and objects accepted anywhere: in what producers store (saga input,
 * step results, command and outbox payloads) and in what consumers parse. Deeper documents are
 * refused with a typed error, so nothing walks untrusted input on the call stack.
 */
export const MAX_JSON_DEPTH = 100;

/**
 * Throws NotSerializableError unless `value` survives JSON.stringify/JSON.parse unchanged:
 * plain objects, arrays, strings, finite numbers, booleans, null, nested at most MAX_JSON_DEPTH
 * levels. `undefined` object fields are allowed (JSON drops them, as users expect). Checked at the
 * boundary, before anything is written. Iterative: an untrusted value (an HTTP body) nested
 * 20,000 levels deep gets the error, not a stack overflow.
 */
export function assertJsonSerializable(value: unknown, what: string): asserts value is JsonValue {
  if (value === undefined)
    throw new NotSerializableError(what, '$', 'undefined is not a JSON value (use null)');
  // PostgreSQL jsonb cannot store NUL or unpaired UTF-16 surrogates: refuse them here, before
  // anything runs, rather than fail inside the store after a step's work was done.
  const checkString = (str: string, path: string): void => {
    const problem = storableTextProblem(str);
    if (problem) throw new NotSerializableError(what, path, `the string ${problem}`);
  };
  /** Objects on the path from the root to the value being visited (a repeat is a cycle). */
  const ancestors = new Set<object>();
  // Depth-first, children in document order; a `leave` frame takes its object off the path.
  const stack: ({ value: unknown; path: string; depth: number } | { leave: object })[] = [
    { value, path: '$', depth: 0 },
  ];
  while (stack.length) {
    const frame = stack.pop()!;
    if ('leave' in frame) {
      ancestors.delete(frame.leave);
      continue;
    }
    const { value: v, path, depth } = frame;
    if (v === null || typeof v === 'boolean') continue;
    if (typeof v === 'string') {
      checkString(v, path);
      continue;
    }
    if (typeof v === 'number') {
      if (!Number.isFinite(v))
        throw new NotSerializableError(what, path, `${v} is not a finite number`);
      continue;
    }
    if (typeof v !== 'object')
      throw new NotSerializableError(what, path, `a ${typeof v} cannot be stored as JSON`);
    if (ancestors.has(v)) throw new NotSerializableError(what, path, 'circular reference');
    if (depth >= MAX_JSON_DEPTH)
      throw new NotSerializableError(
        what,
        path,
        `nested deeper than ${MAX_JSON_DEPTH} levels of arrays and objects`,
      );
    ancestors.add(v);
    stack.push({ leave: v });
    const children: { value: unknown; path: string; depth: number }[] = [];
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const item: unknown = v[i];
        if (item === undefined)
          throw new NotSerializableError(what, `${path}[${i}]`, 'undefined array element');
        children.push({ value: item, path: `${path}[${i}]`, depth: depth + 1 });
      }
    } else {
      // Plain objects from any realm (structuredClone, vm contexts) have Object.prototype of their
      // realm as prototype, whose own prototype is null.
      const proto = Object.getPrototypeOf(v) as object | null;
      if (proto !== null && Object.getPrototypeOf(proto) !== null) {
        const ctor = (v as { constructor?: { name?: string } }).constructor?.name ?? 'unknown';
        throw new NotSerializableError(what, path, `instance of ${ctor} is not a plain object`);
      }
      for (const [k, item] of Object.entries(v)) {
        if (item === undefined) continue;
        checkString(k, `${path} (key ${JSON.stringify(k)})`);
        children.push({ value: item, path: `${path}.${k}`, depth: depth + 1 });
      }
    }
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }
}

/**
 * The nesting depth of the JSON text `text` (arrays and objects), counted without parsing it and
 * stopping as soon as it passes `limit`: a consumer checks an untrusted body before JSON.parse and
 * before anything walks the parsed value. Returns a number > limit when the text is too deep.
 */
export function jsonTextDepth(text: string, limit: number = MAX_JSON_DEPTH): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > deepest && (deepest = depth) > limit) return deepest;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
  }
  return deepest;
}

/**
 * `value` with every string (object keys included) passed through `map`, built without recursion
 * (the value may be untrusted and deep). Shared structure is copied; cycles are not expected (JSON).
 */
export function mapJsonStrings(value: JsonValue, map: (text: string) => string): JsonValue {
  const convert = (v: JsonValue): JsonValue =>
    typeof v === 'string'
      ? map(v)
      : Array.isArray(v)
        ? []
        : v !== null && typeof v === 'object'
          ? {}
          : v;
  const root = convert(value);
  const stack: [JsonValue, JsonValue][] = [[value, root]];
  while (stack.length) {
    const [from, to] = stack.pop()!;
    if (Array.isArray(from)) {
      const out = to as JsonValue[];
      for (const item of from) {
        const copy = convert(item);
        out.push(copy);
        if (copy !== null && typeof copy === 'object') stack.push([item, copy]);
      }
    } else if (from !== null && typeof from === 'object') {
      const out = to as Record<string, JsonValue>;
      for (const [k, item] of Object.entries(from)) {
        const copy = convert(item);
        // defineProperty, not `out[k] =`: a "__proto__" key must stay a key, not set a prototype.
        Object.defineProperty(out, map(k), {
          value: copy,
          enumerable: true,
          writable: true,
          configurable: true,
        });
        if (copy !== null && typeof copy === 'object') stack.push([item, copy]);
      }
    }
  }
  return root;
}

/** Whether `value` nests arrays/objects deeper than `limit`, found without recursion. */
export function jsonDepthExceeds(value: unknown, limit: number = MAX_JSON_DEPTH): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth >= limit) return true;
    for (const item of Array.isArray(v) ? v : Object.values(v)) stack.push([item, depth + 1]);
  }
  return false;
}
