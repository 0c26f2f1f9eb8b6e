/**
 * On real PostgreSQL: under WAIT_ALL, a step that used up its attempts while the pivot beside it
 * still ran is retried forward once the pivot completes; the saga completes and nothing is
 * compensated (DESIGN.md, pivot). Before, the saga was parked as `failed`.
 *
 * Lives beside the store because it needs TypeORM and the PostgreSQL adapter (core/ must not).
 */
import type { DataSource, EntityManager } from 'typeorm';
import { createTestDatabase, dataSourceOptions, type TestDatabase } from '@test/support/pg';
import {
  defineSaga,
  PostgresSagaStore,
  SagaEngine,
  type SagaEvent,
  type SageLogger,
  type StepContext,
} from '../../index';
import { createSagaDataSource } from './data-source';
import { waitUntil } from '../../testing/async';

type Ctx = StepContext<unknown, EntityManager>;

let db: TestDatabase;
let ds: DataSource;
let engine: SagaEngine<EntityManager>;
const events: SagaEvent[] = [];
const logged: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  ds = await createSagaDataSource(dataSourceOptions(db.name, { poolSize: 6 })).initialize();
  await ds.query(`
    CREATE TABLE public.effects (
      id bigserial PRIMARY KEY, saga_id uuid NOT NULL, step text NOT NULL, kind text NOT NULL,
      attempt integer NOT NULL)`);
  const logger: SageLogger = {
    debug: () => undefined,
    info: (_message, fields) => logged.push(`${String(fields?.event)}:${String(fields?.step)}`),
    warn: () => undefined,
    error: () => undefined,
  };
  engine = new SagaEngine<EntityManager>({
    store: new PostgresSagaStore(ds),
    ownerId: 'pivot-verdict-int',
    logger,
    random: () => 0.5,
  });
  engine.onEvent((e) => events.push(e));
}, 30_000);

afterAll(async () => {
  await engine?.shutdown();
  await ds?.destroy();
  await db?.drop();
}, 30_000);

const effect = (ctx: Ctx, kind = 'do'): Promise<unknown> =>
  ctx.manager.query(
    'INSERT INTO public.effects (saga_id, step, kind, attempt) VALUES ($1, $2, $3, $4)',
    [ctx.sagaId, ctx.stepName, kind, ctx.attempt],
  );

it('WAIT_ALL: a pivot completing after its sibling used up its attempts → the sibling is retried forward, the saga completes', async () => {
  let sagaId = '';
  /** side's last attempt failed: its verdict waits for the pivot (or, before the fix, is final). */
  const sideOut = (): boolean =>
    logged.includes('saga.step.awaiting_pivot:side') ||
    events.some((e) => e.sagaId === sagaId && e.type === 'step.failed' && e.step === 'side');
  engine.register(
    defineSaga<unknown, EntityManager>('pivot-beside-failing-step', {
      failureStrategy: 'WAIT_ALL',
      afterPivotMaxAttempts: 3,
    })
      .step('reserve', { run: (ctx) => effect(ctx), compensate: (ctx) => effect(ctx, 'undo') })
      .step('ship', {
        dependsOn: ['reserve'],
        pivot: true,
        run: async (ctx) => {
          await waitUntil(sideOut, 'side to use up its attempts');
          await effect(ctx);
          return 'shipped';
        },
      })
      .step('side', {
        dependsOn: ['reserve'],
        retry: { maxAttempts: 1, initialDelayMs: 1 },
        run: async (ctx) => {
          await effect(ctx); // rolled back with the failed attempt
          if (ctx.attempt === 1) throw new Error('label printer jammed');
          return null;
        },
        compensate: (ctx) => effect(ctx, 'undo'),
      })
      .build(),
  );

  ({ sagaId } = await engine.start('pivot-beside-failing-step', {}));
  const saga = await engine.waitFor(sagaId, { timeoutMs: 10_000 });

  expect({ status: saga.status, error: saga.error }).toEqual({ status: 'completed', error: null });
  expect(saga.steps.find((s) => s.name === 'side')).toMatchObject({
    status: 'completed',
    attempts: 2,
  });
  const rows = await ds.query<{ step: string; kind: string; attempt: number }[]>(
    'SELECT step, kind, attempt FROM public.effects WHERE saga_id = $1 ORDER BY step, attempt',
    [sagaId],
  );
  expect(rows).toEqual([
    { step: 'reserve', kind: 'do', attempt: 1 },
    { step: 'ship', kind: 'do', attempt: 1 },
    { step: 'side', kind: 'do', attempt: 2 },
  ]);
  expect(events.filter((e) => e.sagaId === sagaId && e.type === 'step.failed')).toEqual([]);
});
