import { randomUUID } from 'node:crypto';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { InvalidOptionsError } from '../errors';
import type { JsonValue } from '../json';
import { ajvSchemaCompiler } from './ajv-schema-compiler';
import { ContractViolationError } from './contract-errors';
import { ContractRegistry } from './contract-registry';
import { DATASCHEMA_HEADER, dataschemaOf, type MessageContract } from './message-contract';

const compiler = () =>
  ajvSchemaCompiler(() => ({
    Ajv2020: Ajv2020 as never,
    addFormats: addFormats as never,
  }));

const V1: MessageContract = {
  type: 'order.confirmed',
  version: 1,
  schema: {
    type: 'object',
    required: ['orderId', 'total'],
    properties: { orderId: { type: 'string' }, total: { type: 'number' } },
  },
};
const V2: MessageContract = {
  type: 'order.confirmed',
  version: 2,
  schema: {
    type: 'object',
    required: ['orderId', 'amount'],
    properties: {
      orderId: { type: 'string' },
      amount: {
        type: 'object',
        required: ['value', 'currency'],
        properties: { value: { type: 'number' }, currency: { type: 'string', minLength: 3 } },
      },
    },
  },
  upcast: (previous) => {
    const p = previous as { orderId: string; total: number };
    return { orderId: p.orderId, amount: { value: p.total, currency: 'EUR' } };
  },
};
/** A value that must never be echoed in an error: made at run time. */
const SECRET_LOOKING = `never-in-errors-${randomUUID()}`;

const registry = (contracts: readonly MessageContract[]) =>
  new ContractRegistry(contracts, compiler());
const message = (payload: JsonValue, headers: Record<string, string> = {}) => ({
  type: 'order.confirmed',
  payload,
  headers,
});

describe('ContractRegistry outgoing', () => {
  const contracts = registry([V1, V2]);

  it('accepts a valid payload against the newest version and names it in ce-dataschema', () => {
    const headers = contracts.checkOutgoing(
      message({ orderId: 'o-1', amount: { value: 5, currency: 'EUR' } }, { a: 'b' }),
      0,
    );
    expect(headers).toEqual({ a: 'b', [DATASCHEMA_HEADER]: dataschemaOf('order.confirmed', 2) });
  });

  it('refuses an invalid payload naming the type, the version and the path, never the value', () => {
    let error: unknown;
    try {
      contracts.checkOutgoing(
        message({ orderId: SECRET_LOOKING, amount: { value: SECRET_LOOKING, currency: 'EUR' } }),
        3,
      );
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ContractViolationError);
    const violation = error as ContractViolationError;
    expect(violation.code).toBe('CONTRACT_VIOLATION');
    expect(violation.message).toContain('#3 of type "order.confirmed"');
    expect(violation.message).toContain('(version 2)');
    expect(violation.message).toContain('/amount/value must be number');
    expect(violation.message).not.toContain(SECRET_LOOKING);
    expect(violation.errors).toEqual([{ path: '/amount/value', message: 'must be number' }]);
  });

  it('checks an older version named explicitly in the ce-dataschema header', () => {
    const v1 = { [DATASCHEMA_HEADER]: dataschemaOf('order.confirmed', 1) };
    expect(contracts.checkOutgoing(message({ orderId: 'o-1', total: 5 }, v1), 0)).toEqual(v1);
    expect(() =>
      contracts.checkOutgoing(
        message({ orderId: 'o-1', amount: { value: 5, currency: 'EUR' } }, v1),
        0,
      ),
    ).toThrow(/version 1\).*\(payload\) must have required property 'total'/);
  });

  it('refuses at publish a version that is not declared', () => {
    expect(() =>
      contracts.checkOutgoing(
        message({ orderId: 'o-1' }, { [DATASCHEMA_HEADER]: dataschemaOf('order.confirmed', 7) }),
        0,
      ),
    ).toThrow(/not a version of this type's contract \(v1, v2\)/);
  });

  it('lets types without a contract pass, headers untouched', () => {
    expect(
      contracts.checkOutgoing({ type: 'other', payload: { x: 1 }, headers: { h: 'v' } }, 0),
    ).toEqual({ h: 'v' });
  });
});

describe('ContractRegistry incoming', () => {
  const contracts = registry([V1, V2]);

  it('checks a message without ce-dataschema against the newest version', () => {
    expect(
      contracts.checkIncoming(message({ orderId: 'o-1', amount: { value: 5, currency: 'EUR' } })),
    ).toEqual({
      ok: true,
      payload: { orderId: 'o-1', amount: { value: 5, currency: 'EUR' } },
      version: 2,
      upcast: false,
    });
    expect(contracts.checkIncoming(message({ orderId: 'o-1', total: 5 }))).toMatchObject({
      ok: false,
      reason: 'contract-invalid',
    });
  });

  it('upcasts a v1 message to v2', () => {
    const received = message(
      { orderId: 'o-1', total: 5 },
      { [DATASCHEMA_HEADER]: dataschemaOf('order.confirmed', 1) },
    );
    expect(contracts.checkIncoming(received)).toEqual({
      ok: true,
      payload: { orderId: 'o-1', amount: { value: 5, currency: 'EUR' } },
      version: 2,
      upcast: true,
    });
    // The delivered message itself is not changed.
    expect(received.payload).toEqual({ orderId: 'o-1', total: 5 });
  });

  it('refuses a v1 message that does not match v1, naming the path', () => {
    const check = contracts.checkIncoming(
      message(
        { orderId: 42, total: 5 },
        { [DATASCHEMA_HEADER]: dataschemaOf('order.confirmed', 1) },
      ),
    );
    expect(check).toEqual({
      ok: false,
      reason: 'contract-invalid',
      detail: '"order.confirmed" does not match its contract (version 1): /orderId must be string',
    });
  });

  it('refuses a message whose upcast output does not match the next version', () => {
    const broken = registry([
      V1,
      { ...V2, upcast: (p) => ({ orderId: (p as { orderId: string }).orderId }) },
    ]);
    expect(
      broken.checkIncoming(
        message(
          { orderId: 'o-1', total: 5 },
          { [DATASCHEMA_HEADER]: dataschemaOf('order.confirmed', 1) },
        ),
      ),
    ).toMatchObject({
      ok: false,
      reason: 'contract-invalid',
      detail: expect.stringContaining('upcast to version 2 does not match that version') as string,
    });
  });

  it('refuses a version the consumer does not accept', () => {
    const check = registry([V2]).checkIncoming(
      message(
        { orderId: 'o-1', total: 5 },
        { [DATASCHEMA_HEADER]: dataschemaOf('order.confirmed', 1) },
      ),
    );
    expect(check).toMatchObject({ ok: false, reason: 'contract-version-unknown' });
    expect(!check.ok && check.detail).toContain('version 1 is not among the versions');
  });

  it('lets types without a contract pass', () => {
    expect(contracts.checkIncoming({ type: 'other', payload: 1, headers: {} })).toEqual({
      ok: true,
      payload: 1,
      version: undefined,
      upcast: false,
    });
  });
});

describe('ContractRegistry reply results', () => {
  const command: MessageContract = {
    type: 'payment.authorize',
    version: 1,
    kind: 'command',
    schema: { type: 'object' },
    reply: {
      type: 'object',
      required: ['authorizationId'],
      properties: { authorizationId: { type: 'string' } },
    },
  };
  const contracts = registry([command]);

  it('checks a success result against the command contract reply schema', () => {
    expect(() =>
      contracts.checkReplyResult('payment.authorize', { authorizationId: 'a-1' }),
    ).not.toThrow();
    expect(() => contracts.checkReplyResult('payment.authorize', { id: 1 })).toThrow(
      /reply result \(payload\) must have required property 'authorizationId'/,
    );
    expect(contracts.replyResultRefusal('payment.authorize', null)).toMatchObject({
      reason: 'contract-invalid',
    });
    expect(contracts.replyResultRefusal('other', null)).toBeUndefined();
  });
});

describe('ContractRegistry at startup', () => {
  it('refuses a version declared twice', () => {
    expect(() => registry([V1, V1])).toThrow(InvalidOptionsError);
    expect(() => registry([V1, V1])).toThrow(/contracts\["order.confirmed"\] v1.*declared twice/);
  });

  it('refuses a schema with a typo (strict mode), naming the contract', () => {
    const typo: MessageContract = {
      type: 'order.shipped',
      version: 1,
      schema: { type: 'object', requird: ['orderId'] },
    };
    expect(() => registry([typo])).toThrow(InvalidOptionsError);
    expect(() => registry([typo])).toThrow(
      /contracts\["order.shipped"\] v1.schema.*not a valid JSON Schema.*requird/,
    );
  });
});
