import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import {
  Compensate,
  defineSaga,
  InMemoryBroker,
  InvalidOptionsError,
  NotSerializableError,
  OutboxRelayService,
  OutboxRepository,
  Saga,
  SagaDefinitionError,
  SagaInputInvalidError,
  SagaNotFoundError,
  SagaOutboxModule,
  SagaService,
  SagaStep,
  SageDatabase,
  UnknownSagaError,
  type SagaCompensationContext,
  type SagaOutboxModuleOptions,
  type SagaStepContext,
} from '../index';

@Saga('greeting', {
  validate: (i: { name?: unknown }) =>
    typeof i?.name === 'string' ? true : 'name must be a string',
})
class GreetingSaga {
  @SagaStep('write')
  async write(ctx: SagaStepContext<{ name: string }>) {
    await ctx.manager.query(
      `CREATE TABLE IF NOT EXISTS public.greeting (saga_id uuid PRIMARY KEY, name text)`,
    );
    await ctx.manager.query(`INSERT INTO public.greeting VALUES ($1, $2)`, [
      ctx.sagaId,
      ctx.input.name,
    ]);
    return { greeted: ctx.input.name };
  }

  @Compensate('write')
  async unwrite(ctx: SagaCompensationContext<{ name: string }>) {
    await ctx.manager.query(`DELETE FROM public.greeting WHERE saga_id = $1`, [ctx.sagaId]);
  }

  @SagaStep('shout', { dependsOn: ['write'], compensatable: false })
  shout(ctx: SagaStepContext<{ name: string }>) {
    return { shouted: ctx.input.name.toUpperCase(), previous: ctx.results['write'] ?? null };
  }
}

async function boot(
  options: SagaOutboxModuleOptions,
  providers: unknown[] = [GreetingSaga],
): Promise<INestApplicationContext> {
  @Module({ imports: [SagaOutboxModule.forRoot(options)], providers: providers as never[] })
  class AppModule {}
  return NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
}

describe('SagaOutboxModule on real PostgreSQL', () => {
  let db: TestDatabase;
  let postgres: SagaOutboxModuleOptions['postgres'];

  beforeAll(async () => {
    db = await createTestDatabase({ migrated: false });
    const c = db.connection;
    postgres = {
      host: c.host,
      port: c.port,
      user: c.user,
      password: c.password,
      database: c.database,
      poolSize: 4,
    };
  });
  afterAll(() => db?.drop());

  it('runs a decorated saga end to end, with results passed between steps', async () => {
    const app = await boot({ postgres });
    try {
      const sagas = app.get(SagaService);
      const { sagaId, created } = await sagas.start(
        'greeting',
        { name: 'ada' },
        { idempotencyKey: 'g-1' },
      );
      expect(created).toBe(true);
      const done = await sagas.waitFor(sagaId);
      expect(done.status).toBe('completed');
      expect(done.steps.find((s) => s.name === 'shout')?.result).toEqual({
        shouted: 'ADA',
        previous: { greeted: 'ada' },
      });
      expect(await sagas.start('greeting', { name: 'ada' }, { idempotencyKey: 'g-1' })).toEqual({
        sagaId,
        created: false,
      });
    } finally {
      await app.close();
    }
  });

  it('rejects bad input at the boundary with typed errors and writes nothing', async () => {
    const app = await boot({ postgres });
    try {
      const sagas = app.get(SagaService);
      const ds = app.get(SageDatabase).dataSource;
      const count = async () =>
        (
          (await ds.query(`SELECT count(*)::int AS n FROM sage.saga_instance`)) as [{ n: number }]
        )[0].n;
      const before = await count();
      await expect(sagas.start('no-such-saga', {})).rejects.toThrow(UnknownSagaError);
      await expect(sagas.start('no-such-saga', {})).rejects.toThrow(/Known sagas: "greeting"/);
      await expect(sagas.start('greeting', { name: 42 })).rejects.toThrow(SagaInputInvalidError);
      await expect(sagas.start('greeting', { name: 'x', when: new Date() })).rejects.toThrow(
        NotSerializableError,
      );
      await expect(sagas.start('greeting', { name: 'x', n: 10n })).rejects.toThrow(
        NotSerializableError,
      );
      await expect(sagas.start('greeting', { name: 'x' }, { idempotencyKey: '' })).rejects.toThrow(
        InvalidOptionsError,
      );
      await expect(sagas.get('not-a-uuid')).rejects.toThrow(SagaNotFoundError);
      expect(await count()).toBe(before);
    } finally {
      await app.close();
    }
  });

  it.each([
    [{ schema: 'Bad-Schema' }, /schema/],
    [{ saga: { leaseMs: -5 } }, /saga\.leaseMs/],
    [{ postgres: { url: 'mysql://x' } }, /postgres\.url/],
    [{ databse: {} }, /unknown option/],
  ])('fails startup on invalid module options %j', async (options, message) => {
    await expect(boot(options as SagaOutboxModuleOptions)).rejects.toThrow(InvalidOptionsError);
    await expect(boot(options as SagaOutboxModuleOptions)).rejects.toThrow(message);
  });

  it('fails startup on a malformed saga, naming saga and step', async () => {
    @Saga('broken')
    class BrokenSaga {
      @SagaStep('charge')
      charge() {}
    }
    await expect(boot({ postgres }, [BrokenSaga])).rejects.toThrow(SagaDefinitionError);
    await expect(boot({ postgres }, [BrokenSaga])).rejects.toThrow(
      /Saga "broken", step "charge": .*no compensation/,
    );

    @Saga('orphan-compensation')
    class OrphanCompensation {
      @SagaStep('a', { compensatable: false })
      a() {}
      @Compensate('b')
      undoB() {}
    }
    await expect(boot({ postgres }, [OrphanCompensation])).rejects.toThrow(
      /step "b": @Compensate\("b"\) names a step that has no @SagaStep/,
    );
  });

  it('accepts builder-defined sagas and gives them the same version as the decorated equivalent', async () => {
    const builderSaga = defineSaga<{ name: string }, EntityManager>('greeting-built')
      .step('write', { run: () => null, compensate: () => undefined })
      .step('shout', { dependsOn: ['write'], compensatable: false, run: () => 'ok' })
      .build();
    const app = await boot({ postgres, sagas: [builderSaga] });
    try {
      const sagas = app.get(SagaService);
      const a = await sagas.waitFor((await sagas.start('greeting-built', { name: 'x' })).sagaId);
      const b = await sagas.waitFor((await sagas.start('greeting', { name: 'x' })).sagaId);
      expect(a.status).toBe('completed');
      expect(a.version).toBe(b.version);
    } finally {
      await app.close();
    }
  });

  it('defaults to embedded PGlite when no database is configured', async () => {
    const app = await boot({ saga: { recoveryIntervalMs: 100 } });
    try {
      const sagas = app.get(SagaService);
      expect(app.get(SageDatabase).embedded).toBe(true);
      const done = await sagas.waitFor((await sagas.start('greeting', { name: 'pg-lite' })).sagaId);
      expect(done.status).toBe('completed');
      const rows = (await app
        .get(SageDatabase)
        .dataSource.query(`SELECT name FROM public.greeting`)) as { name: string }[];
      expect(rows).toEqual([{ name: 'pg-lite' }]);
    } finally {
      await app.close();
    }
  });

  it('autoStart: false builds the relay and retention but starts neither; started by hand, the relay publishes', async () => {
    const broker = new InMemoryBroker();
    const pollIntervalMs = 20;
    const app = await boot({
      postgres,
      broker,
      autoStart: false,
      outbox: { relay: { pollIntervalMs } },
    });
    try {
      const { relay, retention } = app.get(OutboxRelayService);
      const ds: DataSource = app.get(SageDatabase).dataSource;
      const [id] = await ds.transaction((manager) =>
        app
          .get(OutboxRepository)
          .publish({ destination: 'auto-start', type: 'idle', payload: null }, { manager }),
      );
      // Proving a negative takes a window: ten poll intervals in which a started relay would tick.
      await new Promise((resolve) => setTimeout(resolve, 10 * pollIntervalMs));
      expect(relay?.stats.loop.ticks).toBe(0);
      expect(retention?.stats.loop.ticks).toBe(0);
      expect(broker.published).toEqual([]);

      relay!.start();
      await broker.waitFor((published) => published.some((m) => m.id === id), 5_000);
    } finally {
      await app.close();
    }
  });

  it('uses the app DataSource and its transaction: a saga started in a rolled-back transaction never exists', async () => {
    const app = await boot({ postgres });
    try {
      const sagas = app.get(SagaService);
      const ds: DataSource = app.get(SageDatabase).dataSource;
      let startedId = '';
      await expect(
        ds.transaction(async (manager) => {
          startedId = (await sagas.start('greeting', { name: 'rolled-back' }, { manager })).sagaId;
          throw new Error('business rule failed');
        }),
      ).rejects.toThrow('business rule failed');
      await expect(sagas.get(startedId)).rejects.toThrow(SagaNotFoundError);

      const { sagaId } = await ds.transaction((manager) =>
        sagas.start('greeting', { name: 'committed' }, { manager }),
      );
      sagas.resumePending();
      expect((await sagas.waitFor(sagaId)).status).toBe('completed');
    } finally {
      await app.close();
    }
  });
});
