import 'reflect-metadata';
import { Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { TcpProxy } from '@test/support/tcp-proxy';
import { RabbitMqBroker } from '../../brokers/rabbitmq/rabbitmq-broker';
import { InMemoryBroker, OutboxRepository, SagaOutboxModule, SageDatabase } from '../../index';
import type { SagaOutboxModuleOptions } from '../saga-outbox.options';
import { waitUntil } from '../../testing/async';
import { SageHealthModule } from './sage-health.module';

jest.setTimeout(90_000);

interface HealthBody {
  status: 'ok' | 'error';
  info?: Record<string, Record<string, unknown>>;
  error?: Record<string, Record<string, unknown>>;
  details: Record<string, Record<string, unknown> & { status: 'up' | 'down' }>;
}

async function boot(
  options: SagaOutboxModuleOptions,
  health: Parameters<typeof SageHealthModule.forRoot>[0] = {},
): Promise<{ app: INestApplication; get: (path: string) => Promise<[number, HealthBody]> }> {
  @Module({ imports: [SagaOutboxModule.forRoot(options), SageHealthModule.forRoot(health)] })
  class AppModule {}
  const app = await NestFactory.create(AppModule, { logger: false, abortOnError: false });
  await app.listen(0, '127.0.0.1');
  const url = await app.getUrl();
  return {
    app,
    get: async (path) => {
      const response = await fetch(`${url.replace('[::1]', '127.0.0.1')}${path}`);
      return [response.status, (await response.json()) as HealthBody];
    },
  };
}

const rabbitUrl = new URL(process.env.SAGE_RABBITMQ_URL ?? 'amqp://sage:sage@127.0.0.1:56729');

describe('SageHealthModule: liveness and readiness against real PostgreSQL and RabbitMQ', () => {
  let db: TestDatabase;
  let pgProxy: TcpProxy;
  let amqpProxy: TcpProxy;

  beforeAll(async () => {
    db = await createTestDatabase();
    pgProxy = new TcpProxy({ host: db.connection.host, port: db.connection.port });
    amqpProxy = new TcpProxy({ host: rabbitUrl.hostname, port: Number(rabbitUrl.port) });
    await pgProxy.start();
    await amqpProxy.start();
  });
  afterAll(async () => {
    await pgProxy?.stop();
    await amqpProxy?.stop();
    await db?.drop();
  });

  it('turns down when the database or the broker goes away, and up again when they return', async () => {
    const amqp = new URL(rabbitUrl);
    amqp.port = String(amqpProxy.port);
    const broker = new RabbitMqBroker({ url: amqp.toString(), reconnectTimeInSeconds: 0.2 });
    const { app, get } = await boot(
      {
        postgres: { ...db.connection, port: pgProxy.port, poolSize: 2 },
        broker,
        outbox: { relay: { pollIntervalMs: 50, listen: false }, retention: { enabled: false } },
      },
      { timeoutMs: 1000, relayStaleAfterMs: 1500 },
    );
    try {
      await waitUntil(async () => (await get('/health/ready'))[0] === 200, 'ready', 15_000);
      const [, ready] = await get('/health/ready');
      expect(ready.details['sage_database']?.status).toBe('up');
      expect(ready.details['sage_broker']).toMatchObject({ status: 'up', broker: 'rabbitmq' });
      expect(ready.details['sage_outbox_backlog']).toMatchObject({
        status: 'up',
        pending: 0,
        exceeded: false,
      });
      const [liveStatus, live] = await get('/health/live');
      expect(liveStatus).toBe(200);
      expect(live.details['sage_relay']?.status).toBe('up');

      // The broker goes away: readiness fails on the broker only.
      await amqpProxy.stop();
      await waitUntil(async () => (await get('/health/ready'))[0] === 503, 'broker down', 15_000);
      const [, brokerDown] = await get('/health/ready');
      expect(brokerDown.details['sage_broker']?.status).toBe('down');
      expect(brokerDown.details['sage_database']?.status).toBe('up');
      await amqpProxy.start();
      await waitUntil(async () => (await get('/health/ready'))[0] === 200, 'broker back', 20_000);

      // The database goes away: readiness fails on it, and the relay loop stops ticking, so
      // liveness fails once the stale bound has passed.
      await pgProxy.stop();
      await waitUntil(async () => (await get('/health/ready'))[0] === 503, 'database down', 15_000);
      const [, dbDown] = await get('/health/ready');
      expect(dbDown.details['sage_database']?.status).toBe('down');
      await waitUntil(async () => (await get('/health/live'))[0] === 503, 'relay stale', 15_000);
      const [, stale] = await get('/health/live');
      expect(stale.details['sage_relay']?.status).toBe('down');
      expect(stale.details['sage_relay']?.['consecutiveErrors']).toBeGreaterThan(0);

      await pgProxy.start();
      await waitUntil(async () => (await get('/health/ready'))[0] === 200, 'database back', 20_000);
      await waitUntil(async () => (await get('/health/live'))[0] === 200, 'relay ticking', 20_000);
    } finally {
      await app.close();
      await broker.close();
    }
  });

  it('reports the backlog as data and fails readiness on it only when asked to', async () => {
    const postgres = { ...db.connection, poolSize: 2 };
    const options: SagaOutboxModuleOptions = {
      postgres,
      broker: new InMemoryBroker(),
      outbox: { relay: { enabled: false }, retention: { enabled: false } },
    };
    const lenient = await boot(options, { backlog: { maxPending: 2 } });
    try {
      const ds = lenient.app.get(SageDatabase).dataSource;
      const outbox = lenient.app.get(OutboxRepository);
      await ds.transaction((manager) =>
        outbox.publish(
          [1, 2, 3].map((n) => ({ destination: 'health', type: 'queued', payload: { n } })),
          { manager },
        ),
      );
      const [status, body] = await lenient.get('/health/ready');
      expect(status).toBe(200);
      expect(body.details['sage_outbox_backlog']).toMatchObject({
        status: 'up',
        pending: 3,
        maxPending: 2,
        exceeded: true,
      });
      // No relay in this process: liveness has nothing to watch.
      expect((await lenient.get('/health/live'))[1].details['sage_relay']).toMatchObject({
        status: 'up',
        configured: false,
      });
    } finally {
      await lenient.app.close();
    }
    const strict = await boot(options, { backlog: { maxPending: 2, failReadiness: true } });
    try {
      const [status, body] = await strict.get('/health/ready');
      expect(status).toBe(503);
      expect(body.details['sage_outbox_backlog']).toMatchObject({ status: 'down', exceeded: true });
    } finally {
      await strict.app.close();
    }
  });
});
