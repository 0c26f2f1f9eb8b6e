/**
 * `sage sagas retry` and `sage sagas compensate` on real PostgreSQL, with a real engine doing the
 * work they hand it: a saga failed past its pivot is retried once its cause is fixed and completes
 * with every effect once; a stuck saga (a worker still driving it) is compensated in reverse order
 * and the worker loses its fence; refusals (wrong status, past the pivot, changed meanwhile) change
 * nothing; the audit entries name the operator. runCli runs in-process.
 */
import type { DataSource, EntityManager } from 'typeorm';
import { Client } from 'pg';
import { createTestDatabase, dataSourceOptions, type TestDatabase } from '@test/support/pg';
import { defineSaga, PostgresSagaStore, SagaEngine, type StepContext } from '../index';
import { createSagaDataSource } from '../persistence/postgres/data-source';
import { PostgresSagaOperatorActions } from '../persistence/postgres/postgres-saga-operator-actions';
import { planSagaCompensation, SagaActionRefusedError } from '../core/saga/saga-operator-actions';
import { waitUntil } from '../testing/async';
import { runCli } from './cli';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './cli-errors';

jest.setTimeout(40_000);

type Ctx = StepContext<unknown, EntityManager>;

let db: TestDatabase;
let ds: DataSource;
let client: Client;
let env: NodeJS.ProcessEnv;
/** Runs sagas and recovers them (claims what the CLI makes due). */
let worker: SagaEngine<EntityManager>;
/** Drives a saga and gets stuck in it; no recovery loop, no heartbeat, a long lease. */
let stuckWorker: SagaEngine<EntityManager>;
let notifyBroken = true;
const gate: { open?: () => void } = {};

beforeAll(async () => {
  db = await createTestDatabase();
  ds = await createSagaDataSource(dataSourceOptions(db.name, { poolSize: 8 })).initialize();
  await ds.query(`
    CREATE TABLE public.effects (
      seq bigserial PRIMARY KEY, saga_id uuid NOT NULL, step text NOT NULL, kind text NOT NULL)`);
  client = new Client(db.connection);
  await client.connect();
  const c = db.connection;
  env = {
    DATABASE_URL: `postgres://${encodeURIComponent(c.user)}:${encodeURIComponent(c.password)}@${c.host}:${c.port}/${c.database}`,
  };
  const silent = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
  worker = new SagaEngine<EntityManager>({
    store: new PostgresSagaStore(ds),
    ownerId: 'actions-worker',
    logger: silent,
    recoveryIntervalMs: 100,
    random: () => 0.5,
  });
  stuckWorker = new SagaEngine<EntityManager>({
    store: new PostgresSagaStore(ds),
    ownerId: 'actions-stuck-worker',
    logger: silent,
    leaseMs: 60_000,
    random: () => 0.5,
  });
  for (const engine of [worker, stuckWorker]) {
    engine.register(
      defineSaga<unknown, EntityManager>('ship-and-notify', { afterPivotMaxAttempts: 2 })
        .step('reserve', { run: (ctx) => effect(ctx), compensate: (ctx) => effect(ctx, 'undo') })
        .step('ship', { dependsOn: ['reserve'], pivot: true, run: (ctx) => effect(ctx) })
        .step('notify', {
          dependsOn: ['ship'],
          retry: { maxAttempts: 2, initialDelayMs: 1 },
          run: async (ctx) => {
            await effect(ctx); // rolled back with a failed attempt
            if (notifyBroken) throw new Error('mail relay refuses the sender');
          },
        })
        .build(),
    );
    engine.register(
      defineSaga<unknown, EntityManager>('hold-and-wait')
        .step('reserve', { run: (ctx) => effect(ctx), compensate: (ctx) => effect(ctx, 'undo') })
        .step('hold', {
          dependsOn: ['reserve'],
          run: (ctx) => effect(ctx),
          compensate: (ctx) => effect(ctx, 'undo'),
        })
        .step('confirm', { dependsOn: ['hold'], compensatable: false, run: (ctx) => stuck(ctx) })
        .build(),
    );
    engine.register(
      defineSaga<unknown, EntityManager>('past-the-pivot')
        .step('reserve', { run: (ctx) => effect(ctx), compensate: (ctx) => effect(ctx, 'undo') })
        .step('ship', { dependsOn: ['reserve'], pivot: true, run: (ctx) => effect(ctx) })
        .step('confirm', { dependsOn: ['ship'], run: (ctx) => stuck(ctx) })
        .build(),
    );
  }
  await worker.startBackground();
}, 30_000);

afterAll(async () => {
  gate.open?.();
  await stuckWorker?.shutdown();
  await worker?.shutdown();
  await client?.end();
  await ds?.destroy();
  await db?.drop();
}, 30_000);

const effect = async (ctx: Ctx, kind = 'do'): Promise<null> => {
  await ctx.manager.query('INSERT INTO public.effects (saga_id, step, kind) VALUES ($1, $2, $3)', [
    ctx.sagaId,
    ctx.stepName,
    kind,
  ]);
  return null;
};

/** Writes its effect (uncommitted), then hangs until the gate opens (a participant that never answers). */
const stuck = async (ctx: Ctx): Promise<null> => {
  await effect(ctx);
  await new Promise<void>((resolve) => (gate.open = resolve));
  return null;
};

async function effects(sagaId: string): Promise<string[]> {
  const rows = await ds.query<{ step: string; kind: string }[]>(
    'SELECT step, kind FROM public.effects WHERE saga_id = $1 ORDER BY seq',
    [sagaId],
  );
  return rows.map((r) => `${r.kind}:${r.step}`);
}

/** Transactions open and idle in the test database: the stuck step's, while it hangs. */
async function openTransactions(): Promise<number> {
  const { rows } = await client.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND state = 'idle in transaction'`,
    [db.name],
  );
  return rows[0]!.n;
}

async function sage(argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    env,
    out: (t) => void (stdout += t),
    err: (t) => void (stderr += t),
  });
  return { code, stdout, stderr };
}

async function status(sagaId: string): Promise<{ status: string; error: string | null }> {
  const { rows } = await client.query<{ status: string; error: string | null }>(
    'SELECT status, error FROM sage.saga_instance WHERE id = $1',
    [sagaId],
  );
  return rows[0]!;
}

async function audit(sagaId: string): Promise<{ actor: string; action: string }[]> {
  const { rows } = await client.query<{ actor: string; action: string }>(
    `SELECT actor, action FROM sage.audit_pending WHERE target_id = $1 AND target_type = 'saga' ORDER BY id`,
    [sagaId],
  );
  return rows;
}

it('retry: a saga failed past its pivot runs its failed step again once the cause is fixed, and completes with every effect once', async () => {
  notifyBroken = true;
  const { sagaId } = await worker.start('ship-and-notify', {});
  await waitUntil(async () => (await status(sagaId)).status === 'failed', 'the saga to fail');
  expect(await effects(sagaId)).toEqual(['do:reserve', 'do:ship']);

  // Without --yes: the preview, exit 2, nothing changed.
  const preview = await sage(['sagas', 'retry', sagaId, '--operator', 'alice']);
  expect(preview.code).toBe(EXIT_USAGE);
  expect(preview.stdout).toContain('failed → running');
  expect(preview.stdout).toContain('steps run again from attempt 1: notify');
  expect(preview.stderr).toContain('--yes');
  expect((await status(sagaId)).status).toBe('failed');

  notifyBroken = false; // the cause is fixed
  const done = await sage(['sagas', 'retry', sagaId, '--operator', 'alice', '--yes']);
  expect(done).toMatchObject({ code: EXIT_OK, stderr: '' });
  const saga = await worker.waitFor(sagaId, { timeoutMs: 15_000 });
  expect(saga.status).toBe('completed');
  expect(saga.steps.find((s) => s.name === 'notify')).toMatchObject({
    status: 'completed',
    attempts: 1,
  });
  expect(await effects(sagaId)).toEqual(['do:reserve', 'do:ship', 'do:notify']);
  const entries = await audit(sagaId);
  expect(entries).toContainEqual({ actor: 'alice', action: 'saga.retry_requested' });
  expect(entries).toContainEqual({ actor: 'alice', action: 'saga.running' });

  // Completed: nothing to retry, and nothing changes.
  const again = await sage(['sagas', 'retry', sagaId, '--yes']);
  expect(again.code).toBe(EXIT_FAILURE);
  expect(again.stderr).toContain(`cannot retry saga ${sagaId}: it is completed`);
});

it('compensate: a stuck saga is undone in reverse order; the worker driving it loses its fence', async () => {
  gate.open = undefined;
  const { sagaId } = await stuckWorker.start('hold-and-wait', {});
  await waitUntil(() => gate.open !== undefined, 'the saga to get stuck');
  expect((await status(sagaId)).status).toBe('running');

  // A retry of a live saga is refused, naming its status.
  const retry = await sage(['sagas', 'retry', sagaId, '--yes']);
  expect(retry.code).toBe(EXIT_FAILURE);
  expect(retry.stderr).toContain('it is running');

  const done = await sage(['sagas', 'compensate', sagaId, '--operator', 'bob', '--yes']);
  expect(done.stdout).toContain('steps to undo, in this order: hold, reserve');
  expect(done).toMatchObject({ code: EXIT_OK, stderr: '' });
  await waitUntil(
    async () => (await status(sagaId)).status === 'compensated',
    'compensated',
    15_000,
  );
  // The stuck worker's step now ends: its fenced commit is refused, its effect rolled back.
  gate.open!();
  await waitUntil(async () => (await openTransactions()) === 0, 'the stuck step to end');
  expect(await effects(sagaId)).toEqual(['do:reserve', 'do:hold', 'undo:hold', 'undo:reserve']);
  const entries = await audit(sagaId);
  expect(entries).toContainEqual({ actor: 'bob', action: 'saga.compensation_requested' });
  expect(entries).toContainEqual({ actor: 'bob', action: 'saga.compensating' });

  const again = await sage(['sagas', 'compensate', sagaId, '--yes']);
  expect(again.code).toBe(EXIT_FAILURE);
  expect(again.stderr).toContain(`cannot compensate saga ${sagaId}: it is compensated`);
});

it('compensate past the pivot: refused by the definition when known, else by the runner, which parks it failed naming the pivot', async () => {
  gate.open = undefined;
  const { sagaId } = await stuckWorker.start('past-the-pivot', {});
  await waitUntil(() => gate.open !== undefined, 'the saga to get stuck');
  const saga = (await new PostgresSagaStore(ds).load(sagaId))!;
  const def = worker.definition('past-the-pivot')!;
  expect(() =>
    planSagaCompensation(saga, {
      version: def.version,
      pivots: ['ship'],
      reverseOrder: [...def.order].reverse(),
    }),
  ).toThrow(`its pivot step "ship" completed`);

  // The CLI reads no definition: the runner refuses when it claims the saga.
  expect((await sage(['sagas', 'compensate', sagaId, '--yes'])).code).toBe(EXIT_OK);
  await waitUntil(async () => (await status(sagaId)).status === 'failed', 'failed', 15_000);
  expect((await status(sagaId)).error).toContain('pivot step "ship" completed');
  gate.open!();
  await waitUntil(async () => (await openTransactions()) === 0, 'the stuck step to end');
  expect(await effects(sagaId)).toEqual(['do:reserve', 'do:ship']); // nothing undone

  // Failed past the pivot: compensate is refused outright.
  const refused = await sage(['sagas', 'compensate', sagaId, '--yes']);
  expect(refused.code).toBe(EXIT_FAILURE);
  expect(refused.stderr).toContain('it is failed; a saga fails going forward only past its pivot');
});

it('a saga that changed since the operator read it is refused, naming its status now, and nothing changes', async () => {
  notifyBroken = true;
  const { sagaId } = await worker.start('ship-and-notify', {});
  await waitUntil(async () => (await status(sagaId)).status === 'failed', 'the saga to fail');
  const seen = (await new PostgresSagaStore(ds).load(sagaId))!;
  await client.query(
    `UPDATE sage.saga_instance SET updated_at = clock_timestamp() + interval '1 second' WHERE id = $1`,
    [sagaId],
  );
  const actions = new PostgresSagaOperatorActions(ds, { auditActor: 'carol' });
  const attempt = actions.apply('retry', sagaId, seen, () => {
    throw new Error('never planned: refused first');
  });
  await expect(attempt).rejects.toThrow(SagaActionRefusedError);
  await expect(attempt).rejects.toThrow('it changed meanwhile (was failed at');
  expect(await status(sagaId)).toMatchObject({ status: 'failed' });
  expect((await audit(sagaId)).filter((e) => e.actor === 'carol')).toEqual([]);
});
