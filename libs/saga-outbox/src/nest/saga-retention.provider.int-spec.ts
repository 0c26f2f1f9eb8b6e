/**
 * SagaOutboxModule runs saga retention on its own (`saga.retention`): on real PostgreSQL an old
 * terminal saga disappears while an old running one stays, the deletion shows in
 * `retention_rows_total`, and `enabled: false` / `autoStart: false` run nothing.
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Registry } from 'prom-client';
import { createTestDatabase, sagePostgresOptions, type TestDatabase } from '@test/support/pg';
import { SagaOutboxModule, SageDatabase, type SagaOutboxModuleOptions } from '../index';
import { SageMetricsModule } from '../metrics';
import { waitUntil } from '../testing/async';
import { SagaRetentionProvider } from './saga-retention.provider';

jest.setTimeout(30_000);

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

async function appWith(
  options: Partial<SagaOutboxModuleOptions>,
  registry?: Registry,
): Promise<INestApplicationContext> {
  @Module({
    imports: [
      SagaOutboxModule.forRoot({
        postgres: { ...sagePostgresOptions(db.connection), poolSize: 3 },
        outbox: { relay: { enabled: false }, retention: { enabled: false } },
        inbox: { retention: { enabled: false } },
        ...options,
      }),
      ...(registry ? [SageMetricsModule.forRoot({ registry })] : []),
    ],
  })
  class AppModule {}
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  await app.init();
  return app;
}

async function sagaAged(app: INestApplicationContext, status: string, days: number) {
  const id = randomUUID();
  await app.get(SageDatabase).dataSource.query(
    `INSERT INTO sage.saga_instance (id, name, version, status, input, updated_at)
     VALUES ($1, 'module-retention', 'v1', $2, '{}', clock_timestamp() - $3 * interval '1 day')`,
    [id, status, days],
  );
  return id;
}

const exists = async (app: INestApplicationContext, id: string): Promise<boolean> =>
  (
    (await app
      .get(SageDatabase)
      .dataSource.query('SELECT 1 FROM sage.saga_instance WHERE id = $1', [id])) as unknown[]
  ).length === 1;

it('deletes old terminal sagas on its own (default 30 days), counted in retention_rows_total; never running ones', async () => {
  const registry = new Registry();
  const app = await appWith({ saga: { retention: { intervalMs: 20 } } }, registry);
  try {
    const retention = app.get(SagaRetentionProvider).retention!;
    expect(retention.retentionMs).toBe(30 * 24 * 3_600_000);
    const old = await sagaAged(app, 'compensated', 31);
    const young = await sagaAged(app, 'completed', 29);
    const running = await sagaAged(app, 'running', 3650);
    await waitUntil(async () => !(await exists(app, old)), 'the old compensated saga to go');
    await waitUntil(() => retention.stats.loop.ticks >= 2, 'another retention run');
    expect(await exists(app, young)).toBe(true);
    expect(await exists(app, running)).toBe(true);
    const values = (await registry.getSingleMetric('retention_rows_total')!.get()).values;
    expect(values).toContainEqual({ labels: { what: 'sagas', action: 'deleted' }, value: 1 });
  } finally {
    await app.close();
  }
});

it('enabled: false builds none; autoStart: false builds it but does not start it', async () => {
  const off = await appWith({ saga: { retention: { enabled: false } } });
  try {
    expect(off.get(SagaRetentionProvider).retention).toBeUndefined();
  } finally {
    await off.close();
  }
  const manual = await appWith({ autoStart: false, saga: { retention: { intervalMs: 20 } } });
  try {
    const old = await sagaAged(manual, 'failed', 400);
    const retention = manual.get(SagaRetentionProvider).retention!;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(retention.stats.loop.ticks).toBe(0);
    expect(await exists(manual, old)).toBe(true);
    retention.start();
    await waitUntil(async () => !(await exists(manual, old)), 'the failed saga to go once started');
  } finally {
    await manual.close();
  }
});
