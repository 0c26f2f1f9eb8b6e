/**
 * What the saga commit-count int-specs share (saga-commits-per-step, saga-first-step-in-start,
 * saga-remote-commits): a test database with a `public.effects` table that steps write into, a
 * SagaEngine on PostgreSQL whose connections carry `application_name` = the spec's name, so that
 * test/support/statement-counter counts what the engine sends and nothing else, and the engine's
 * events kept in order. Created at `describe` level (the counter hooks the driver then), opened in
 * `beforeAll`, closed in `afterAll`.
 */
import type { DataSource, EntityManager } from 'typeorm';
import {
  PostgresSagaStore,
  SagaEngine,
  type SagaEngineOptions,
  type SagaEvent,
} from '../../libs/saga-outbox/src/index';
import { createSagaDataSource } from '../../libs/saga-outbox/src/persistence/postgres/data-source';
import { createTestDatabase, dataSourceOptions, type TestDatabase } from './pg';
import { countStatements, transactionsOf } from './statement-counter';

/** A business effect: one row per step attempt that wrote it. */
const EFFECTS_TABLE_SQL = `
  CREATE TABLE public.effects (
    id      bigserial PRIMARY KEY,
    saga_id uuid      NOT NULL,
    step    text      NOT NULL,
    attempt integer   NOT NULL
  )`;

/** What a step's `run` or `compensate` is given that the effects need. */
interface EffectContext {
  sagaId: string;
  stepName: string;
  manager: EntityManager;
}

/** A step's effect, written in the step's transaction. */
export async function insertEffect(ctx: EffectContext & { attempt: number }): Promise<void> {
  await ctx.manager.query(
    'INSERT INTO public.effects (saga_id, step, attempt) VALUES ($1, $2, $3)',
    [ctx.sagaId, ctx.stepName, ctx.attempt],
  );
}

/** A step's compensation: its effects gone, in the compensation's transaction. */
export async function deleteEffects(ctx: EffectContext): Promise<void> {
  await ctx.manager.query('DELETE FROM public.effects WHERE saga_id = $1 AND step = $2', [
    ctx.sagaId,
    ctx.stepName,
  ]);
}

/** What one of `count` sagas sent, on average, and which sagas they were. */
export interface PerSaga {
  ids: string[];
  statements: number;
  commits: number;
  transactions: number;
  byKeyword: Record<string, number>;
}

export interface CountedSagas {
  readonly counter: ReturnType<typeof countStatements>;
  /** Every event the engine emitted, in order. */
  readonly events: SagaEvent[];
  readonly ds: DataSource;
  readonly engine: SagaEngine<EntityManager>;
  /**
   * Creates the database, the effects table and the engine (its store: PostgresSagaStore).
   * `options` gets the open DataSource, for what else the engine writes to (an outbox).
   */
  open(
    options: (ds: DataSource) => Omit<SagaEngineOptions<EntityManager>, 'store'>,
  ): Promise<SagaEngine<EntityManager>>;
  /** Unhooks the counter, shuts the engine down, drops the database. */
  close(): Promise<void>;
  /** The saga's effects, in the order they were written. */
  effectsOf(sagaId: string): Promise<{ step: string; attempt: number }[]>;
  /** The saga's event types, in order. */
  typesOf(sagaId: string): string[];
  /** Resolves once the saga emitted one of `types`. */
  seen(sagaId: string, ...types: SagaEvent['type'][]): Promise<void>;
  /**
   * Starts `count` sagas of `saga` one after another, each once the one before it ended, and
   * returns what one of them sent on average; every one must have completed.
   */
  perSaga(saga: string, count: number): Promise<PerSaga>;
}

export function countedSagas(application: string): CountedSagas {
  const counter = countStatements(application);
  const events: SagaEvent[] = [];
  let db: TestDatabase | undefined;
  let ds: DataSource | undefined;
  let engine: SagaEngine<EntityManager> | undefined;
  const opened = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error(`countedSagas(${application}): open() it first`);
    return value;
  };
  const sagas: CountedSagas = {
    counter,
    events,
    get ds() {
      return opened(ds);
    },
    get engine() {
      return opened(engine);
    },
    async open(options) {
      db = await createTestDatabase();
      ds = createSagaDataSource(
        dataSourceOptions(db.name, { poolSize: 4, applicationName: application }),
      );
      await ds.initialize();
      await ds.query(EFFECTS_TABLE_SQL);
      engine = new SagaEngine<EntityManager>({ store: new PostgresSagaStore(ds), ...options(ds) });
      engine.onEvent((e) => events.push(e));
      return engine;
    },
    async close() {
      counter.stop();
      await engine?.shutdown();
      await ds?.destroy();
      await db?.drop();
    },
    effectsOf: (sagaId) =>
      opened(ds).query('SELECT step, attempt FROM public.effects WHERE saga_id = $1 ORDER BY id', [
        sagaId,
      ]),
    typesOf: (sagaId) => events.filter((e) => e.sagaId === sagaId).map((e) => e.type),
    seen: (sagaId, ...types) =>
      new Promise<void>((resolve) => {
        const poll = (): void =>
          void (events.some((e) => e.sagaId === sagaId && types.includes(e.type))
            ? resolve()
            : setTimeout(poll, 5));
        poll();
      }),
    async perSaga(saga, count) {
      const ids: string[] = [];
      counter.reset();
      for (let i = 0; i < count; i++) {
        // waitFor's reads would be counted: the events say when the saga ended instead.
        const { sagaId } = await sagas.engine.start(saga, { n: i });
        ids.push(sagaId);
        await sagas.seen(sagaId, 'saga.completed', 'saga.compensated');
      }
      const tally = counter.tally();
      for (const id of ids) expect((await sagas.engine.get(id)).status).toBe('completed');
      return {
        ids,
        statements: tally.statements / count,
        commits: tally.commits / count,
        transactions: transactionsOf(tally) / count,
        byKeyword: tally.byKeyword,
      };
    },
  };
  return sagas;
}
