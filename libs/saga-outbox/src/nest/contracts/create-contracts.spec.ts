import { InvalidOptionsError } from '../../core/errors';
import { ContractViolationError } from '../../core/contracts/contract-errors';
import {
  DATASCHEMA_HEADER,
  dataschemaOf,
  defineContract,
} from '../../core/contracts/message-contract';
import { createContracts } from './create-contracts';

const V1 = defineContract({
  type: 'order.confirmed',
  version: 1,
  schema: {
    type: 'object',
    required: ['orderId', 'total'],
    properties: { orderId: { type: 'string', format: 'uuid' }, total: { type: 'number' } },
  },
});
const V2 = defineContract({
  type: 'order.confirmed',
  version: 2,
  schema: {
    type: 'object',
    required: ['orderId', 'amount'],
    properties: { orderId: { type: 'string', format: 'uuid' }, amount: { type: 'number' } },
  },
  upcast: (previous) => {
    const p = previous as { orderId: string; total: number };
    return { orderId: p.orderId, amount: p.total };
  },
});
const ORDER = '0190a5b4-7c3e-7def-8abc-0123456789ab';

it('builds the outgoing registry from `publishes`: checks with formats, names the version it wrote', () => {
  const { outgoing } = createContracts({ publishes: [V2] });
  const headers = outgoing.checkOutgoing(
    { type: V2.type, payload: { orderId: ORDER, amount: 10 }, headers: {} },
    0,
  );
  expect(headers).toEqual({ [DATASCHEMA_HEADER]: dataschemaOf(V2.type, 2) });
  expect(() =>
    outgoing.checkOutgoing(
      { type: V2.type, payload: { orderId: 'not-a-uuid', amount: 10 }, headers: {} },
      3,
    ),
  ).toThrow(ContractViolationError);
});

it('builds the incoming registry from `consumes`: upcasts an older version it accepts', () => {
  const { incoming, outgoing } = createContracts({ consumes: [V1, V2] });
  expect(
    incoming.checkIncoming({
      type: V1.type,
      payload: { orderId: ORDER, total: 7 },
      headers: { [DATASCHEMA_HEADER]: dataschemaOf(V1.type, 1) },
    }),
  ).toEqual({ ok: true, payload: { orderId: ORDER, amount: 7 }, version: 2, upcast: true });
  // Nothing published under contract: the type passes the outgoing side unchecked.
  expect(outgoing.latest(V1.type)).toBeUndefined();
});

it('refuses a bad option with the module option checks, naming it', () => {
  expect(() => createContracts(undefined as never)).toThrow(
    new InvalidOptionsError(
      'contracts',
      'must be an object { publishes?: MessageContract[], consumes?: MessageContract[] }',
    ),
  );
  expect(() => createContracts({ publishes: [V2, V2] })).toThrow(
    /contracts\["order\.confirmed"\] v2.*declared twice/,
  );
  expect(() => createContracts({ sends: [] } as never)).toThrow(/contracts\.sends/);
});
