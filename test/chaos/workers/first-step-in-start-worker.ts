/**
 * A worker process for the firstStepInStart crash test (kill -9): registers a 3-step local saga
 * with `firstStepInStart: true` whose steps each write one effect row. Config (JSON argument):
 * `{ database, ownerId, mode, leaseMs }`.
 * - `start`: starts saga `x` (blocks inside its first step, i.e. inside start()'s transaction) and
 *   saga `y` (blocks inside its second step, after its start committed), prints
 *   `{"blocked":"<step>","key":…}` for each, and waits to be killed.
 * - `recover`: runs the recovery loop and starts `x` again with the same idempotency key, as a
 *   caller that saw its start fail would; prints `{"started":…}`.
 */
import { defineSaga, PostgresSagaStore, SagaEngine, type StepContext } from '@sage/saga-outbox';
import type { EntityManager } from 'typeorm';
import { createSagaDataSource } from '../../../libs/saga-outbox/src/persistence/postgres/data-source';
import { dataSourceOptions } from '../../support/pg';
import { spawnWorkerScript, type WorkerHandle } from './saga-worker';

export const INLINE_SAGA = 'chaos-first-step-in-start';

export interface InlineInput {
  key: string;
  /** In `start` mode: the step that never returns (the window of the kill). */
  blockAt: 'a' | 'b' | null;
}

export interface InlineWorkerConfig {
  database: string;
  ownerId: string;
  mode: 'start' | 'recover';
  leaseMs: number;
}

export const INLINE_EFFECTS_DDL = `
  CREATE TABLE public.effects (
    id      bigserial PRIMARY KEY,
    saga_id uuid      NOT NULL,
    step    text      NOT NULL,
    owner   text      NOT NULL
  )`;

async function main(config: InlineWorkerConfig): Promise<void> {
  const out = (msg: Record<string, unknown>): void => {
    process.stdout.write(`${JSON.stringify(msg)}\n`);
  };
  const dataSource = createSagaDataSource(
    dataSourceOptions(config.database, {
      poolSize: 6,
      applicationName: `inline-worker:${config.ownerId}`,
    }),
  );
  await dataSource.initialize();
  const engine = new SagaEngine<EntityManager>({
    store: new PostgresSagaStore(dataSource),
    ownerId: config.ownerId,
    leaseMs: config.leaseMs,
    recoveryIntervalMs: 100,
  });
  const run = async (ctx: StepContext<InlineInput, EntityManager>): Promise<null> => {
    await ctx.manager.query(
      'INSERT INTO public.effects (saga_id, step, owner) VALUES ($1, $2, $3)',
      [ctx.sagaId, ctx.stepName, config.ownerId],
    );
    if (config.mode === 'start' && ctx.input.blockAt === ctx.stepName) {
      out({ blocked: ctx.stepName, key: ctx.input.key, sagaId: ctx.sagaId });
      await new Promise<never>(() => undefined); // until kill -9
    }
    return null;
  };
  engine.register(
    defineSaga<InlineInput, EntityManager>(INLINE_SAGA, { firstStepInStart: true })
      .step('a', { run, compensatable: false })
      .step('b', { dependsOn: ['a'], run, compensatable: false })
      .step('c', { dependsOn: ['b'], run, compensatable: false })
      .build(),
  );
  engine.onEvent((e) => {
    if (e.type === 'saga.completed') out({ completed: e.sagaId });
  });
  if (config.mode === 'start') {
    // Not awaited: x never returns (its first step blocks inside start()); y returns once stored.
    void engine.start(INLINE_SAGA, { key: 'x', blockAt: 'a' }, { idempotencyKey: 'x' });
    const y = await engine.start(INLINE_SAGA, { key: 'y', blockAt: 'b' }, { idempotencyKey: 'y' });
    out({ started: 'y', sagaId: y.sagaId });
    return;
  }
  await engine.startBackground();
  const x = await engine.start(INLINE_SAGA, { key: 'x', blockAt: null }, { idempotencyKey: 'x' });
  out({ started: 'x', ...x });
}

if (require.main === module) {
  const config = JSON.parse(process.argv[2] ?? '') as InlineWorkerConfig;
  main(config).catch((error: unknown) => {
    process.stderr.write(`inline worker ${config.ownerId} crashed: ${String(error)}\n`);
    process.exit(1);
  });
}

export function spawnInlineWorker(config: InlineWorkerConfig): WorkerHandle {
  return spawnWorkerScript('first-step-in-start-worker.ts', config);
}
