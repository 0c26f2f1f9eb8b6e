import { NotSerializableError } from './errors';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** JSON values as stored in jsonb columns. */
export type JsonValue =
  null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * Throws NotSerializableError unless `value` survives JSON.stringify/JSON.parse unchanged:
 * plain objects, arrays, strings, finite numbers, booleans, null. `undefined` object fields are
 * allowed (JSON drops them, as users expect). Checked at the boundary, before anything is written.
 */
export function assertJsonSerializable(value: unknown, what: string): asserts value is JsonValue {
  const seen = new Set<object>();
  const visit = (v: unknown, path: string): void => {
    if (v === null || typeof v === 'boolean') return;
    if (typeof v === 'string') {
      checkString(v, path);
      return;
    }
    if (typeof v === 'number') {
      if (!Number.isFinite(v))
        throw new NotSerializableError(what, path, `${v} is not a finite number`);
      return;
    }
    if (typeof v !== 'object') {
      throw new NotSerializableError(what, path, `a ${typeof v} cannot be stored as JSON`);
    }
    if (seen.has(v)) throw new NotSerializableError(what, path, 'circular reference');
    seen.add(v);
    if (Array.isArray(v)) {
      v.forEach((item, i) => {
        if (item === undefined)
          throw new NotSerializableError(what, `${path}[${i}]`, 'undefined array element');
        visit(item, `${path}[${i}]`);
      });
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
        visit(item, `${path}.${k}`);
      }
    }
    seen.delete(v);
  };
  // PostgreSQL jsonb cannot store NUL or unpaired UTF-16 surrogates: refuse them here, before
  // anything runs, rather than fail inside the store after a step's work was done.
  const checkString = (str: string, path: string): void => {
    if (str.includes('\u0000'))
      throw new NotSerializableError(
        what,
        path,
        'strings cannot contain the NUL character (\\u0000)',
      );
    if (LONE_SURROGATE.test(str))
      throw new NotSerializableError(
        what,
        path,
        'the string contains an unpaired UTF-16 surrogate',
      );
  };
  if (value === undefined)
    throw new NotSerializableError(what, '$', 'undefined is not a JSON value (use null)');
  visit(value, '$');
}
