import { randomUUID } from 'node:crypto';
import type { DataSource, EntityManager } from 'typeorm';
import { sagaOutboxMigrations } from '../../migrations';
import {
  createTestDatabase,
  dataSourceOptions,
  withClient,
  type TestDatabase,
} from '@test/support/pg';
import { InvalidOptionsError, LeaseLostError, SagaStoreUnavailableError } from '../../core/errors';
import type { NewSaga } from '../../core/ports/saga-store';
import { describeSagaStoreConformance } from '../../testing/saga-store-conformance';
import { createSagaDataSource, runMigrationsLocked } from './data-source';
import { PostgresSagaStore } from './postgres-saga-store';
import { waitUntil } from '../../testing/async';

// The int project's testTimeout is not applied per project by jest; these tests start servers.
jest.setTimeout(120_000);

describeSagaStoreConformance('PostgreSQL', async () => {
  const db = await createTestDatabase();
  const dataSource = await createSagaDataSource(
    dataSourceOptions(db.name, { poolSize: 20 }),
  ).initialize();
  return {
    store: new PostgresSagaStore(dataSource),
    newTx: (fn) => dataSource.transaction(fn),
    async cleanup() {
      await dataSource.destroy();
      await db.drop();
    },
  };
});

function newSaga(overrides: Partial<NewSaga> = {}): NewSaga {
  return {
    id: randomUUID(),
    name: `pg-${randomUUID().slice(0, 8)}`,
    version: 'v1',
    input: { n: 1 },
    idempotencyKey: null,
    stepNames: ['a', 'b'],
    owner: 'worker-a',
    leaseMs: 60_000,
    timeoutMs: null,
    ...overrides,
  };
}

describe('PostgresSagaStore on PostgreSQL', () => {
  let db: TestDatabase;
  let dataSource: DataSource;
  let store: PostgresSagaStore;

  beforeAll(async () => {
    db = await createTestDatabase();
    dataSource = await createSagaDataSource(
      dataSourceOptions(db.name, { poolSize: 10 }),
    ).initialize();
    store = new PostgresSagaStore(dataSource);
    await dataSource.query('CREATE TABLE ledger (saga_id uuid NOT NULL, note text NOT NULL)');
  });
  afterAll(async () => {
    await dataSource?.destroy();
    await db?.drop();
  });

  const ledger = async (sagaId: string): Promise<string[]> =>
    (
      (await dataSource.query('SELECT note FROM ledger WHERE saga_id = $1', [sagaId])) as {
        note: string;
      }[]
    ).map((r) => r.note);
  const stepOf = async (sagaId: string, name: string) =>
    (await store.load(sagaId))!.steps.find((s) => s.name === name)!;

  it("commits the body's business write together with the step record", async () => {
    const saga = newSaga();
    await store.create(saga);
    const outcome = await store.runStepTransaction(
      { sagaId: saga.id, owner: 'worker-a' },
      'a',
      'forward',
      1,
      async (tx) => {
        await tx.query('INSERT INTO ledger (saga_id, note) VALUES ($1, $2)', [saga.id, 'reserved']);
        return { result: { reserved: true }, value: 'ok' };
      },
    );
    expect(outcome).toEqual({ kind: 'done', value: 'ok' });
    expect(await ledger(saga.id)).toEqual(['reserved']);
    expect(await stepOf(saga.id, 'a')).toMatchObject({
      status: 'completed',
      result: { reserved: true },
    });
  });

  it('a body that writes and then throws leaves neither its row nor a step result', async () => {
    const saga = newSaga();
    await store.create(saga);
    const failure = new Error('after the write');
    await expect(
      store.runStepTransaction(
        { sagaId: saga.id, owner: 'worker-a' },
        'a',
        'forward',
        1,
        async (tx) => {
          await tx.query('INSERT INTO ledger (saga_id, note) VALUES ($1, $2)', [
            saga.id,
            'reserved',
          ]);
          throw failure;
        },
      ),
    ).rejects.toBe(failure);
    expect(await ledger(saga.id)).toEqual([]);
    expect(await stepOf(saga.id, 'a')).toMatchObject({
      status: 'pending',
      result: null,
      completedAt: null,
    });
  });

  it("LeaseLostError rolls back the body's business write (other owner, and expired lease)", async () => {
    const saga = newSaga({ leaseMs: 300 });
    await store.create(saga);
    const write = (owner: string) =>
      store.runStepTransaction({ sagaId: saga.id, owner }, 'a', 'forward', 1, async (tx) => {
        await tx.query('INSERT INTO ledger (saga_id, note) VALUES ($1, $2)', [saga.id, owner]);
        return { result: null, value: null };
      });
    await expect(write('worker-b')).rejects.toBeInstanceOf(LeaseLostError);
    await waitUntil(
      async () =>
        !(await store.transition({ sagaId: saga.id, owner: 'worker-a' }, ['running'], 'running')),
      'the lease to expire',
    );
    await expect(write('worker-a')).rejects.toBeInstanceOf(LeaseLostError);
    expect(await ledger(saga.id)).toEqual([]);
    expect(await stepOf(saga.id, 'a')).toMatchObject({ status: 'pending' });
  });

  it('runs the body once when two workers run one step: the second waits on the step row lock', async () => {
    const saga = newSaga();
    await store.create(saga);
    const fence = { sagaId: saga.id, owner: 'worker-a' };
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const firstEntered = new Promise<void>((resolve) => (entered = resolve));
    const body = async (tx: EntityManager) => {
      runs++;
      await tx.query('INSERT INTO ledger (saga_id, note) VALUES ($1, $2)', [
        saga.id,
        `run ${runs}`,
      ]);
      entered();
      await gate;
      return { result: { runs }, value: runs };
    };
    const first = store.runStepTransaction(fence, 'a', 'forward', 1, body);
    await firstEntered;
    const second = store.runStepTransaction(fence, 'a', 'forward', 1, body);
    // Observe, rather than assume, that the second worker is blocked on the first's row lock.
    await waitUntil(async () => {
      const [row] = (await dataSource.query(
        `SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
      )) as { waiting: number }[];
      return row!.waiting > 0;
    }, 'the second worker to wait on the step lock');
    release();
    await expect(Promise.all([first, second])).resolves.toEqual([
      { kind: 'done', value: 1 },
      { kind: 'already-done' },
    ]);
    expect(runs).toBe(1);
    expect(await ledger(saga.id)).toEqual(['run 1']);
  });

  it('a running step body blocks neither its sibling steps nor lease renewal', async () => {
    const saga = newSaga({ leaseMs: 5_000 });
    await store.create(saga);
    const fence = { sagaId: saga.id, owner: 'worker-a' };
    let siblingDone!: () => void;
    const sibling = new Promise<void>((resolve) => (siblingDone = resolve));
    const slow = store.runStepTransaction(fence, 'a', 'forward', 1, async () => {
      // Holds its transaction open until the sibling committed and the lease was renewed.
      await sibling;
      return { result: 'a', value: 'a' };
    });
    await expect(
      store.runStepTransaction(fence, 'b', 'forward', 1, () =>
        Promise.resolve({ result: 'b', value: 'b' }),
      ),
    ).resolves.toEqual({ kind: 'done', value: 'b' });
    await expect(store.renewLeases('worker-a', [saga.id], 60_000)).resolves.toEqual([saga.id]);
    await expect(store.transition(fence, ['running'], 'running')).resolves.toBe(true);
    siblingDone();
    await expect(slow).resolves.toEqual({ kind: 'done', value: 'a' });
  });

  describe('store trouble around a step (the connection dies) versus a failing step', () => {
    /** The backend serving `pid` is gone (pg_terminate_backend from another connection). */
    const terminate = async (pid: number): Promise<void> => {
      await dataSource.query('SELECT pg_terminate_backend($1)', [pid]);
      await waitUntil(
        async () =>
          ((await dataSource.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])) as [])
            .length === 0,
        `backend ${pid} to exit`,
      );
    };
    const backendPid = async (tx: EntityManager): Promise<number> =>
      ((await tx.query('SELECT pg_backend_pid() AS pid')) as { pid: number }[])[0]!.pid;

    beforeAll(async () => {
      // A COMMIT that takes its time: a deferred constraint trigger sleeping at commit.
      await dataSource.query(`
        CREATE TABLE slow_commit (saga_id uuid NOT NULL);
        CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql
          AS $$ BEGIN PERFORM pg_sleep(60); RETURN NULL; END $$;
        CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON slow_commit
          DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();
        CREATE TABLE account (id int PRIMARY KEY);
        CREATE TABLE payment (
          account_id int NOT NULL REFERENCES account (id) DEFERRABLE INITIALLY DEFERRED,
          saga_id uuid NOT NULL
        )`);
    });

    it('a backend terminated mid-step: SagaStoreUnavailableError (not the step failing), nothing committed', async () => {
      const saga = newSaga();
      await store.create(saga);
      const fence = { sagaId: saga.id, owner: 'worker-a' };
      const outcome = store.runStepTransaction(fence, 'a', 'forward', 1, async (tx) => {
        await tx.query('INSERT INTO ledger (saga_id, note) VALUES ($1, $2)', [saga.id, 'lost']);
        await terminate(await backendPid(tx));
        return { result: 'lost', value: 'lost' }; // the body itself succeeded
      });
      const error = (await outcome.catch((e: unknown) => e)) as SagaStoreUnavailableError;
      expect(error).toBeInstanceOf(SagaStoreUnavailableError);
      expect(error).toMatchObject({
        code: 'SAGA_STORE_UNAVAILABLE',
        sagaId: saga.id,
        stepName: 'a',
        phase: 'forward',
        operation: 'recording the step',
      });
      expect(error.cause).toBeInstanceOf(Error);
      expect(await ledger(saga.id)).toEqual([]);
      expect(await stepOf(saga.id, 'a')).toMatchObject({ status: 'pending', attempts: 0 });
      // The pool replaced the dead connection: the step runs and commits once.
      await expect(
        store.runStepTransaction(fence, 'a', 'forward', 1, async (tx) => {
          await tx.query('INSERT INTO ledger (saga_id, note) VALUES ($1, $2)', [saga.id, 'kept']);
          return { result: 'kept', value: 'kept' };
        }),
      ).resolves.toEqual({ kind: 'done', value: 'kept' });
      expect(await ledger(saga.id)).toEqual(['kept']);
    });

    it('a backend terminated during COMMIT: SagaStoreUnavailableError at COMMIT; running the step again is safe', async () => {
      const saga = newSaga();
      await store.create(saga);
      const fence = { sagaId: saga.id, owner: 'worker-a' };
      let pid = 0;
      const outcome = store
        .runStepTransaction(fence, 'a', 'forward', 1, async (tx) => {
          await tx.query('INSERT INTO ledger (saga_id, note) VALUES ($1, $2)', [saga.id, 'lost']);
          await tx.query('INSERT INTO slow_commit (saga_id) VALUES ($1)', [saga.id]);
          pid = await backendPid(tx);
          return { result: 'lost', value: 'lost' };
        })
        .catch((e: unknown) => e);
      await waitUntil(async () => {
        const [row] = (await dataSource.query(
          `SELECT query FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep'`,
          [pid],
        )) as { query: string }[];
        return row?.query === 'COMMIT';
      }, 'the step transaction to be in its COMMIT');
      await terminate(pid);
      const error = await outcome;
      expect(error).toBeInstanceOf(SagaStoreUnavailableError);
      expect(error).toMatchObject({ operation: 'COMMIT', stepName: 'a' });
      // Here the COMMIT did not happen; had it, the step would be done and not run again.
      expect(await stepOf(saga.id, 'a')).toMatchObject({ status: 'pending', attempts: 0 });
      await expect(
        store.runStepTransaction(fence, 'a', 'forward', 2, () =>
          Promise.resolve({ result: 'kept', value: 'kept' }),
        ),
      ).resolves.toEqual({ kind: 'done', value: 'kept' });
      await expect(
        store.runStepTransaction(fence, 'a', 'forward', 3, () =>
          Promise.resolve({ result: 'again', value: 'again' }),
        ),
      ).resolves.toEqual({ kind: 'already-done' });
      expect(await ledger(saga.id)).toEqual([]);
    });

    it("writes the database refuses at COMMIT (a deferred constraint) are the step's failure, not the store's", async () => {
      const saga = newSaga();
      await store.create(saga);
      const error = (await store
        .runStepTransaction(
          { sagaId: saga.id, owner: 'worker-a' },
          'a',
          'forward',
          1,
          async (tx) => {
            await tx.query('INSERT INTO ledger (saga_id, note) VALUES ($1, $2)', [saga.id, 'paid']);
            await tx.query('INSERT INTO payment (account_id, saga_id) VALUES (42, $1)', [saga.id]);
            return { result: 'paid', value: 'paid' };
          },
        )
        .catch((e: unknown) => e)) as { code?: string };
      expect(error).not.toBeInstanceOf(SagaStoreUnavailableError);
      expect(error.code).toBe('23503'); // foreign_key_violation, raised by COMMIT
      expect(await ledger(saga.id)).toEqual([]);
      expect(await stepOf(saga.id, 'a')).toMatchObject({ status: 'pending' });
    });
  });

  it('refuses to join an EntityManager that is not inside a transaction', async () => {
    await expect(store.create(newSaga(), dataSource.manager)).rejects.toMatchObject({
      code: 'SAGA_TX_INACTIVE',
    });
  });

  it('the schema enforces statuses and owner/lease pairing', async () => {
    const saga = newSaga();
    await store.create(saga);
    await expect(
      dataSource.query(`UPDATE sage.saga_instance SET status = 'bogus' WHERE id = $1`, [saga.id]),
    ).rejects.toThrow(/saga_instance_status_check/);
    await expect(
      dataSource.query(`UPDATE sage.saga_instance SET owner = NULL WHERE id = $1`, [saga.id]),
    ).rejects.toThrow(/saga_instance_owner_lease_check/);
    await expect(
      dataSource.query(`UPDATE sage.saga_step SET status = 'done' WHERE saga_id = $1`, [saga.id]),
    ).rejects.toThrow(/saga_step_status_check/);
    // Steps go with their saga.
    await dataSource.query('DELETE FROM sage.saga_instance WHERE id = $1', [saga.id]);
    await expect(
      dataSource.query('SELECT count(*)::int AS n FROM sage.saga_step WHERE saga_id = $1', [
        saga.id,
      ]),
    ).resolves.toEqual([{ n: 0 }]);
  });
});

describe('Sage migrations', () => {
  const tables = (dataSource: DataSource, schema = 'sage') =>
    dataSource.query(
      `SELECT to_regclass($1) IS NOT NULL AS instance, to_regclass($2) IS NOT NULL AS step,
              EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $3) AS schema`,
      [`${schema}.saga_instance`, `${schema}.saga_step`, schema],
    ) as Promise<{ instance: boolean; step: boolean; schema: boolean }[]>;

  const allMigrationNames = (schema?: string): string[] =>
    sagaOutboxMigrations({ schema }).map((M) => new M().name!);
  const executed = async (dataSource: DataSource): Promise<string[]> =>
    (
      (await dataSource.query('SELECT name FROM public.migrations ORDER BY id')) as {
        name: string;
      }[]
    ).map((r) => r.name);
  const undoAll = async (dataSource: DataSource): Promise<void> => {
    while ((await executed(dataSource)).length) await dataSource.undoLastMigration();
  };

  const withFreshDatabase = async (fn: (db: TestDatabase) => Promise<void>): Promise<void> => {
    const db = await createTestDatabase({ migrated: false });
    try {
      await fn(db);
    } finally {
      await db.drop();
    }
  };

  it('3 concurrent migrators against a fresh database all succeed, and the migration runs once', async () => {
    await withFreshDatabase(async (db) => {
      const sources = await Promise.all(
        [0, 1, 2].map(() =>
          createSagaDataSource(dataSourceOptions(db.name, { poolSize: 2 })).initialize(),
        ),
      );
      try {
        const results = await Promise.allSettled(sources.map((s) => runMigrationsLocked(s)));
        expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
        // One migrator ran them all; the others found nothing pending.
        const ran = results.map((r) => (r.status === 'fulfilled' ? r.value.length : -1)).sort();
        expect(ran).toEqual([0, 0, allMigrationNames().length]);
        expect(await tables(sources[0]!)).toEqual([{ instance: true, step: true, schema: true }]);
        expect(await executed(sources[0]!)).toEqual(allMigrationNames());
      } finally {
        await Promise.all(sources.map((s) => s.destroy()));
      }
    });
  });

  it("3 concurrent plain dataSource.runMigrations() all succeed once TypeORM's table exists (per-migration lock, idempotent DDL)", async () => {
    await withFreshDatabase(async (db) => {
      const sources = await Promise.all(
        [0, 1, 2].map(() =>
          createSagaDataSource(dataSourceOptions(db.name, { poolSize: 2 })).initialize(),
        ),
      );
      try {
        // Apps usually have run a migration before; TypeORM's own table creation is the one step
        // our migrations cannot serialise (runMigrationsLocked covers it, see the test above).
        await sources[0]!.showMigrations();
        const results = await Promise.allSettled(sources.map((s) => s.runMigrations()));
        expect(results.map((r) => (r.status === 'fulfilled' ? 'ok' : String(r.reason)))).toEqual([
          'ok',
          'ok',
          'ok',
        ]);
        expect(await tables(sources[0]!)).toEqual([{ instance: true, step: true, schema: true }]);
      } finally {
        await Promise.all(sources.map((s) => s.destroy()));
      }
    });
  });

  it('migrates up, down and up again', async () => {
    await withFreshDatabase(async (db) => {
      const dataSource = await createSagaDataSource(
        dataSourceOptions(db.name, { poolSize: 2 }),
      ).initialize();
      try {
        await runMigrationsLocked(dataSource);
        expect(await tables(dataSource)).toEqual([{ instance: true, step: true, schema: true }]);
        await undoAll(dataSource);
        expect(await tables(dataSource)).toEqual([{ instance: false, step: false, schema: false }]);
        expect(await executed(dataSource)).toEqual([]);
        await runMigrationsLocked(dataSource);
        expect(await tables(dataSource)).toEqual([{ instance: true, step: true, schema: true }]);

        const store = new PostgresSagaStore(dataSource);
        const saga = newSaga();
        await store.create(saga);
        expect((await store.load(saga.id))?.steps).toHaveLength(2);

        // down leaves the schema in place when the app keeps its own objects in it.
        await dataSource.query('CREATE TABLE sage.app_owned (id int)');
        await undoAll(dataSource);
        expect(await tables(dataSource)).toEqual([{ instance: false, step: false, schema: true }]);
      } finally {
        await dataSource.destroy();
      }
    });
  });

  it('a process started after the migrations finds them done (role named like the schema)', async () => {
    await withFreshDatabase(async (db) => {
      const first = await createSagaDataSource(
        dataSourceOptions(db.name, { poolSize: 2 }),
      ).initialize();
      try {
        await runMigrationsLocked(first);
      } finally {
        await first.destroy();
      }
      // Connects once the `sage` schema exists: with role `sage` and search_path "$user", public,
      // current_schema() is now `sage`; TypeORM must still find its migrations table.
      const later = await createSagaDataSource(
        dataSourceOptions(db.name, { poolSize: 2 }),
      ).initialize();
      try {
        await expect(runMigrationsLocked(later)).resolves.toEqual([]);
        await expect(later.runMigrations()).resolves.toEqual([]);
        expect(await executed(later)).toEqual(allMigrationNames());
      } finally {
        await later.destroy();
      }
    });
  });

  it('migrates and stores in a configured schema', async () => {
    await withFreshDatabase(async (db) => {
      const dataSource = await createSagaDataSource(
        dataSourceOptions(db.name, { poolSize: 2, schema: 'orders_saga' }),
      ).initialize();
      try {
        const ran = await runMigrationsLocked(dataSource);
        expect(ran.map((m) => m.name)).toEqual(allMigrationNames('orders_saga'));
        expect(ran[0]?.name).toBe('SageSagaState_orders_saga_1764230400000');
        expect(await tables(dataSource, 'orders_saga')).toEqual([
          { instance: true, step: true, schema: true },
        ]);
        expect(await tables(dataSource, 'sage')).toEqual([
          { instance: false, step: false, schema: false },
        ]);

        const store = new PostgresSagaStore(dataSource, { schema: 'orders_saga' });
        const saga = newSaga({ owner: null });
        await expect(store.create(saga)).resolves.toEqual({ id: saga.id, created: true });
        await expect(
          store.claimOrphans('w', [{ name: saga.name, version: 'v1' }], 5, 60_000),
        ).resolves.toEqual([saga.id]);
      } finally {
        await dataSource.destroy();
      }
    });
  });

  it('rejects an invalid schema name before touching the database', () => {
    for (const schema of ['Sage', 'sage-x', '1sage', 'pg_sage', 'a"b', '', 'x'.repeat(64)]) {
      expect(() => sagaOutboxMigrations({ schema })).toThrow(InvalidOptionsError);
      expect(() => createSagaDataSource({ schema })).toThrow(InvalidOptionsError);
    }
    const dataSource = createSagaDataSource({});
    expect(() => new PostgresSagaStore(dataSource, { schema: 'drop table' })).toThrow(
      InvalidOptionsError,
    );
    expect(() => sagaOutboxMigrations({ schema: 'x'.repeat(63) })).not.toThrow();
  });

  it('the test template holds the current migrations', async () => {
    const db = await createTestDatabase();
    try {
      await withClient(db.name, async (client) => {
        const { rows } = await client.query<{ name: string }>(
          'SELECT name FROM public.migrations ORDER BY id',
        );
        expect(rows.map((r) => r.name)).toEqual(allMigrationNames());
      });
    } finally {
      await db.drop();
    }
  });
});
