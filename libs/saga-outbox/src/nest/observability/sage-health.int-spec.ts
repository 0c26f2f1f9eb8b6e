import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import amqplib from 'amqplib';
import { Module, type INestApplication, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createTestDatabase, withClient, type TestDatabase } from '@test/support/pg';
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
  logger: LoggerService | false = false,
): Promise<{
  app: INestApplication;
  get: (path: string) => Promise<[number, HealthBody]>;
  raw: (path: string) => Promise<string>;
}> {
  @Module({ imports: [SagaOutboxModule.forRoot(options), SageHealthModule.forRoot(health)] })
  class AppModule {}
  const app = await NestFactory.create(AppModule, { logger, abortOnError: false });
  await app.listen(0, '127.0.0.1');
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  return {
    app,
    get: async (path) => {
      const response = await fetch(`${url}${path}`);
      return [response.status, (await response.json()) as HealthBody];
    },
    raw: async (path) => (await fetch(`${url}${path}`)).text(),
  };
}

/** Deletes what a test declared on the shared RabbitMQ: queues (+ .dlq), exchanges (+ .dlx). */
async function dropRabbitTopology(queues: string[], exchanges: string[]): Promise<void> {
  const connection = await amqplib.connect(rabbitUrl.toString());
  try {
    const channel = await connection.createChannel();
    for (const q of queues.flatMap((name) => [name, `${name}.dlq`])) await channel.deleteQueue(q);
    for (const e of exchanges.flatMap((name) => [name, `${name}.dlx`]))
      await channel.deleteExchange(e);
    await channel.close();
  } finally {
    await connection.close();
  }
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

  /**
   * A RabbitMQ broker on its own exchange, reached through the cuttable proxy. While it is cut a
   * publish waits `publishTimeoutMs` for its confirm, then fails: a relay tick ends after that.
   */
  function proxiedBroker(exchange: string): RabbitMqBroker {
    const amqp = new URL(rabbitUrl);
    amqp.port = String(amqpProxy.port);
    return new RabbitMqBroker({
      url: amqp.toString(),
      exchange,
      reconnectTimeInSeconds: 0.2,
      publishTimeoutMs: 500,
    });
  }

  const relayOptions: SagaOutboxModuleOptions['outbox'] = {
    // Quick retries so the test does not wait out a production backoff once the broker is back;
    // only 2 attempts, far fewer than the failed publishes of the outage below: an unreachable
    // broker must not spend them (nothing may be dead-lettered).
    relay: {
      pollIntervalMs: 50,
      listen: false,
      retry: { initialDelayMs: 100, maxDelayMs: 500, maxAttempts: 2 },
    },
    retention: { enabled: false },
  };

  it('by default stays ready and live while the broker is cut, the backlog grows as data, and every message is delivered once it returns', async () => {
    const exchange = `sage-health-${randomUUID()}`;
    const destination = `health.${randomUUID()}`;
    // The consumer connects directly: only the application's connection goes through the proxy.
    const consumer = new RabbitMqBroker({ url: rabbitUrl.toString(), exchange });
    const delivered = new Set<string>();
    const subscription = await consumer.subscribe(destination, (m) => {
      delivered.add(m.id);
      return Promise.resolve();
    });
    const broker = proxiedBroker(exchange);
    const { app, get, raw } = await boot(
      { postgres: { ...db.connection, poolSize: 2 }, broker, outbox: relayOptions },
      { timeoutMs: 1000, relayStaleAfterMs: 3000 },
    );
    try {
      await waitUntil(async () => (await get('/health/ready'))[0] === 200, 'ready', 15_000);
      expect((await get('/health/ready'))[1].details['sage_broker']).toMatchObject({
        status: 'up',
        broker: 'rabbitmq',
        reachable: true,
      });

      // The broker goes away: reported as data, readiness holds.
      await amqpProxy.stop();
      await waitUntil(
        async () => (await get('/health/ready'))[1].details['sage_broker']?.['reachable'] === false,
        'broker reported unreachable',
        15_000,
      );
      const publish = (n: number) =>
        app.get(SageDatabase).dataSource.transaction((manager) =>
          app.get(OutboxRepository).publish(
            Array.from({ length: n }, (_, i) => ({ destination, type: 'queued', payload: { i } })),
            { manager },
          ),
        );
      const ids = [...(await publish(3)), ...(await publish(2))];
      expect(ids).toHaveLength(5);
      await waitUntil(
        async () =>
          (await get('/health/ready'))[1].details['sage_outbox_backlog']?.['pending'] === 5,
        'backlog of 5',
        15_000,
      );
      const [readyStatus, ready] = await get('/health/ready');
      expect(readyStatus).toBe(200);
      expect(ready.status).toBe('ok');
      expect(ready.details['sage_database']?.status).toBe('up');
      expect(ready.details['sage_broker']).toMatchObject({
        status: 'up',
        broker: 'rabbitmq',
        reachable: false,
      });
      // A generic reason in the body; the broker's own text (host, port) is in the logs only.
      expect(ready.details['sage_broker']?.['message']).toBe('broker unreachable');
      expect(ready.details['sage_broker']).not.toHaveProperty('error');
      expect(ready.details['sage_outbox_backlog']).toMatchObject({ status: 'up', pending: 5 });

      // The relay keeps ticking while every publish fails: liveness holds well past its bound.
      const [, before] = await get('/health/live');
      const ticksBefore = Number(before.details['sage_relay']?.['ticks']);
      await new Promise((resolve) => setTimeout(resolve, 3_500)); // > relayStaleAfterMs
      const [liveStatus, live] = await get('/health/live');
      expect(liveStatus).toBe(200);
      expect(Number(live.details['sage_relay']?.['ticks'])).toBeGreaterThan(ticksBefore);
      expect(delivered.size).toBe(0);

      // No credentials in any health body (the broker URL has user and password).
      for (const path of ['/health/ready', '/health/live']) {
        const text = await raw(path);
        expect(text).not.toContain(`${rabbitUrl.username}:${rabbitUrl.password}@`);
      }

      // The broker returns: everything is delivered, the backlog drains.
      await amqpProxy.start();
      await waitUntil(() => ids.every((id) => delivered.has(id)), 'all 5 delivered', 30_000);
      await waitUntil(
        async () => {
          const [status, body] = await get('/health/ready');
          return (
            status === 200 &&
            body.details['sage_broker']?.['reachable'] === true &&
            body.details['sage_outbox_backlog']?.['pending'] === 0
          );
        },
        'broker reachable, backlog drained',
        20_000,
      );
      expect(delivered.size).toBe(5);
      expect((await get('/health/ready'))[1].details['sage_outbox_backlog']).toMatchObject({
        deadLetters: 0,
      });
    } finally {
      await app.close();
      await broker.close();
      await subscription.unsubscribe();
      await consumer.close();
      await dropRabbitTopology([consumer.queueName(destination)], [exchange]);
      await amqpProxy.start(); // idempotent: back for the next test whatever happened
    }
  });

  it('with broker.failReadiness fails readiness while the broker is cut, and recovers when it returns', async () => {
    const exchange = `sage-health-${randomUUID()}`;
    const broker = proxiedBroker(exchange);
    const { app, get } = await boot(
      { postgres: { ...db.connection, poolSize: 2 }, broker, outbox: relayOptions },
      { timeoutMs: 1000, broker: { failReadiness: true } },
    );
    try {
      await waitUntil(async () => (await get('/health/ready'))[0] === 200, 'ready', 15_000);
      await amqpProxy.stop();
      await waitUntil(async () => (await get('/health/ready'))[0] === 503, 'not ready', 15_000);
      const [, body] = await get('/health/ready');
      expect(body.status).toBe('error');
      expect(body.details['sage_broker']).toMatchObject({
        status: 'down',
        broker: 'rabbitmq',
        reachable: false,
      });
      expect(body.details['sage_database']?.status).toBe('up');
      // Liveness is not readiness: the process is still worth keeping.
      expect((await get('/health/live'))[0]).toBe(200);
      await amqpProxy.start();
      await waitUntil(async () => (await get('/health/ready'))[0] === 200, 'ready again', 20_000);
    } finally {
      await app.close();
      await broker.close();
      await amqpProxy.start();
      await dropRabbitTopology([], [exchange]);
    }
  });

  it('turns down when the database goes away, and up again when it returns', async () => {
    const exchange = `sage-health-${randomUUID()}`;
    const broker = proxiedBroker(exchange);
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
      const [liveStatus, live] = await get('/health/live');
      expect(liveStatus).toBe(200);
      expect(live.details['sage_relay']?.status).toBe('up');

      // The database goes away: readiness fails on it, and the relay loop stops ticking, so
      // liveness fails once the stale bound has passed.
      await pgProxy.stop();
      await waitUntil(async () => (await get('/health/ready'))[0] === 503, 'database down', 15_000);
      const [, dbDown] = await get('/health/ready');
      expect(dbDown.details['sage_database']).toMatchObject({
        status: 'down',
        message: 'database unreachable',
      });
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
      await dropRabbitTopology([], [exchange]);
    }
  });

  it('answers a failed password with a generic reason and the SQLSTATE, logging the raw text once per change of state', async () => {
    const role = `sage_health_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    const [password, rotated] = [randomUUID(), randomUUID()];
    const admin = (sql: string, params: unknown[] = []) =>
      withClient(db.name, (client) => client.query(sql, params));
    // Member of the test database's owner: the same privileges, its own password.
    await admin(`CREATE ROLE ${role} LOGIN PASSWORD '${password}' IN ROLE ${db.connection.user}`);
    const warnings: string[] = [];
    const ignore = () => undefined;
    const logger: LoggerService = {
      log: ignore,
      error: ignore,
      warn: (message: unknown) => warnings.push(JSON.stringify(message)),
    };
    const { app, get, raw } = await boot(
      {
        postgres: { ...db.connection, user: role, password, poolSize: 2 },
        broker: new InMemoryBroker(),
        outbox: { relay: { enabled: false }, retention: { enabled: false } },
      },
      { timeoutMs: 2000 },
      logger,
    );
    try {
      expect((await get('/health/ready'))[0]).toBe(200);
      // The password is rotated and the role's sessions end: every new connection is refused.
      await admin(`ALTER ROLE ${role} PASSWORD '${rotated}'`);
      await admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [
        role,
      ]);
      await waitUntil(async () => (await get('/health/ready'))[0] === 503, 'not ready', 15_000);
      const [, body] = await get('/health/ready');
      expect(body.details['sage_database']).toEqual({
        status: 'down',
        message: 'database unreachable',
        code: '28P01',
      });
      for (let probe = 0; probe < 3; probe++) {
        const text = await raw('/health/ready');
        expect(text).not.toContain('password authentication failed');
        expect(text).not.toContain(role);
      }
      const logged = warnings.filter((w) => w.includes('health check sage_database down'));
      expect(logged).toHaveLength(1);
      expect(logged[0]).toContain(`password authentication failed for user \\"${role}\\"`);
      expect(warnings.join('\n')).not.toContain(password);
      expect(warnings.join('\n')).not.toContain(rotated);
    } finally {
      await app.close();
      await admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [
        role,
      ]);
      await admin(`DROP ROLE IF EXISTS ${role}`);
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
