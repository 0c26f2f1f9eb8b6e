import 'reflect-metadata';
import { Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Registry } from 'prom-client';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import {
  InboxService,
  InMemoryBroker,
  OutboxRepository,
  Saga,
  SagaOutboxModule,
  SagaService,
  SagaStep,
  SageDatabase,
  type SagaOutboxModuleOptions,
} from '../../index';
import { deferred, waitUntil } from '../../testing/async';
import { SageMetricsModule } from './sage-metrics.module';

jest.setTimeout(60_000);

const gate = { release: deferred() };
const stepStarted = { reached: deferred() };

@Saga('metered')
class MeteredSaga {
  @SagaStep('first', { compensatable: false })
  first() {
    return { ok: 1 };
  }

  @SagaStep('held', { dependsOn: ['first'], compensatable: false })
  async held() {
    stepStarted.reached.resolve();
    await gate.release.promise;
    return { ok: 2 };
  }
}

async function boot(
  options: SagaOutboxModuleOptions,
  registry: Registry,
): Promise<INestApplicationContext> {
  @Module({
    imports: [SagaOutboxModule.forRoot(options), SageMetricsModule.forRoot({ registry })],
    providers: [MeteredSaga],
  })
  class AppModule {}
  return NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
}

/** The value of one series, or undefined when the series does not exist. */
async function value(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`metric ${name} is not registered`);
  const { values } = await metric.get();
  const hit = values.find(
    (v) =>
      Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want) &&
      // for histograms, the _count series
      (!('metricName' in v) || v.metricName === undefined || v.metricName === `${name}_count`),
  );
  return hit?.value;
}

/** Sum over every series of a counter matching `labels`. */
async function sum(
  registry: Registry,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const { values } = await registry.getSingleMetric(name)!.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((total, v) => total + v.value, 0);
}

describe('SageMetricsModule on real PostgreSQL', () => {
  let db: TestDatabase;
  let postgres: SagaOutboxModuleOptions['postgres'];

  beforeAll(async () => {
    db = await createTestDatabase();
    const c = db.connection;
    postgres = { ...c, poolSize: 4 };
  });
  afterAll(() => db?.drop());

  it('counts sagas and steps from engine events and reads saga_active from the database', async () => {
    const registry = new Registry();
    const app = await boot(
      { postgres, broker: new InMemoryBroker(), outbox: { relay: { pollIntervalMs: 20 } } },
      registry,
    );
    try {
      const sagas = app.get(SagaService);
      expect(await value(registry, 'saga_started_total', { saga: 'metered' })).toBeUndefined();
      const { sagaId } = await sagas.start('metered', {});
      await stepStarted.reached.promise;
      expect(await value(registry, 'saga_started_total', { saga: 'metered' })).toBe(1);
      expect(await value(registry, 'saga_active', { saga: 'metered' })).toBe(1);
      expect(
        await value(registry, 'saga_step_duration_seconds', { saga: 'metered', step: 'first' }),
      ).toBe(1);

      gate.release.resolve();
      expect((await sagas.waitFor(sagaId)).status).toBe('completed');
      await waitUntil(
        async () => (await value(registry, 'saga_completed_total', { saga: 'metered' })) === 1,
        'saga_completed_total to reach 1',
      );
      expect(
        await value(registry, 'saga_duration_seconds', { saga: 'metered', outcome: 'completed' }),
      ).toBe(1);
      expect(await value(registry, 'saga_active', { saga: 'metered' })).toBeUndefined();
      expect(await value(registry, 'saga_failed_total', { saga: 'metered' })).toBeUndefined();
      // The pool gauge reads the DataSource's node-postgres pool.
      expect(await value(registry, 'sage_db_pool_connections', { state: 'total' })).toBeGreaterThan(
        0,
      );
      expect(await value(registry, 'outbox_relay_running')).toBe(1);
      await waitUntil(
        async () => ((await value(registry, 'outbox_relay_last_tick_timestamp_seconds')) ?? 0) > 0,
        'the relay loop to tick',
      );
    } finally {
      await app.close();
    }
    // Shutdown unregisters everything, so another app can register the same names.
    expect(registry.getMetricsAsArray()).toHaveLength(0);
  });

  it('reads the outbox backlog gauges from the database and counts inbox outcomes', async () => {
    const registry = new Registry();
    // No relay here, so the backlog stays where the test puts it.
    const app = await boot(
      { postgres, broker: new InMemoryBroker(), outbox: { relay: { enabled: false } } },
      registry,
    );
    try {
      const ds = app.get(SageDatabase).dataSource;
      const outbox = app.get(OutboxRepository);
      const pendingBefore = (await value(registry, 'outbox_pending_messages')) ?? 0;
      const ids = await ds.transaction((manager) =>
        outbox.publish(
          [1, 2, 3, 4].map((n) => ({ destination: 'metrics', type: 'counted', payload: { n } })),
          { manager },
        ),
      );
      expect(await value(registry, 'outbox_pending_messages')).toBe(pendingBefore + 4);
      expect(await value(registry, 'outbox_oldest_pending_age_seconds')).toBeGreaterThanOrEqual(0);
      // Age grows on the database clock.
      await ds.query(
        `UPDATE sage.outbox_message SET created_at = clock_timestamp() - interval '90 seconds' WHERE id = $1`,
        [ids[0]],
      );
      await waitUntil(
        async () => ((await value(registry, 'outbox_oldest_pending_age_seconds')) ?? 0) >= 90,
        'the oldest pending age to reflect the 90 s old row',
      );
      const deadBefore = (await value(registry, 'outbox_dead_letter_messages')) ?? 0;
      await ds.query(`UPDATE sage.outbox_message SET status = 'dead_letter' WHERE id = $1`, [
        ids[1],
      ]);
      await waitUntil(
        async () => (await value(registry, 'outbox_dead_letter_messages')) === deadBefore + 1,
        'outbox_dead_letter_messages to count the dead letter',
      );
      expect(await value(registry, 'outbox_pending_messages')).toBe(pendingBefore + 3);
      expect(await value(registry, 'outbox_relay_running')).toBe(0);

      const inbox = app.get(InboxService);
      const messageId = ids[2]!;
      await inbox.handle('metrics.consumer', messageId, () => Promise.resolve());
      await inbox.handle('metrics.consumer', messageId, () => Promise.resolve());
      await expect(
        inbox.handle('metrics.consumer', ids[3]!, () => Promise.reject(new Error('boom'))),
      ).rejects.toThrow();
      expect(await value(registry, 'inbox_processed_total', { consumer: 'metrics.consumer' })).toBe(
        1,
      );
      expect(
        await value(registry, 'inbox_duplicates_total', { consumer: 'metrics.consumer' }),
      ).toBe(1);
      expect(await value(registry, 'inbox_failed_total', { consumer: 'metrics.consumer' })).toBe(1);
      expect(
        await value(registry, 'inbox_handler_duration_seconds', { consumer: 'metrics.consumer' }),
      ).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('counts relay claims and publishes by destination, type and path', async () => {
    const registry = new Registry();
    const broker = new InMemoryBroker();
    const app = await boot(
      { postgres, broker, outbox: { relay: { pollIntervalMs: 20 } } },
      registry,
    );
    try {
      const ds = app.get(SageDatabase).dataSource;
      const outbox = app.get(OutboxRepository);
      await ds.transaction((manager) =>
        outbox.publish(
          [1, 2, 3].map((n) => ({ destination: 'metered.out', type: 'tick', payload: { n } })),
          { manager },
        ),
      );
      const labels = { destination: 'metered.out', type: 'tick', path: 'relay' };
      await waitUntil(
        async () => (await value(registry, 'outbox_published_total', labels)) === 3,
        'outbox_published_total to count 3 relay publishes',
        10_000,
      );
      expect(
        await value(registry, 'outbox_claimed_total', { path: 'relay' }),
      ).toBeGreaterThanOrEqual(3);
      // Rows left pending by the previous test (same database) are published too: every
      // publish observed once in each histogram.
      const published = await sum(registry, 'outbox_published_total', { path: 'relay' });
      expect(published).toBeGreaterThanOrEqual(3);
      expect(await value(registry, 'outbox_publish_duration_seconds', { path: 'relay' })).toBe(
        published,
      );
      expect(await value(registry, 'outbox_commit_to_publish_seconds', { path: 'relay' })).toBe(
        published,
      );
      expect(
        await value(registry, 'outbox_batch_duration_seconds', { path: 'relay' }),
      ).toBeGreaterThanOrEqual(1);
      await waitUntil(
        async () => (await value(registry, 'outbox_pending_messages')) === 0,
        'the backlog to drain',
        10_000,
      );
    } finally {
      await app.close();
    }
  });
});
