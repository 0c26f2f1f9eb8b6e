/**
 * Idempotency keys on real PostgreSQL: the key is stored with a fingerprint of the input, so the
 * same request returns the first saga and a different one reusing the key gets
 * SagaIdempotencyConflictError (or the first saga, with `idempotencyConflict: 'return-existing'`),
 * inside a caller's transaction too, which stays usable. And the upgrade: sagas written before the
 * fingerprint column existed keep matching any input.
 */
import { randomUUID } from 'node:crypto';
import type { DataSource, EntityManager } from 'typeorm';
import { createTestDatabase, dataSourceOptions, type TestDatabase } from '@test/support/pg';
import { SagaIdempotencyConflictError } from '../../core/errors';
import { defineSaga } from '../../core/saga/saga-builder';
import { sagaInputFingerprint } from '../../core/saga/input-fingerprint';
import { SagaEngine, type SagaEngineOptions } from '../../core/saga/saga-engine';
import { sagaOutboxMigrations } from '../../migrations';
import { createSagaDataSource, runMigrationsLocked } from './data-source';
import { PostgresSagaStore } from './postgres-saga-store';

jest.setTimeout(60_000);

const engines: SagaEngine<EntityManager>[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.shutdown()));
});

/** An engine with saga `order` (one local step), not running anything in the background. */
function engineOn(
  dataSource: DataSource,
  options: Partial<SagaEngineOptions<EntityManager>> = {},
): SagaEngine<EntityManager> {
  const engine = new SagaEngine<EntityManager>({
    store: new PostgresSagaStore(dataSource),
    ...options,
  });
  engines.push(engine);
  engine.register(
    defineSaga<unknown, EntityManager>('order')
      .step('place', { compensatable: false, run: () => 'placed' })
      .build(),
  );
  return engine;
}

const storedFingerprint = async (dataSource: DataSource, id: string): Promise<string | null> =>
  (
    (await dataSource.query('SELECT input_fingerprint FROM sage.saga_instance WHERE id = $1', [
      id,
    ])) as { input_fingerprint: string | null }[]
  )[0]!.input_fingerprint;

describe('on a migrated database', () => {
  let db: TestDatabase;
  let dataSource: DataSource;
  beforeAll(async () => {
    db = await createTestDatabase();
    dataSource = await createSagaDataSource(
      dataSourceOptions(db.name, { poolSize: 6 }),
    ).initialize();
    await dataSource.query('CREATE TABLE public.business_row (id text PRIMARY KEY)');
  });
  afterAll(async () => {
    await dataSource?.destroy();
    await db?.drop();
  });

  it('same key and input: the first saga; a different input: SagaIdempotencyConflictError, nothing written', async () => {
    const engine = engineOn(dataSource);
    const key = `order-${randomUUID()}`;
    const first = await engine.start(
      'order',
      { id: 1, lines: ['a', 'b'] },
      { idempotencyKey: key },
    );
    expect(first.created).toBe(true);
    expect(await storedFingerprint(dataSource, first.sagaId)).toBe(
      sagaInputFingerprint('order', { id: 1, lines: ['a', 'b'] }),
    );
    await expect(
      engine.start('order', { lines: ['a', 'b'], id: 1 }, { idempotencyKey: key }),
    ).resolves.toEqual({ sagaId: first.sagaId, created: false });

    const error = await engine
      .start('order', { id: 2, lines: ['a', 'b'] }, { idempotencyKey: key })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SagaIdempotencyConflictError);
    expect(error).toMatchObject({ idempotencyKey: key, existingSagaId: first.sagaId });
    const rows = (await dataSource.query(
      'SELECT id, input FROM sage.saga_instance WHERE idempotency_key = $1',
      [key],
    )) as { id: string; input: unknown }[];
    expect(rows).toEqual([{ id: first.sagaId, input: { id: 1, lines: ['a', 'b'] } }]);
  });

  it("a conflict in the caller's transaction leaves it usable: its rows and a new saga commit", async () => {
    const engine = engineOn(dataSource);
    const key = `order-${randomUUID()}`;
    await engine.start('order', { id: 1 }, { idempotencyKey: key });
    const rows = [`row-${randomUUID()}`, `row-${randomUUID()}`];
    const { error, started } = await dataSource.transaction(async (manager) => {
      await manager.query('INSERT INTO public.business_row (id) VALUES ($1)', [rows[0]]);
      const error = await engine
        .start('order', { id: 2 }, { idempotencyKey: key, manager })
        .catch((e: unknown) => e);
      await manager.query('INSERT INTO public.business_row (id) VALUES ($1)', [rows[1]]);
      const started = await engine.start(
        'order',
        { id: 2 },
        { idempotencyKey: `${key}-2`, manager },
      );
      return { error, started };
    });
    expect(error).toBeInstanceOf(SagaIdempotencyConflictError);
    const committed = (await dataSource.query(
      'SELECT id FROM public.business_row WHERE id = ANY($1) ORDER BY id',
      [rows],
    )) as { id: string }[];
    expect(committed.map((r) => r.id)).toEqual([...rows].sort());
    expect(started.created).toBe(true);
    expect((await engine.get(started.sagaId)).input).toEqual({ id: 2 });
  });

  it("idempotencyConflict: 'return-existing' returns the first saga whatever the input", async () => {
    const engine = engineOn(dataSource, { idempotencyConflict: 'return-existing' });
    const key = `order-${randomUUID()}`;
    const first = await engine.start('order', { id: 1 }, { idempotencyKey: key });
    await expect(engine.start('order', { id: 2 }, { idempotencyKey: key })).resolves.toEqual({
      sagaId: first.sagaId,
      created: false,
    });
  });
});

describe('upgrading from the version before fingerprints', () => {
  it('a saga stored before the column existed matches any input; new sagas get a fingerprint', async () => {
    const db = await createTestDatabase({ migrated: false });
    const dataSource = await createSagaDataSource(
      dataSourceOptions(db.name, { poolSize: 2 }),
    ).initialize();
    try {
      await runMigrationsLocked(dataSource);
      // Back to the previous version's schema: undo the migrations down to the fingerprint one.
      const names = sagaOutboxMigrations().map((m) => new m().name);
      const at = names.indexOf('SageSagaInputFingerprint1764576000000');
      expect(at).toBeGreaterThan(0);
      for (let i = names.length - 1; i >= at; i--) await dataSource.undoLastMigration();
      const column = `SELECT count(*)::int AS n FROM information_schema.columns
        WHERE table_schema = 'sage' AND table_name = 'saga_instance' AND column_name = 'input_fingerprint'`;
      await expect(dataSource.query(column)).resolves.toEqual([{ n: 0 }]);

      // A saga as the previous version wrote it.
      const engine = engineOn(dataSource);
      const old = randomUUID();
      await dataSource.query(
        `INSERT INTO sage.saga_instance (id, name, version, status, input, idempotency_key)
         VALUES ($1, 'order', $2, 'running', '{"id":"old"}', 'legacy-key')`,
        [old, engine.definition('order')!.version],
      );
      await dataSource.query(
        `INSERT INTO sage.saga_step (saga_id, name, position) VALUES ($1, 'place', 0)`,
        [old],
      );

      await expect(runMigrationsLocked(dataSource)).resolves.toHaveLength(names.length - at);
      await expect(dataSource.query(column)).resolves.toEqual([{ n: 1 }]);
      expect(await storedFingerprint(dataSource, old)).toBeNull();
      await expect(
        engine.start('order', { id: 'new' }, { idempotencyKey: 'legacy-key' }),
      ).resolves.toEqual({ sagaId: old, created: false });

      const fresh = await engine.start('order', { id: 'new' }, { idempotencyKey: 'new-key' });
      expect(await storedFingerprint(dataSource, fresh.sagaId)).toBe(
        sagaInputFingerprint('order', { id: 'new' }),
      );
      await expect(
        engine.start('order', { id: 'other' }, { idempotencyKey: 'new-key' }),
      ).rejects.toBeInstanceOf(SagaIdempotencyConflictError);
    } finally {
      await Promise.all(engines.splice(0).map((e) => e.shutdown()));
      await dataSource.destroy();
      await db.drop();
    }
  });
});
