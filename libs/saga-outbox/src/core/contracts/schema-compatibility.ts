import { canonicalJson } from '../canonical-json';
import type { JsonValue } from '../json';
import type { CompatibilityMode, JsonSchema } from './message-contract';

/** One difference between two schemas. */
export interface SchemaChange {
  /** JSON pointer into the schema (`/properties/total/type`); `''` for the root. */
  readonly path: string;
  /** What changed, for people: `type narrowed: "number" | "string" → "number"`. */
  readonly change: string;
  /** Whether this change breaks the compatibility mode compared under. */
  readonly breaking: boolean;
}

/** The verdict of {@link compareSchemas}: compatible when no change is breaking. */
export interface SchemaCompatibility {
  readonly compatible: boolean;
  readonly changes: readonly SchemaChange[];
}

/**
 * How deep two schemas are walked (nested subschemas plus `$ref` hops). Deeper, or a `$ref`
 * cycle that never meets itself, is reported as a breaking change rather than walked further.
 */
export const MAX_SCHEMA_COMPARE_DEPTH = 64;

/**
 * Compares the schema of a contract's previous version (`previous`) with the next one (`next`)
 * under a compatibility mode (JSON Schema draft 2020-12). Pure: no I/O, no validator.
 *
 * The modes, as `sage contracts check` applies them between consecutive versions:
 * - `backward`: consumers on the NEW schema can read messages written with the PREVIOUS one (the
 *   new schema accepts every previous message: Confluent's BACKWARD, consumers upgraded first),
 *   and no field the previous version guaranteed is dropped. Breaking: a new required field
 *   without a `default`, an optional field made required without one, a removed or retyped
 *   required field (or one made optional), a narrowed `type` or `enum`/`const`, a tightened bound
 *   (`minimum`, `maxLength`...) or an added `pattern`/`format`, `additionalProperties` true→false.
 *   Dropping a required field is refused although the new schema still accepts old messages:
 *   producers on the new version stop sending a field that consumers of the type were promised
 *   (issue 15's list: "removed or retyped required field, narrowed enum, new required field
 *   without default").
 * - `forward`: consumers on the PREVIOUS schema can read messages written with the NEW one (the
 *   previous schema accepts every new message: producers upgraded first). Breaking: a removed
 *   required field (or one made optional), a widened `type` or `enum`, a loosened bound, a
 *   removed `pattern`, `additionalProperties` false→true, any field added when the previous
 *   schema had `additionalProperties: false`. Adding a required field is fine.
 * - `full`: both. `none`: every change is listed, none is breaking.
 *
 * Conservative where the answer is not decidable here: a changed `pattern`, `format` or
 * `multipleOf`, any change inside `oneOf` / `anyOf` / `not` / `if` / `then` / `else` (compared for
 * identity only), a changed non-local `$ref` and any other keyword that differs are breaking in
 * both directions. `allOf` branches are compared pairwise. Local `$ref`s (`#/$defs/...`) are
 * resolved on each side (each pair of targets compared once, so cycles end); changes under them
 * are reported at the definition's path. Annotations (`title`, `description`, `default`,
 * `examples`...) are listed as non-breaking changes.
 */
export function compareSchemas(
  previous: JsonSchema,
  next: JsonSchema,
  mode: CompatibilityMode,
): SchemaCompatibility {
  // Identical roots resolve every $ref alike: nothing to walk (however deep).
  if (sameJson(previous, next)) return { compatible: true, changes: [] };
  const walk = new SchemaWalk(previous, next);
  walk.compare(previous, next, '', 0, false);
  const seen = new Set<string>();
  const changes: SchemaChange[] = [];
  for (const found of walk.found) {
    const key = `${found.path}\n${found.change}`;
    if (seen.has(key)) continue;
    seen.add(key);
    changes.push({ path: found.path, change: found.change, breaking: breaks(found, mode) });
  }
  return { compatible: changes.every((c) => !c.breaking), changes };
}

/** Which directions a change breaks: `backward` (new reads old), `forward` (old reads new). */
interface Effect {
  readonly backward: boolean;
  readonly forward: boolean;
}

const NARROWED: Effect = { backward: true, forward: false };
const WIDENED: Effect = { backward: false, forward: true };
const BOTH: Effect = { backward: true, forward: true };
const NEITHER: Effect = { backward: false, forward: false };

interface Found extends Effect {
  readonly path: string;
  readonly change: string;
}

function breaks(effect: Effect, mode: CompatibilityMode): boolean {
  switch (mode) {
    case 'backward':
      return effect.backward;
    case 'forward':
      return effect.forward;
    case 'full':
      return effect.backward || effect.forward;
    case 'none':
      return false;
  }
}

type SchemaObject = { readonly [key: string]: unknown };

const TYPES = ['array', 'boolean', 'integer', 'null', 'number', 'object', 'string'];
const LOWER_BOUNDS = [
  'minimum',
  'exclusiveMinimum',
  'minLength',
  'minItems',
  'minProperties',
  'minContains',
];
const UPPER_BOUNDS = [
  'maximum',
  'exclusiveMaximum',
  'maxLength',
  'maxItems',
  'maxProperties',
  'maxContains',
];
/** Constraints whose change cannot be ordered: added narrows, removed widens, changed breaks both. */
const OPAQUE_CONSTRAINTS = [
  'pattern',
  'format',
  'multipleOf',
  'contentEncoding',
  'contentMediaType',
];
/** Compared for identity only (not monotonic, or not analysed): any change breaks both ways. */
const IDENTITY_ONLY = ['oneOf', 'anyOf', 'not', 'if', 'then', 'else'];
const ANNOTATIONS = [
  'title',
  'description',
  'default',
  'examples',
  'deprecated',
  'readOnly',
  'writeOnly',
  '$comment',
  '$schema',
  '$id',
  '$anchor',
];
/** Handled by their own rules, or not compared at all (`$defs`: through the `$ref`s that use them). */
const HANDLED = new Set([
  ...LOWER_BOUNDS,
  ...UPPER_BOUNDS,
  ...OPAQUE_CONSTRAINTS,
  ...IDENTITY_ONLY,
  ...ANNOTATIONS,
  'type',
  'enum',
  'const',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'prefixItems',
  'additionalItems',
  'uniqueItems',
  'allOf',
  '$ref',
  '$defs',
  'definitions',
]);

class SchemaWalk {
  readonly found: Found[] = [];
  private readonly refPairs = new Set<string>();

  constructor(
    private readonly previousRoot: JsonSchema,
    private readonly nextRoot: JsonSchema,
  ) {}

  private add(path: string, change: string, effect: Effect, strict: boolean): void {
    const e = strict && (effect.backward || effect.forward) ? BOTH : effect;
    this.found.push({ path, change, backward: e.backward, forward: e.forward });
  }

  /**
   * Compares two subschemas at `path`. `strict` (inside oneOf/anyOf/not/if): every change that is
   * not an annotation breaks both ways.
   */
  compare(previous: unknown, next: unknown, path: string, depth: number, strict: boolean): void {
    if (depth > MAX_SCHEMA_COMPARE_DEPTH) {
      this.add(
        path,
        `nested deeper than ${MAX_SCHEMA_COMPARE_DEPTH} levels: not compared further`,
        BOTH,
        false,
      );
      return;
    }
    const p = resolveRefs(previous, this.previousRoot);
    const n = resolveRefs(next, this.nextRoot);
    if (p.unresolved !== undefined || n.unresolved !== undefined) {
      const a = p.unresolved ?? p.ref;
      const b = n.unresolved ?? n.ref;
      if (a !== b || p.unresolved === undefined || n.unresolved === undefined)
        this.add(
          path,
          `$ref ${a === undefined ? '(none)' : JSON.stringify(a)} → ${b === undefined ? '(none)' : JSON.stringify(b)}: a $ref that is not a local JSON pointer (#/$defs/...) cannot be compared`,
          BOTH,
          false,
        );
      return;
    }
    if (p.ref !== undefined && n.ref !== undefined) {
      const pair = `${p.ref}\n${n.ref}\n${strict}`;
      if (this.refPairs.has(pair)) return; // compared already, or being compared (a cycle)
      this.refPairs.add(pair);
    }
    if (n.ref !== undefined) path = n.ref.slice(1);
    this.compareResolved(p.schema, n.schema, path, depth, strict);
  }

  private compareResolved(
    previous: unknown,
    next: unknown,
    path: string,
    depth: number,
    strict: boolean,
  ): void {
    if (typeof previous === 'boolean' || typeof next === 'boolean') {
      const a = previous === true ? {} : previous;
      const b = next === true ? {} : next;
      if (a === false && b === false) return;
      if (a === false)
        this.add(path, 'schema widened from false (accepts nothing)', WIDENED, strict);
      else if (b === false)
        this.add(path, 'schema narrowed to false (accepts nothing)', NARROWED, strict);
      else this.compareResolved(a, b, path, depth, strict);
      return;
    }
    if (!isObject(previous) || !isObject(next)) {
      if (!sameJson(previous, next))
        this.add(path, 'not a JSON Schema (object or boolean): changed', BOTH, false);
      return;
    }
    const d = depth + 1;
    this.compareTypes(previous, next, path, strict);
    this.compareAllowedValues(previous, next, path, strict);
    for (const key of LOWER_BOUNDS) this.compareBound(previous, next, path, key, 'lower', strict);
    for (const key of UPPER_BOUNDS) this.compareBound(previous, next, path, key, 'upper', strict);
    for (const key of OPAQUE_CONSTRAINTS) this.compareOpaque(previous, next, path, key, strict);
    if (previous.uniqueItems !== next.uniqueItems) {
      const now = next.uniqueItems === true;
      if (now !== (previous.uniqueItems === true))
        this.add(
          `${path}/uniqueItems`,
          now ? 'uniqueItems added: duplicates refused' : 'uniqueItems removed',
          now ? NARROWED : WIDENED,
          strict,
        );
    }
    this.compareObject(previous, next, path, d, strict);
    this.compareArray(previous, next, path, d, strict);
    this.compareAllOf(previous, next, path, d, strict);
    for (const key of IDENTITY_ONLY) this.compareIdentityOnly(previous, next, path, key, d);
    for (const key of ANNOTATIONS)
      if (!sameJson(previous[key], next[key]))
        this.add(`${path}/${key}`, describeEdit(key, previous[key], next[key]), NEITHER, false);
    const others = new Set([...Object.keys(previous), ...Object.keys(next)]);
    for (const key of others)
      if (!HANDLED.has(key) && !sameJson(previous[key], next[key]))
        this.add(
          `${path}/${pointerToken(key)}`,
          `${describeEdit(key, previous[key], next[key])}: Sage does not analyse "${key}", so any change to it is breaking`,
          BOTH,
          false,
        );
  }

  private compareTypes(previous: SchemaObject, next: SchemaObject, path: string, strict: boolean) {
    const before = typeList(previous.type);
    const after = typeList(next.type);
    if (before === undefined && after === undefined) return;
    const lost = (before ?? TYPES).filter((t) => !acceptsType(after, t));
    const gained = (after ?? TYPES).filter((t) => !acceptsType(before, t));
    const text = `${typeText(before)} → ${typeText(after)}`;
    const at = `${path}/type`;
    if (lost.length && gained.length) this.add(at, `retyped: ${text}`, BOTH, strict);
    else if (lost.length)
      this.add(at, `type narrowed: ${text} (no longer ${lost.join(', ')})`, NARROWED, strict);
    else if (gained.length)
      this.add(at, `type widened: ${text} (now also ${gained.join(', ')})`, WIDENED, strict);
  }

  private compareAllowedValues(
    previous: SchemaObject,
    next: SchemaObject,
    path: string,
    strict: boolean,
  ) {
    const before = allowedValues(previous);
    const after = allowedValues(next);
    if (before === undefined && after === undefined) return;
    const at = `${path}/${'const' in next || (!('enum' in next) && 'const' in previous) ? 'const' : 'enum'}`;
    if (before === undefined) {
      this.add(at, `values restricted to ${valuesText(after!)}`, NARROWED, strict);
      return;
    }
    if (after === undefined) {
      this.add(at, `value restriction removed (was ${valuesText(before)})`, WIDENED, strict);
      return;
    }
    const removed = before.filter((v) => !after.includes(v));
    const added = after.filter((v) => !before.includes(v));
    if (removed.length && added.length)
      this.add(
        at,
        `enum changed: removed ${valuesText(removed)}; added ${valuesText(added)}`,
        BOTH,
        strict,
      );
    else if (removed.length)
      this.add(at, `enum narrowed: removed ${valuesText(removed)}`, NARROWED, strict);
    else if (added.length)
      this.add(at, `enum widened: added ${valuesText(added)}`, WIDENED, strict);
  }

  private compareBound(
    previous: SchemaObject,
    next: SchemaObject,
    path: string,
    key: string,
    side: 'lower' | 'upper',
    strict: boolean,
  ) {
    const a = previous[key];
    const b = next[key];
    if (sameJson(a, b)) return;
    const at = `${path}/${key}`;
    if (a === undefined) {
      this.add(at, `${key} added: ${JSON.stringify(b)}`, NARROWED, strict);
    } else if (b === undefined) {
      this.add(at, `${key} removed (was ${JSON.stringify(a)})`, WIDENED, strict);
    } else if (typeof a === 'number' && typeof b === 'number') {
      const tighter = side === 'lower' ? b > a : b < a;
      this.add(
        at,
        `${key} ${tighter ? 'tightened' : 'loosened'}: ${a} → ${b}`,
        tighter ? NARROWED : WIDENED,
        strict,
      );
    } else {
      this.add(at, describeEdit(key, a, b), BOTH, strict);
    }
  }

  private compareOpaque(
    previous: SchemaObject,
    next: SchemaObject,
    path: string,
    key: string,
    strict: boolean,
  ) {
    const a = previous[key];
    const b = next[key];
    if (sameJson(a, b)) return;
    const at = `${path}/${key}`;
    if (a === undefined) this.add(at, `${key} added: ${JSON.stringify(b)}`, NARROWED, strict);
    else if (b === undefined)
      this.add(at, `${key} removed (was ${JSON.stringify(a)})`, WIDENED, strict);
    else
      this.add(
        at,
        `${key} changed: ${JSON.stringify(a)} → ${JSON.stringify(b)} (cannot tell whether it narrows or widens)`,
        BOTH,
        strict,
      );
  }

  private compareObject(
    previous: SchemaObject,
    next: SchemaObject,
    path: string,
    depth: number,
    strict: boolean,
  ) {
    const beforeProps = objectOf(previous.properties);
    const afterProps = objectOf(next.properties);
    const beforeRequired = stringsOf(previous.required);
    const afterRequired = stringsOf(next.required);
    const names = new Set([
      ...Object.keys(afterProps),
      ...afterRequired,
      ...Object.keys(beforeProps),
      ...beforeRequired,
    ]);
    const beforeExtra = previous.additionalProperties ?? true;
    const afterExtra = next.additionalProperties ?? true;
    for (const name of names) {
      const at = `${path}/properties/${pointerToken(name)}`;
      const wasDeclared = Object.hasOwn(beforeProps, name);
      const isDeclared = Object.hasOwn(afterProps, name);
      const wasRequired = beforeRequired.includes(name);
      const isRequired = afterRequired.includes(name);
      const withDefault = isDeclared && hasDefault(afterProps[name], this.nextRoot);
      if (wasDeclared && isDeclared) {
        this.compare(beforeProps[name], afterProps[name], at, depth, strict);
      } else if (isDeclared) {
        // Old consumers meet the new field as an additional property.
        const refusedByOld = beforeExtra !== true;
        const kind = isRequired
          ? withDefault
            ? 'added required field, with a default'
            : 'added required field without a default: messages of the previous version lack it'
          : 'added optional field';
        this.add(
          at,
          refusedByOld
            ? `${kind}; the previous schema's additionalProperties ${beforeExtra === false ? 'refuses' : 'constrains'} it`
            : kind,
          {
            backward: isRequired && !withDefault && !wasRequired,
            forward: refusedByOld,
          },
          strict,
        );
        continue;
      } else if (wasDeclared) {
        if (wasRequired) {
          this.add(
            at,
            isRequired
              ? 'definition removed (still required, any value now)'
              : 'removed required field',
            isRequired ? WIDENED : BOTH,
            strict,
          );
        } else {
          // Messages of the previous version may carry it: the new additionalProperties decides.
          const refusedByNew = afterExtra !== true;
          this.add(
            at,
            refusedByNew
              ? "removed optional field; the new schema's additionalProperties refuses it in messages of the previous version"
              : 'removed optional field',
            refusedByNew ? NARROWED : NEITHER,
            strict,
          );
        }
        continue;
      }
      if (!wasRequired && isRequired)
        this.add(
          at,
          withDefault
            ? 'made required, with a default'
            : 'made required without a default: messages of the previous version may lack it',
          withDefault ? NEITHER : NARROWED,
          strict,
        );
      else if (wasRequired && !isRequired)
        // Accepts more, but drops a guarantee consumers of the previous version rely on.
        this.add(at, 'no longer required: consumers rely on it being there', BOTH, strict);
    }
    if (!sameJson(beforeExtra, afterExtra)) {
      if (typeof beforeExtra === 'boolean' && typeof afterExtra === 'boolean')
        this.add(
          `${path}/additionalProperties`,
          afterExtra
            ? 'additionalProperties false → true: undeclared fields now allowed'
            : 'additionalProperties true → false: undeclared fields now refused',
          afterExtra ? WIDENED : NARROWED,
          strict,
        );
      else this.compare(beforeExtra, afterExtra, `${path}/additionalProperties`, depth, strict);
    }
  }

  private compareArray(
    previous: SchemaObject,
    next: SchemaObject,
    path: string,
    depth: number,
    strict: boolean,
  ) {
    const before = arrayShape(previous);
    const after = arrayShape(next);
    const length = Math.max(before.prefix.length, after.prefix.length);
    for (let i = 0; i < length; i++)
      this.compare(
        before.prefix[i] ?? before.rest,
        after.prefix[i] ?? after.rest,
        `${path}/prefixItems/${i}`,
        depth,
        strict,
      );
    if (before.declared || after.declared)
      this.compare(before.rest, after.rest, `${path}/${after.restKey}`, depth, strict);
  }

  private compareAllOf(
    previous: SchemaObject,
    next: SchemaObject,
    path: string,
    depth: number,
    strict: boolean,
  ) {
    const a = previous.allOf;
    const b = next.allOf;
    if (a === undefined && b === undefined) return;
    if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
      a.forEach((branch, i) => this.compare(branch, b[i], `${path}/allOf/${i}`, depth, strict));
      return;
    }
    if (!sameJson(a, b))
      this.add(
        `${path}/allOf`,
        'allOf branches added, removed or reshaped: compared for identity only',
        BOTH,
        false,
      );
  }

  private compareIdentityOnly(
    previous: SchemaObject,
    next: SchemaObject,
    path: string,
    key: string,
    depth: number,
  ) {
    const a = previous[key];
    const b = next[key];
    if (a === undefined && b === undefined) return;
    const at = `${path}/${key}`;
    const note = `${key} changed: Sage compares ${key} for identity only, so any change inside it is breaking`;
    const before = this.found.length;
    if (Array.isArray(a) && Array.isArray(b) && a.length === b.length)
      a.forEach((branch, i) => this.compare(branch, b[i], `${at}/${i}`, depth, true));
    else if (isSchemaLike(a) && isSchemaLike(b)) this.compare(a, b, at, depth, true);
    else {
      this.add(at, note, BOTH, false);
      return;
    }
    if (this.found.slice(before).some((f) => f.backward || f.forward))
      this.add(at, note, BOTH, false);
  }
}

// --- helpers ------------------------------------------------------------------------------------

function isObject(value: unknown): value is SchemaObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isSchemaLike(value: unknown): boolean {
  return typeof value === 'boolean' || isObject(value);
}

function objectOf(value: unknown): SchemaObject {
  return isObject(value) ? value : {};
}

function stringsOf(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  return canonicalJson(a as JsonValue) === canonicalJson(b as JsonValue);
}

/** `~` and `/` escaped, as RFC 6901 wants them in a JSON pointer token. */
function pointerToken(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

function describeEdit(key: string, a: unknown, b: unknown): string {
  if (a === undefined) return `${key} added`;
  if (b === undefined) return `${key} removed`;
  return `${key} changed`;
}

/** The JSON types a schema allows, or undefined for any. */
function typeList(type: unknown): string[] | undefined {
  if (typeof type === 'string') return [type];
  if (Array.isArray(type)) return type.filter((t): t is string => typeof t === 'string');
  return undefined;
}

function acceptsType(types: readonly string[] | undefined, type: string): boolean {
  if (types === undefined) return true;
  return types.includes(type) || (type === 'integer' && types.includes('number'));
}

function typeText(types: readonly string[] | undefined): string {
  return types === undefined ? '(any)' : types.map((t) => JSON.stringify(t)).join(' | ');
}

/** The values `enum` / `const` allow, as canonical JSON, or undefined for no restriction. */
function allowedValues(schema: SchemaObject): string[] | undefined {
  const fromEnum = Array.isArray(schema.enum)
    ? schema.enum.map((v) => canonicalJson(v as JsonValue))
    : undefined;
  if ('const' in schema) {
    const only = canonicalJson(schema.const as JsonValue);
    return fromEnum === undefined || fromEnum.includes(only) ? [only] : [];
  }
  return fromEnum;
}

function valuesText(values: readonly string[]): string {
  const shown = values.slice(0, 10).join(', ');
  return values.length > 10 ? `${shown} and ${values.length - 10} more` : shown || '(none)';
}

/** prefixItems (or draft-07 array `items`), and the schema for the items after them. */
function arrayShape(schema: SchemaObject): {
  prefix: readonly unknown[];
  rest: unknown;
  restKey: string;
  declared: boolean;
} {
  if (Array.isArray(schema.items))
    return {
      prefix: schema.items,
      rest: schema.additionalItems ?? true,
      restKey: 'additionalItems',
      declared: schema.additionalItems !== undefined,
    };
  return {
    prefix: Array.isArray(schema.prefixItems) ? schema.prefixItems : [],
    rest: schema.items ?? true,
    restKey: 'items',
    declared: schema.items !== undefined,
  };
}

function hasDefault(schema: unknown, root: JsonSchema): boolean {
  const resolved = resolveRefs(schema, root).schema;
  return isObject(resolved) && resolved.default !== undefined;
}

/**
 * Follows a schema's local `$ref` (`#/$defs/X`, any `#/...` pointer) through its root, keeping
 * the referencing schema's other keywords on top (2020-12 lets them sit beside `$ref`). Returns
 * the first ref followed (for the reported path) or the text of a ref it cannot follow.
 */
function resolveRefs(
  schema: unknown,
  root: JsonSchema,
): { schema: unknown; ref?: string; unresolved?: string } {
  let current = schema;
  let first: string | undefined;
  for (let hop = 0; hop < MAX_SCHEMA_COMPARE_DEPTH; hop++) {
    if (!isObject(current) || typeof current.$ref !== 'string')
      return { schema: current, ref: first };
    const ref = current.$ref;
    const target = ref.startsWith('#') ? pointerTarget(root, ref.slice(1)) : undefined;
    if (target === undefined) return { schema: current, unresolved: ref };
    first ??= ref;
    const { $ref: _followed, ...siblings } = current;
    current =
      Object.keys(siblings).length === 0
        ? target
        : isObject(target)
          ? { ...target, ...siblings }
          : target === false
            ? false
            : siblings;
  }
  return { schema: current, unresolved: first ?? '(a $ref chain)' };
}

function pointerTarget(root: unknown, pointer: string): unknown {
  if (pointer === '') return root;
  if (!pointer.startsWith('/')) return undefined; // an anchor (#name): not followed
  let current = root;
  for (const raw of pointer.slice(1).split('/')) {
    let token: string;
    try {
      token = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    } catch {
      return undefined;
    }
    if (Array.isArray(current)) current = current[Number(token)];
    else if (isObject(current) && Object.hasOwn(current, token)) current = current[token];
    else return undefined;
    if (current === undefined) return undefined;
  }
  return current;
}
