/**
 * Text PostgreSQL cannot store as given (NUL, unpaired UTF-16 surrogates) in what a producer hands
 * Sage — outbox keys, destinations, types and headers, a saga's idempotency key — is refused with a
 * typed error before any SQL runs, so the caller's transaction is untouched: its own rows, written
 * before and after the refused call, commit.
 *
 * The first block shows the premise on the same database, by going around the checks: NUL reaching
 * PostgreSQL aborts the whole transaction with an untyped driver error, and an unpaired surrogate
 * is silently stored as U+FFFD.
 */
import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';
import { InvalidOptionsError } from '../../core/errors';
import { OutboxMessageInvalidError } from '../../core/outbox/outbox-errors';
import type { OutboxMessageInput } from '../../core/outbox/outbox-message';
import { prepareOutboxMessages } from '../../core/outbox/outbox-message';
import { defineSaga } from '../../core/saga/saga-builder';
import { SagaEngine } from '../../core/saga/saga-engine';
import { PostgresSagaStore } from './postgres-saga-store';

jest.setTimeout(60_000);

let db: TestDatabase;
let ctx: OutboxTestContext;
let engine: SagaEngine<EntityManager>;

beforeAll(async () => {
  db = await createTestDatabase();
  ctx = await openOutboxTestContext(db.connection, 4);
  await ctx.dataSource.query('CREATE TABLE public.business_row (id text PRIMARY KEY)');
  engine = new SagaEngine<EntityManager>({
    store: new PostgresSagaStore(ctx.dataSource),
    outbox: ctx.publisher,
  });
  engine.register(
    defineSaga<unknown, EntityManager>('order')
      .step('place', { compensatable: false, run: () => 'placed' })
      .build(),
  );
});
afterAll(async () => {
  await engine?.shutdown();
  await ctx?.close();
  await db?.drop();
});

const businessRows = async (ids: string[]): Promise<string[]> =>
  (
    (await ctx.dataSource.query(
      'SELECT id FROM public.business_row WHERE id = ANY($1) ORDER BY id',
      [ids],
    )) as { id: string }[]
  ).map((r) => r.id);
const outboxRows = async (destination: string): Promise<{ key: string | null }[]> =>
  (await ctx.dataSource.query(
    'SELECT key FROM sage.outbox_message WHERE destination = $1 ORDER BY id',
    [destination],
  )) as { key: string | null }[];
const insertBusinessRow = (manager: EntityManager, id: string): Promise<unknown> =>
  manager.query('INSERT INTO public.business_row (id) VALUES ($1)', [id]);

describe('the premise: what reaches PostgreSQL without the checks', () => {
  it('NUL in an outbox key aborts the whole caller transaction with an untyped driver error', async () => {
    const destination = `premise-${randomUUID()}`;
    const [message] = prepareOutboxMessages([
      { destination, type: 't', key: 'placeholder', payload: {} },
    ]);
    const before = `premise-${randomUUID()}`;
    const outcome = await ctx.dataSource
      .transaction(async (manager) => {
        await insertBusinessRow(manager, before);
        // Straight to the store, as publish() did before the check.
        const raw = await ctx.store
          .insert(manager, [{ ...message!, key: 'a\u0000b' }])
          .catch((e: unknown) => e);
        const next = await insertBusinessRow(manager, `${before}-after`).catch((e: unknown) => e);
        return { raw, next };
      })
      .catch((e: unknown) => ({ commit: e }));
    expect(outcome).toMatchObject({
      raw: expect.objectContaining({ name: 'QueryFailedError' }) as unknown,
      next: expect.objectContaining({
        message: expect.stringContaining('current transaction is aborted') as unknown,
      }) as unknown,
    });
    expect(await businessRows([before])).toEqual([]);
  });

  it('an unpaired surrogate in an outbox key is stored as U+FFFD, not as given', async () => {
    const destination = `premise-${randomUUID()}`;
    const [message] = prepareOutboxMessages([{ destination, type: 't', key: 'k', payload: {} }]);
    await ctx.dataSource.transaction((manager) =>
      ctx.store.insert(manager, [{ ...message!, key: 'k\ud800' }]),
    );
    expect(await outboxRows(destination)).toEqual([{ key: 'k\ufffd' }]);
  });
});

describe('outbox.publish(): a typed error before any SQL; the caller commits its own rows', () => {
  const cases: [string, (destination: string) => OutboxMessageInput, string][] = [
    ['NUL in the key', (d) => ({ destination: d, type: 't', key: 'o\u00001', payload: {} }), 'key'],
    [
      'NUL in the destination',
      (d) => ({ destination: `${d}\u0000`, type: 't', payload: {} }),
      'destination',
    ],
    ['NUL in the type', (d) => ({ destination: d, type: 'order\u0000', payload: {} }), 'type'],
    [
      'an unpaired surrogate in the key',
      (d) => ({ destination: d, type: 't', key: 'o-\ud800', payload: {} }),
      'key',
    ],
    [
      'NUL in a header value',
      (d) => ({ destination: d, type: 't', headers: { h: 'v\u0000' }, payload: {} }),
      'headers.h',
    ],
    [
      'an unpaired surrogate in a header name',
      (d) => ({ destination: d, type: 't', headers: { '\udc00h': 'v' }, payload: {} }),
      'headers',
    ],
  ];

  it.each(cases)('%s', async (_label, bad, field) => {
    const destination = `text-${randomUUID()}`;
    const rows = [`row-${randomUUID()}`, `row-${randomUUID()}`];
    const rejection = await ctx.dataSource.transaction(async (manager) => {
      await insertBusinessRow(manager, rows[0]!);
      const error = await ctx.publisher
        .publish([{ destination, type: 'ok', key: 'before', payload: {} }, bad(destination)], {
          manager,
        })
        .catch((e: unknown) => e);
      // The transaction is still usable: a statement and a valid publish after the refusal.
      await insertBusinessRow(manager, rows[1]!);
      await ctx.publisher.publish(
        { destination, type: 'ok', key: 'after', payload: {} },
        { manager },
      );
      return error;
    });
    expect(rejection).toBeInstanceOf(OutboxMessageInvalidError);
    expect(rejection).toMatchObject({ index: 1, field });
    expect(await businessRows(rows)).toEqual([...rows].sort());
    // All or nothing: the valid message published with the bad one was not written either.
    expect(await outboxRows(destination)).toEqual([{ key: 'after' }]);
  });
});

describe("saga start: an idempotency key PostgreSQL cannot store is refused; the caller's transaction goes on", () => {
  it.each([
    ['NUL', 'order-\u00001'],
    ['an unpaired high surrogate', 'order-\ud83d'],
    ['an unpaired low surrogate', '\ude00-order'],
  ])('%s', async (_label, key) => {
    const rows = [`row-${randomUUID()}`, `row-${randomUUID()}`];
    const { error, started } = await ctx.dataSource.transaction(async (manager) => {
      await insertBusinessRow(manager, rows[0]!);
      const error = await engine
        .start('order', { id: 1 }, { idempotencyKey: key, manager })
        .catch((e: unknown) => e);
      await insertBusinessRow(manager, rows[1]!);
      // A valid start in the same transaction still works.
      const started = await engine.start(
        'order',
        { id: 1 },
        { idempotencyKey: `ok-${randomUUID()}`, manager },
      );
      return { error, started };
    });
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error).toMatchObject({ option: 'idempotencyKey' });
    expect(await businessRows(rows)).toEqual([...rows].sort());
    expect((await engine.get(started.sagaId)).status).toBe('running');
    const stored = (await ctx.dataSource.query(
      'SELECT count(*)::int AS n FROM sage.saga_instance WHERE idempotency_key LIKE $1',
      [`%${String.fromCharCode(0xfffd)}%`],
    )) as { n: number }[];
    expect(stored).toEqual([{ n: 0 }]);
  });
});
