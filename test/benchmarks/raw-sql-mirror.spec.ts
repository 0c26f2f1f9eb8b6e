/**
 * The benchmarks' raw ceilings keep their own copy of the statements the library sends
 * (benchmarks/harness/raw-sql.ts), so that they use the package only through its public entry
 * points. The comparison is fair only while the copies equal the library's statements: text,
 * parameters and addressed tables, for the default schema and another one.
 */
import * as raw from '../../benchmarks/harness/raw-sql';
import * as outbox from '../../libs/saga-outbox/src/persistence/postgres/outbox-queries.sql';
import { outboxTables } from '../../libs/saga-outbox/src/persistence/postgres/outbox-tables';
import * as saga from '../../libs/saga-outbox/src/persistence/postgres/saga-queries.sql';
import { sagaSchema } from '../../libs/saga-outbox/src/persistence/postgres/schema-name';

const same = (a: { text: string; values: readonly unknown[] }) => ({
  text: a.text,
  values: a.values,
});

describe.each(['sage', 'payment_sage'])('raw-sql.ts mirrors the library (schema %s)', (name) => {
  const bench = raw.benchTables(name);
  const schema = sagaSchema(name);
  const tables = outboxTables(schema);
  const id = '0190f5c0-0000-7000-8000-000000000001';

  it('names the same tables and NOTIFY channel', () => {
    expect(bench.outboxMessage).toBe(tables.outboxMessage);
    expect(bench.sagaInstance).toBe(schema.sagaInstance);
    expect(bench.sagaStep).toBe(schema.sagaStep);
    expect(bench.channel).toBe(tables.channel);
  });

  it('outbox insert, claim and mark-sent', () => {
    const insert = {
      ids: [id],
      destinations: ['orders'],
      keys: [null],
      types: ['order.placed'],
      payloads: ['{}'],
      headers: ['{}'],
      sagaIds: [null],
    };
    expect(same(raw.insertOutboxMessages(bench, insert))).toEqual(
      same(outbox.insertOutboxMessages(tables, insert)),
    );
    const claim = { claimToken: id, limit: 100, leaseMs: 30_000 };
    expect(same(raw.claimOutboxMessages(bench, claim))).toEqual(
      same(outbox.claimOutboxMessages(tables, claim)),
    );
    const mark = { claimToken: id, ids: [id] };
    expect(same(raw.markOutboxSent(bench, mark))).toEqual(
      same(outbox.markOutboxSent(tables, mark)),
    );
  });

  it('saga create, lock step, complete step, transition', () => {
    const create = {
      id,
      name: 'bench',
      version: 'v1',
      input: { a: 1 },
      idempotencyKey: 'k-1',
      inputFingerprint: 'f'.repeat(64),
      owner: 'w1',
      leaseMs: 30_000,
      timeoutMs: null,
      stepNames: ['a', 'b', 'c'],
    };
    expect(same(raw.createSaga(bench, create))).toEqual(
      same(saga.createSaga(schema, create as Parameters<typeof saga.createSaga>[1])),
    );
    const lock = { sagaId: id, step: 'a' };
    expect(same(raw.lockStep(bench, lock))).toEqual(same(saga.lockStep(schema, lock)));
    const complete = { sagaId: id, owner: 'w1', step: 'a', result: { ok: true }, attempt: 1 };
    expect(same(raw.completeStep(bench, complete))).toEqual(
      same(saga.completeStep(schema, complete)),
    );
    const transition = {
      sagaId: id,
      owner: 'w1',
      from: ['running'],
      to: 'completed',
      error: null,
      failedStep: null,
    };
    expect(same(raw.transitionSaga(bench, transition))).toEqual(
      same(saga.transitionSaga(schema, transition as Parameters<typeof saga.transitionSaga>[1])),
    );
  });
});
