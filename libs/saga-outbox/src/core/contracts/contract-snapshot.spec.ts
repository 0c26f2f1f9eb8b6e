import { InvalidOptionsError } from '../errors';
import {
  buildContractSnapshot,
  contractSnapshotText,
  diffContractSnapshots,
  parseContractSnapshot,
} from './contract-snapshot';
import type { MessageContract } from './message-contract';

const placedV1: MessageContract = {
  type: 'order.placed',
  version: 1,
  schema: {
    type: 'object',
    required: ['orderId', 'total'],
    properties: { total: { type: 'number' }, orderId: { type: 'string' } },
  },
};
const placedV2: MessageContract = {
  type: 'order.placed',
  version: 2,
  schema: {
    type: 'object',
    required: ['orderId', 'total'],
    properties: {
      orderId: { type: 'string' },
      total: { type: 'number' },
      currency: { type: 'string' },
    },
  },
};
const charge: MessageContract = {
  type: 'payment.charge',
  version: 1,
  kind: 'command',
  compatibility: 'full',
  schema: { type: 'object', properties: { amount: { type: 'number' } }, required: ['amount'] },
  reply: { type: 'object', properties: { chargeId: { type: 'string' } }, required: ['chargeId'] },
};

describe('buildContractSnapshot', () => {
  it('records each version with sorted keys and the default mode, whatever the declaration order', () => {
    const a = buildContractSnapshot([placedV2, charge, placedV1]);
    const b = buildContractSnapshot([placedV1, placedV2, charge]);
    expect(contractSnapshotText(a)).toBe(contractSnapshotText(b));
    expect(Object.keys(a.contracts)).toEqual(['order.placed', 'payment.charge']);
    expect(Object.keys(a.contracts['order.placed']!)).toEqual(['1', '2']);
    expect(a.contracts['order.placed']!['1']).toEqual({
      schema: placedV1.schema,
      compatibility: 'backward',
    });
    expect(Object.keys((a.contracts['order.placed']!['1']!.schema as object) ?? {})).toEqual([
      'properties',
      'required',
      'type',
    ]);
    expect(a.contracts['payment.charge']!['1']).toEqual({
      schema: charge.schema,
      reply: charge.reply,
      compatibility: 'full',
    });
    expect(contractSnapshotText(a).endsWith('}\n')).toBe(true);
  });

  it('refuses a version declared twice and an invalid contract, naming it', () => {
    expect(() => buildContractSnapshot([placedV1, placedV1])).toThrow(
      /contracts\["order.placed"\] v1.*declared twice/,
    );
    expect(() => buildContractSnapshot([{ ...placedV1, version: 0 } as MessageContract])).toThrow(
      InvalidOptionsError,
    );
  });
});

describe('parseContractSnapshot', () => {
  it('reads what buildContractSnapshot writes', () => {
    const snapshot = buildContractSnapshot([placedV1, charge]);
    const parsed = parseContractSnapshot(JSON.parse(contractSnapshotText(snapshot)));
    expect(parsed).toEqual({ ok: true, snapshot });
  });

  it.each([
    [{}, /not a Sage contracts snapshot/],
    [{ format: 'sage.contracts.v9', contracts: {} }, /not a Sage contracts snapshot/],
    [{ format: 'sage.contracts.v1' }, /no "contracts"/],
    [{ format: 'sage.contracts.v1', contracts: { a: { x: {} } } }, /integer >= 1/],
    [{ format: 'sage.contracts.v1', contracts: { a: { 1: { schema: 3 } } } }, /"schema"/],
    [
      { format: 'sage.contracts.v1', contracts: { a: { 1: { schema: {}, compatibility: 'x' } } } },
      /"compatibility"/,
    ],
  ])('refuses %j', (value, problem) => {
    const parsed = parseContractSnapshot(value);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.problem).toMatch(problem);
  });
});

describe('diffContractSnapshots', () => {
  const published = buildContractSnapshot([placedV1, charge]);

  it('is compatible when nothing changed', () => {
    expect(diffContractSnapshots(published, buildContractSnapshot([charge, placedV1]))).toEqual({
      compatible: true,
      changes: [],
    });
  });

  it('accepts an additive new version and reports it, checked against the previous one', () => {
    const diff = diffContractSnapshots(
      published,
      buildContractSnapshot([placedV1, placedV2, charge]),
    );
    expect(diff.compatible).toBe(true);
    expect(diff.changes).toEqual([
      {
        type: 'order.placed',
        version: 2,
        path: '',
        change: 'new version 2, checked against version 1 (backward)',
        breaking: false,
      },
      {
        type: 'order.placed',
        version: 2,
        schema: 'schema',
        path: '/properties/currency',
        change: 'added optional field (vs version 1)',
        breaking: false,
      },
    ]);
  });

  it('fails a new version that breaks its mode, naming the path', () => {
    const v2: MessageContract = {
      ...placedV2,
      schema: { ...(placedV2.schema as object), required: ['orderId', 'total', 'currency'] },
    };
    const diff = diffContractSnapshots(published, buildContractSnapshot([placedV1, v2, charge]));
    expect(diff.compatible).toBe(false);
    expect(diff.changes.filter((c) => c.breaking)).toEqual([
      expect.objectContaining({
        type: 'order.placed',
        version: 2,
        schema: 'schema',
        path: '/properties/currency',
      }),
    ]);
  });

  it('a new version with an upcast from the previous one: backward changes are covered, forward ones still count under full', () => {
    const reshaped = {
      type: 'object',
      required: ['orderId', 'amount'],
      properties: {
        orderId: { type: 'string' },
        amount: {
          type: 'object',
          required: ['minor', 'currency'],
          properties: { minor: { type: 'integer' }, currency: { type: 'string' } },
        },
      },
    };
    const upcast = (p: unknown) => p as never;
    const v2: MessageContract = { ...placedV2, schema: reshaped, upcast };
    const withoutUpcast: MessageContract = { ...placedV2, schema: reshaped };
    expect(buildContractSnapshot([placedV1, v2]).contracts['order.placed']!['2']!.upcast).toBe(
      true,
    );
    expect(
      diffContractSnapshots(published, buildContractSnapshot([placedV1, withoutUpcast, charge]))
        .compatible,
    ).toBe(false);
    const covered = diffContractSnapshots(published, buildContractSnapshot([placedV1, v2, charge]));
    expect(covered.compatible).toBe(true);
    expect(covered.changes).toContainEqual(
      expect.objectContaining({ change: expect.stringMatching(/upcast to version 2/) }),
    );
    const full = diffContractSnapshots(
      published,
      buildContractSnapshot([placedV1, { ...v2, compatibility: 'full' }, charge]),
    );
    expect(full.compatible).toBe(false);
  });

  it("checks a new version's reply under its mode", () => {
    const v2: MessageContract = {
      ...charge,
      version: 2,
      reply: {
        type: 'object',
        properties: { chargeId: { type: 'integer' } },
        required: ['chargeId'],
      },
    };
    const diff = diffContractSnapshots(published, buildContractSnapshot([placedV1, charge, v2]));
    expect(diff.changes.filter((c) => c.breaking)).toEqual([
      expect.objectContaining({ schema: 'reply', path: '/properties/chargeId/type', version: 2 }),
    ]);
  });

  it('fails any change to a published version, even a non-breaking one', () => {
    const edited: MessageContract = {
      ...placedV1,
      schema: {
        ...(placedV1.schema as object),
        properties: {
          orderId: { type: 'string' },
          total: { type: 'number' },
          note: { type: 'string' },
        },
      },
    };
    const diff = diffContractSnapshots(published, buildContractSnapshot([edited, charge]));
    expect(diff.compatible).toBe(false);
    expect(diff.changes).toEqual([
      {
        type: 'order.placed',
        version: 1,
        schema: 'schema',
        path: '/properties/note',
        change:
          'version 1 is published and cannot change (declare version 2 instead): added optional field',
        breaking: true,
      },
    ]);
  });

  it('fails a removed version or type, unless removals are allowed', () => {
    const current = buildContractSnapshot([placedV2]);
    const strict = diffContractSnapshots(
      buildContractSnapshot([placedV1, placedV2, charge]),
      current,
    );
    expect(strict.compatible).toBe(false);
    expect(strict.changes.filter((c) => c.breaking).map((c) => [c.type, c.version])).toEqual([
      ['order.placed', 1],
      ['payment.charge', undefined],
    ]);
    const allowed = diffContractSnapshots(
      buildContractSnapshot([placedV1, placedV2, charge]),
      current,
      { allowRemovals: true },
    );
    expect(allowed.compatible).toBe(true);
    expect(allowed.changes).toHaveLength(2);
  });

  it('reports a new type without failing', () => {
    const diff = diffContractSnapshots(
      buildContractSnapshot([placedV1]),
      buildContractSnapshot([placedV1, charge]),
    );
    expect(diff).toEqual({
      compatible: true,
      changes: [
        { type: 'payment.charge', path: '', change: 'new type (versions 1)', breaking: false },
      ],
    });
  });

  it("uses the new version's own mode: none lets anything through", () => {
    const v2: MessageContract = { ...placedV2, compatibility: 'none', schema: { type: 'string' } };
    const diff = diffContractSnapshots(published, buildContractSnapshot([placedV1, v2, charge]));
    expect(diff.compatible).toBe(true);
    expect(diff.changes.length).toBeGreaterThan(1);
  });
});
