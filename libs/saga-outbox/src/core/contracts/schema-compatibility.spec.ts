import type { CompatibilityMode, JsonSchema } from './message-contract';
import { compareSchemas, MAX_SCHEMA_COMPARE_DEPTH } from './schema-compatibility';

/** An object schema with `properties`, `required` and optional extra keywords. */
function object(
  properties: Record<string, JsonSchema>,
  required: string[] = [],
  extra: Record<string, unknown> = {},
): JsonSchema {
  return { type: 'object', properties, required, ...extra };
}

const ORDER = object(
  {
    id: { type: 'string' },
    total: { type: 'number', minimum: 0 },
    note: { type: 'string' },
  },
  ['id', 'total'],
);

const withProps = (props: Record<string, JsonSchema>, required = ['id', 'total']): JsonSchema =>
  object({ id: { type: 'string' }, total: { type: 'number', minimum: 0 }, ...props }, required);

const STATUS = (values: string[]): JsonSchema => object({ status: { enum: values } }, ['status']);

const REFS = (customer: JsonSchema): JsonSchema => ({
  type: 'object',
  properties: { customer: { $ref: '#/$defs/Customer' } },
  required: ['customer'],
  $defs: { Customer: customer },
});

type Verdict = 'compatible' | 'breaking';
/** [rule, previous, next, mode, verdict, path of a breaking change (when breaking)] */
type Row = [string, JsonSchema, JsonSchema, CompatibilityMode, Verdict, string?];

const ROWS: Row[] = [
  // identical and mode none
  ['identical schemas', ORDER, ORDER, 'full', 'compatible'],
  [
    'identical, keys in another order',
    ORDER,
    {
      required: ['id', 'total'],
      properties: (ORDER as { properties: object }).properties,
      type: 'object',
    },
    'full',
    'compatible',
  ],
  ['mode none: anything goes', ORDER, { type: 'string' }, 'none', 'compatible'],
  // added fields
  [
    'added optional field, backward',
    ORDER,
    withProps({ note: { type: 'string' }, tag: { type: 'string' } }),
    'backward',
    'compatible',
  ],
  [
    'added optional field, forward',
    ORDER,
    withProps({ note: { type: 'string' }, tag: { type: 'string' } }),
    'forward',
    'compatible',
  ],
  [
    'added optional field, full',
    ORDER,
    withProps({ note: { type: 'string' }, tag: { type: 'string' } }),
    'full',
    'compatible',
  ],
  [
    'added required field without default, backward',
    ORDER,
    withProps({ note: { type: 'string' }, tag: { type: 'string' } }, ['id', 'total', 'tag']),
    'backward',
    'breaking',
    '/properties/tag',
  ],
  [
    'added required field without default, forward',
    ORDER,
    withProps({ note: { type: 'string' }, tag: { type: 'string' } }, ['id', 'total', 'tag']),
    'forward',
    'compatible',
  ],
  [
    'added required field with default, backward',
    ORDER,
    withProps({ note: { type: 'string' }, tag: { type: 'string', default: 'none' } }, [
      'id',
      'total',
      'tag',
    ]),
    'backward',
    'compatible',
  ],
  [
    'added required field with default, full',
    ORDER,
    withProps({ note: { type: 'string' }, tag: { type: 'string', default: 'none' } }, [
      'id',
      'total',
      'tag',
    ]),
    'full',
    'compatible',
  ],
  [
    'added field to a closed schema, forward',
    object({ id: { type: 'string' } }, ['id'], { additionalProperties: false }),
    object({ id: { type: 'string' }, tag: { type: 'string' } }, ['id'], {
      additionalProperties: false,
    }),
    'forward',
    'breaking',
    '/properties/tag',
  ],
  [
    'added field to a closed schema, backward',
    object({ id: { type: 'string' } }, ['id'], { additionalProperties: false }),
    object({ id: { type: 'string' }, tag: { type: 'string' } }, ['id'], {
      additionalProperties: false,
    }),
    'backward',
    'compatible',
  ],
  [
    'optional field made required without default, backward',
    ORDER,
    withProps({ note: { type: 'string' } }, ['id', 'total', 'note']),
    'backward',
    'breaking',
    '/properties/note',
  ],
  [
    'optional field made required, forward',
    ORDER,
    withProps({ note: { type: 'string' } }, ['id', 'total', 'note']),
    'forward',
    'compatible',
  ],
  // removed fields
  ['removed optional field, backward', ORDER, withProps({}), 'backward', 'compatible'],
  ['removed optional field, forward', ORDER, withProps({}), 'forward', 'compatible'],
  [
    'removed optional field, new schema closed, backward',
    ORDER,
    object({ id: { type: 'string' }, total: { type: 'number', minimum: 0 } }, ['id', 'total'], {
      additionalProperties: false,
    }),
    'backward',
    'breaking',
    '/properties/note',
  ],
  [
    'removed required field, backward',
    ORDER,
    object({ id: { type: 'string' }, note: { type: 'string' } }, ['id']),
    'backward',
    'breaking',
    '/properties/total',
  ],
  [
    'removed required field, forward',
    ORDER,
    object({ id: { type: 'string' }, note: { type: 'string' } }, ['id']),
    'forward',
    'breaking',
    '/properties/total',
  ],
  [
    'required field made optional, forward',
    ORDER,
    withProps({ note: { type: 'string' } }, ['id']),
    'forward',
    'breaking',
    '/properties/total',
  ],
  [
    'required field made optional, backward',
    ORDER,
    withProps({ note: { type: 'string' } }, ['id']),
    'backward',
    'breaking',
    '/properties/total',
  ],
  // retyped and type unions
  [
    'retyped required field, backward',
    ORDER,
    withProps({ note: { type: 'string' }, total: { type: 'string' } }),
    'backward',
    'breaking',
    '/properties/total/type',
  ],
  [
    'retyped required field, forward',
    ORDER,
    withProps({ note: { type: 'string' }, total: { type: 'string' } }),
    'forward',
    'breaking',
    '/properties/total/type',
  ],
  [
    'widened type union, backward',
    object({ n: { type: 'string' } }),
    object({ n: { type: ['string', 'null'] } }),
    'backward',
    'compatible',
  ],
  [
    'widened type union, forward',
    object({ n: { type: 'string' } }),
    object({ n: { type: ['string', 'null'] } }),
    'forward',
    'breaking',
    '/properties/n/type',
  ],
  [
    'narrowed type union, backward',
    object({ n: { type: ['string', 'null'] } }),
    object({ n: { type: 'string' } }),
    'backward',
    'breaking',
    '/properties/n/type',
  ],
  [
    'narrowed type union, forward',
    object({ n: { type: ['string', 'null'] } }),
    object({ n: { type: 'string' } }),
    'forward',
    'compatible',
  ],
  [
    'integer widened to number, backward',
    object({ n: { type: 'integer' } }),
    object({ n: { type: 'number' } }),
    'backward',
    'compatible',
  ],
  [
    'number narrowed to integer, backward',
    object({ n: { type: 'number' } }),
    object({ n: { type: 'integer' } }),
    'backward',
    'breaking',
    '/properties/n/type',
  ],
  // enums and const
  [
    'widened enum, backward',
    STATUS(['new', 'paid']),
    STATUS(['new', 'paid', 'shipped']),
    'backward',
    'compatible',
  ],
  [
    'widened enum, forward',
    STATUS(['new', 'paid']),
    STATUS(['new', 'paid', 'shipped']),
    'forward',
    'breaking',
    '/properties/status/enum',
  ],
  [
    'narrowed enum, backward',
    STATUS(['new', 'paid']),
    STATUS(['new']),
    'backward',
    'breaking',
    '/properties/status/enum',
  ],
  ['narrowed enum, forward', STATUS(['new', 'paid']), STATUS(['new']), 'forward', 'compatible'],
  [
    'enum value swapped, full',
    STATUS(['new', 'paid']),
    STATUS(['new', 'settled']),
    'full',
    'breaking',
    '/properties/status/enum',
  ],
  [
    'const changed, backward',
    object({ v: { const: 1 } }),
    object({ v: { const: 2 } }),
    'backward',
    'breaking',
    '/properties/v/const',
  ],
  [
    'const widened to enum, backward',
    object({ v: { const: 1 } }),
    object({ v: { enum: [1, 2] } }),
    'backward',
    'compatible',
  ],
  // bounds and pattern
  [
    'tightened minimum, backward',
    ORDER,
    withProps({ note: { type: 'string' }, total: { type: 'number', minimum: 1 } }),
    'backward',
    'breaking',
    '/properties/total/minimum',
  ],
  [
    'tightened minimum, forward',
    ORDER,
    withProps({ note: { type: 'string' }, total: { type: 'number', minimum: 1 } }),
    'forward',
    'compatible',
  ],
  [
    'loosened minimum, backward',
    ORDER,
    withProps({ note: { type: 'string' }, total: { type: 'number' } }),
    'backward',
    'compatible',
  ],
  [
    'loosened minimum, forward',
    ORDER,
    withProps({ note: { type: 'string' }, total: { type: 'number' } }),
    'forward',
    'breaking',
    '/properties/total/minimum',
  ],
  [
    'added maxLength, backward',
    object({ s: { type: 'string' } }),
    object({ s: { type: 'string', maxLength: 10 } }),
    'backward',
    'breaking',
    '/properties/s/maxLength',
  ],
  [
    'raised maxLength, backward',
    object({ s: { type: 'string', maxLength: 10 } }),
    object({ s: { type: 'string', maxLength: 20 } }),
    'backward',
    'compatible',
  ],
  [
    'lowered maximum, full',
    object({ n: { type: 'number', maximum: 10 } }),
    object({ n: { type: 'number', maximum: 5 } }),
    'full',
    'breaking',
    '/properties/n/maximum',
  ],
  [
    'added pattern, backward',
    object({ s: { type: 'string' } }),
    object({ s: { type: 'string', pattern: '^[a-z]+$' } }),
    'backward',
    'breaking',
    '/properties/s/pattern',
  ],
  [
    'removed pattern, backward',
    object({ s: { type: 'string', pattern: '^[a-z]+$' } }),
    object({ s: { type: 'string' } }),
    'backward',
    'compatible',
  ],
  [
    'removed pattern, forward',
    object({ s: { type: 'string', pattern: '^[a-z]+$' } }),
    object({ s: { type: 'string' } }),
    'forward',
    'breaking',
    '/properties/s/pattern',
  ],
  [
    'changed pattern, backward (undecidable)',
    object({ s: { type: 'string', pattern: '^[a-z]+$' } }),
    object({ s: { type: 'string', pattern: '^[a-z0-9]+$' } }),
    'backward',
    'breaking',
    '/properties/s/pattern',
  ],
  // additionalProperties
  [
    'additionalProperties true → false, backward',
    object({ a: { type: 'string' } }),
    object({ a: { type: 'string' } }, [], { additionalProperties: false }),
    'backward',
    'breaking',
    '/additionalProperties',
  ],
  [
    'additionalProperties true → false, forward',
    object({ a: { type: 'string' } }),
    object({ a: { type: 'string' } }, [], { additionalProperties: false }),
    'forward',
    'compatible',
  ],
  [
    'additionalProperties false → true, backward',
    object({ a: { type: 'string' } }, [], { additionalProperties: false }),
    object({ a: { type: 'string' } }),
    'backward',
    'compatible',
  ],
  [
    'additionalProperties false → true, forward',
    object({ a: { type: 'string' } }, [], { additionalProperties: false }),
    object({ a: { type: 'string' } }),
    'forward',
    'breaking',
    '/additionalProperties',
  ],
  // nested objects and arrays
  [
    'nested required field added, backward',
    object({ customer: object({ id: { type: 'string' } }, ['id']) }),
    object({
      customer: object({ id: { type: 'string' }, email: { type: 'string' } }, ['id', 'email']),
    }),
    'backward',
    'breaking',
    '/properties/customer/properties/email',
  ],
  [
    'nested optional field added, full',
    object({ customer: object({ id: { type: 'string' } }, ['id']) }),
    object({ customer: object({ id: { type: 'string' }, email: { type: 'string' } }, ['id']) }),
    'full',
    'compatible',
  ],
  [
    'array items retyped, backward',
    object({ tags: { type: 'array', items: { type: 'string' } } }),
    object({ tags: { type: 'array', items: { type: 'integer' } } }),
    'backward',
    'breaking',
    '/properties/tags/items/type',
  ],
  [
    'array items widened, backward',
    object({ tags: { type: 'array', items: { type: 'string' } } }),
    object({ tags: { type: 'array', items: { type: ['string', 'number'] } } }),
    'backward',
    'compatible',
  ],
  [
    'array item objects gain a required field, backward',
    object({ lines: { type: 'array', items: object({ sku: { type: 'string' } }, ['sku']) } }),
    object({
      lines: {
        type: 'array',
        items: object({ sku: { type: 'string' }, qty: { type: 'integer' } }, ['sku', 'qty']),
      },
    }),
    'backward',
    'breaking',
    '/properties/lines/items/properties/qty',
  ],
  [
    'minItems added, backward',
    object({ tags: { type: 'array' } }),
    object({ tags: { type: 'array', minItems: 1 } }),
    'backward',
    'breaking',
    '/properties/tags/minItems',
  ],
  [
    'prefixItems entry retyped, backward',
    { type: 'array', prefixItems: [{ type: 'string' }, { type: 'number' }] },
    { type: 'array', prefixItems: [{ type: 'string' }, { type: 'string' }] },
    'backward',
    'breaking',
    '/prefixItems/1/type',
  ],
  [
    'prefixItems entry added over open items, forward',
    { type: 'array', prefixItems: [{ type: 'string' }] },
    { type: 'array', prefixItems: [{ type: 'string' }, { type: 'number' }] },
    'forward',
    'compatible',
  ],
  [
    'prefixItems entry added over open items, backward',
    { type: 'array', prefixItems: [{ type: 'string' }] },
    { type: 'array', prefixItems: [{ type: 'string' }, { type: 'number' }] },
    'backward',
    'breaking',
    '/prefixItems/1/type',
  ],
  // $ref'd definitions
  [
    '$ref target gains an optional field, full',
    REFS(object({ id: { type: 'string' } }, ['id'])),
    REFS(object({ id: { type: 'string' }, name: { type: 'string' } }, ['id'])),
    'full',
    'compatible',
  ],
  [
    '$ref target field retyped, backward',
    REFS(object({ id: { type: 'string' } }, ['id'])),
    REFS(object({ id: { type: 'integer' } }, ['id'])),
    'backward',
    'breaking',
    '/$defs/Customer/properties/id/type',
  ],
  [
    '$ref inlined with the same shape, full',
    REFS(object({ id: { type: 'string' } }, ['id'])),
    object({ customer: object({ id: { type: 'string' } }, ['id']) }, ['customer']),
    'full',
    'compatible',
  ],
  [
    'recursive $ref unchanged, full',
    { $ref: '#/$defs/Node', $defs: { Node: object({ next: { $ref: '#/$defs/Node' } }) } },
    { $ref: '#/$defs/Node', $defs: { Node: object({ next: { $ref: '#/$defs/Node' } }) } },
    'full',
    'compatible',
  ],
  [
    'recursive $ref gains a required field, backward',
    { $ref: '#/$defs/Node', $defs: { Node: object({ next: { $ref: '#/$defs/Node' } }) } },
    {
      $ref: '#/$defs/Node',
      $defs: { Node: object({ next: { $ref: '#/$defs/Node' }, v: { type: 'string' } }, ['v']) },
    },
    'backward',
    'breaking',
    '/$defs/Node/properties/v',
  ],
  [
    'unresolvable $ref changed, backward',
    object({ a: { $ref: 'https://example.com/a.json' } }),
    object({ a: { $ref: 'https://example.com/b.json' } }),
    'backward',
    'breaking',
    '/properties/a',
  ],
  // compositions: identity only
  [
    'oneOf identical, full',
    object({ p: { oneOf: [{ type: 'string' }, { type: 'integer' }] } }),
    object({ p: { oneOf: [{ type: 'string' }, { type: 'integer' }] } }),
    'full',
    'compatible',
  ],
  [
    'oneOf branch widened, backward (breaking: identity only)',
    object({ p: { oneOf: [{ type: 'string' }, { type: 'integer' }] } }),
    object({ p: { oneOf: [{ type: 'string' }, { type: 'number' }] } }),
    'backward',
    'breaking',
    '/properties/p/oneOf',
  ],
  [
    'anyOf branch added, forward',
    object({ p: { anyOf: [{ type: 'string' }] } }),
    object({ p: { anyOf: [{ type: 'string' }, { type: 'null' }] } }),
    'forward',
    'breaking',
    '/properties/p/anyOf',
  ],
  [
    'oneOf description edited only, full',
    object({ p: { oneOf: [{ type: 'string', description: 'a' }] } }),
    object({ p: { oneOf: [{ type: 'string', description: 'b' }] } }),
    'full',
    'compatible',
  ],
  // annotations and keywords not analysed
  [
    'description and default edited, full',
    object({ a: { type: 'string', description: 'x', default: 'a' } }),
    object({ a: { type: 'string', description: 'y', default: 'b' } }),
    'full',
    'compatible',
  ],
  [
    'unanalysed keyword changed, backward',
    object({}, [], { patternProperties: { '^x': { type: 'string' } } }),
    object({}, [], { patternProperties: { '^x': { type: 'number' } } }),
    'backward',
    'breaking',
    '/patternProperties',
  ],
  ['boolean schema true → false, backward', true, false, 'backward', 'breaking', ''],
  ['boolean schema false → object, backward', false, { type: 'string' }, 'backward', 'compatible'],
  ['any → string, forward', true, { type: 'string' }, 'forward', 'compatible'],
  ['any → string, backward', true, { type: 'string' }, 'backward', 'breaking', '/type'],
];

describe('compareSchemas', () => {
  // One argument per row: a test function with more parameters than a row has values would be
  // given jest's `done` callback.
  it.each(ROWS.map((row) => [row[0], row] as const))('%s', (_rule, row) => {
    const [, previous, next, mode, verdict, path] = row;
    const result = compareSchemas(previous, next, mode);
    expect(result.compatible ? 'compatible' : 'breaking').toBe(verdict);
    const breaking = result.changes.filter((c) => c.breaking);
    if (verdict === 'breaking') {
      expect(breaking.map((c) => c.path)).toContain(path);
      for (const c of breaking) expect(c.change).not.toBe('');
    } else {
      expect(breaking).toEqual([]);
    }
  });

  it('has a row per rule in both directions', () => {
    expect(ROWS.length).toBeGreaterThanOrEqual(30);
    expect(new Set(ROWS.map((r) => r[0])).size).toBe(ROWS.length);
  });

  it('lists non-breaking changes too, with their path and text', () => {
    const result = compareSchemas(STATUS(['new']), STATUS(['new', 'paid']), 'backward');
    expect(result).toEqual({
      compatible: true,
      changes: [
        { path: '/properties/status/enum', change: 'enum widened: added "paid"', breaking: false },
      ],
    });
  });

  it('names the types of a retyped field', () => {
    const [change] = compareSchemas(
      object({ total: { type: 'number' } }, ['total']),
      object({ total: { type: 'string' } }, ['total']),
      'backward',
    ).changes;
    expect(change).toEqual({
      path: '/properties/total/type',
      change: 'retyped: "number" → "string"',
      breaking: true,
    });
  });

  it('reports a change under a $ref once, however often the definition is used', () => {
    const schema = (idType: string): JsonSchema => ({
      type: 'object',
      properties: { from: { $ref: '#/$defs/Party' }, to: { $ref: '#/$defs/Party' } },
      $defs: { Party: object({ id: { type: idType } }, ['id']) },
    });
    const result = compareSchemas(schema('string'), schema('integer'), 'backward');
    expect(result.changes.filter((c) => c.path === '/$defs/Party/properties/id/type')).toHaveLength(
      1,
    );
  });

  it('stops at the depth limit with a breaking change instead of overflowing the stack', () => {
    const deep = (leaf: JsonSchema): JsonSchema => {
      let schema = leaf;
      for (let i = 0; i < MAX_SCHEMA_COMPARE_DEPTH + 10; i++) schema = object({ a: schema });
      return schema;
    };
    expect(compareSchemas(deep({ type: 'string' }), deep({ type: 'string' }), 'full')).toEqual({
      compatible: true,
      changes: [],
    });
    const result = compareSchemas(deep({ type: 'string' }), deep({ type: 'number' }), 'backward');
    expect(result.compatible).toBe(false);
    expect(result.changes.some((c) => /deeper than/.test(c.change))).toBe(true);
  });

  it('in mode none lists the changes, none breaking', () => {
    const result = compareSchemas(ORDER, { type: 'string' }, 'none');
    expect(result.compatible).toBe(true);
    expect(result.changes.length).toBeGreaterThan(0);
    expect(result.changes.every((c) => !c.breaking)).toBe(true);
  });
});
