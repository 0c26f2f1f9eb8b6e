import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { Controller, Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { Ctx, EventPattern } from '@nestjs/microservices';
import { NestFactory } from '@nestjs/core';
import { createTestDatabase, withClient, type TestDatabase } from '@test/support/pg';
import { CapturingLogger, closedPort } from '@test/support/startup-support';
import { TcpProxy } from '@test/support/tcp-proxy';
import { KafkaBroker } from '../../brokers/kafka/kafka-broker';
import { NatsJetStreamBroker } from '../../brokers/nats/nats-broker';
import { RabbitMqBroker } from '../../brokers/rabbitmq/rabbitmq-broker';
import { SageBrokerContext, SageBrokerTransport } from '../microservices/sage-broker.transport';
import { waitUntil } from '../../testing/async';
import {
  BrokerUnavailableError,
  IdempotentHandler,
  IdempotentHandlerExplorer,
  OUTBOX_BROKER,
  OutboxRepository,
  SageDatabase,
  SagaOutboxModule,
  type Broker,
  type BrokerMessage,
  type DeliveredMessage,
  type SagaOutboxModuleOptions,
} from '../../index';

jest.setTimeout(60_000);

const RABBIT = new URL(process.env.SAGE_RABBITMQ_URL ?? 'amqp://sage:sage@127.0.0.1:56729');
const NATS = new URL(process.env.SAGE_NATS_URL ?? 'nats://127.0.0.1:42229');
const [KAFKA_HOST, KAFKA_PORT] = (process.env.SAGE_KAFKA_BROKERS ?? '127.0.0.1:19092')
  .split(',')[0]!
  .split(':');

interface BrokerKind {
  kind: 'rabbitmq' | 'kafka' | 'nats';
  /** The real server, behind the proxy. */
  target: { host: string; port: number };
  /** The module's `broker` URL for a server at 127.0.0.1:port. */
  url: (port: number) => string;
  /** What the startup WARN and errors say about it. */
  unreachable: (port: number) => RegExp;
}

const KINDS: BrokerKind[] = [
  {
    kind: 'rabbitmq',
    target: { host: RABBIT.hostname, port: Number(RABBIT.port) },
    url: (port) => `amqp://${RABBIT.username}:${RABBIT.password}@127.0.0.1:${port}`,
    unreachable: (port) =>
      new RegExp(
        `cannot connect to RabbitMQ at 127\\.0\\.0\\.1:${port}: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}`,
      ),
  },
  {
    kind: 'kafka',
    target: { host: KAFKA_HOST!, port: Number(KAFKA_PORT) },
    url: (port) => `kafka://127.0.0.1:${port}`,
    unreachable: (port) =>
      new RegExp(
        `cannot reach Kafka at 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED 127\\.0\\.0\\.1:${port}`,
      ),
  },
  {
    kind: 'nats',
    target: { host: NATS.hostname, port: Number(NATS.port) },
    url: (port) => `nats://127.0.0.1:${port}`,
    unreachable: (port) =>
      new RegExp(
        `cannot reach NATS at nats://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED 127\\.0\\.0\\.1:${port}`,
      ),
  },
];

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

/** An app whose @IdempotentHandler consumes `destination`, recording what it handled. */
async function boot(
  options: SagaOutboxModuleOptions,
  destination: string,
  logger: CapturingLogger,
): Promise<{ app: INestApplicationContext; handled: string[] }> {
  const handled: string[] = [];
  @Injectable()
  class Consumer {
    @IdempotentHandler(destination, { consumer: `startup-${destination}` })
    handle(message: DeliveredMessage): Promise<void> {
      handled.push(message.id);
      return Promise.resolve();
    }
  }
  const c = db.connection;
  @Module({
    imports: [
      SagaOutboxModule.forRoot({
        postgres: {
          host: c.host,
          port: c.port,
          user: c.user,
          password: c.password,
          database: c.database,
        },
        runMigrations: false,
        // Quick relay retries: the outage in these tests lasts seconds.
        outbox: { relay: { retry: { initialDelayMs: 100, maxDelayMs: 500 } } },
        ...options,
      }),
    ],
    providers: [Consumer],
  })
  class AppModule {}
  const app = await NestFactory.createApplicationContext(AppModule, {
    logger,
    abortOnError: false,
  });
  return { app, handled };
}

async function publishThroughOutbox(
  app: INestApplicationContext,
  destination: string,
): Promise<string> {
  const outbox = app.get(OutboxRepository);
  const [id] = await app
    .get(SageDatabase)
    .dataSource.transaction((manager) =>
      outbox.publish(
        { destination, type: 'startup.test', key: 'k1', payload: { n: 1 } },
        { manager },
      ),
    );
  return id!;
}

async function outboxStatus(id: string): Promise<string | undefined> {
  return withClient(db.name, async (client) => {
    const { rows } = await client.query<{ status: string }>(
      'SELECT status FROM sage.outbox_message WHERE id = $1',
      [id],
    );
    return rows[0]?.status;
  });
}

describe.each(KINDS)('Startup with $kind down', ({ kind, target, url, unreachable }) => {
  it("'degraded' (default): starts, one WARN with the cause; what was published meanwhile is delivered and consumed once it is back", async () => {
    const proxy = new TcpProxy(target);
    const port = await proxy.start();
    await proxy.stop(); // the broker is "down" for this app
    const destination = `startup-${kind}-${randomUUID().slice(0, 8)}`;
    const logger = new CapturingLogger();
    const started = Date.now();
    const { app, handled } = await boot(
      { broker: url(port), retryDelay: 200 },
      destination,
      logger,
    );
    try {
      expect(Date.now() - started).toBeLessThan(10_000);
      const warnings = logger.warnings(/unreachable at startup/);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(new RegExp(`^Broker "${kind}" is unreachable at startup: `));
      expect(warnings[0]).toMatch(unreachable(port));
      expect(warnings[0]).toContain(
        "Starting without it (brokerStartup: 'degraded'): the outbox keeps every message",
      );
      expect(logger.all).not.toContain(`${RABBIT.username}:${RABBIT.password}@`);
      expect(app.get(IdempotentHandlerExplorer).subscribed).toBe(0);

      const id = await publishThroughOutbox(app, destination);
      // Waiting in the outbox: pending, or claimed by a relay attempt that cannot finish.
      expect(await outboxStatus(id)).not.toBe('sent');
      await proxy.start(); // the broker is back
      await waitUntil(
        () => handled.includes(id),
        `the ${kind} handler to consume ${id}`,
        45_000,
        50,
      );
      expect(await outboxStatus(id)).toBe('sent');
      expect(app.get(IdempotentHandlerExplorer).subscribed).toBe(1);
      expect(logger.warnings(/unreachable at startup/)).toHaveLength(1);
    } finally {
      await app.close();
      await proxy.stop();
    }
  });

  it('SageBrokerTransport: startAllMicroservices() does not fail while the broker is down; @EventPattern consumes once it is back', async () => {
    const proxy = new TcpProxy(target);
    const port = await proxy.start();
    await proxy.stop();
    const destination = `startup-ep-${kind}-${randomUUID().slice(0, 8)}`;
    const received: string[] = [];
    @Controller()
    class Events {
      @EventPattern(destination)
      on(@Ctx() ctx: SageBrokerContext): Promise<void> {
        received.push(ctx.id);
        return Promise.resolve();
      }
    }
    const c = db.connection;
    @Module({
      imports: [
        SagaOutboxModule.forRoot({
          postgres: {
            host: c.host,
            port: c.port,
            user: c.user,
            password: c.password,
            database: c.database,
          },
          runMigrations: false,
          broker: url(port),
          retryDelay: 200,
          outbox: { relay: { retry: { initialDelayMs: 100, maxDelayMs: 500 } } },
        }),
      ],
      controllers: [Events],
    })
    class AppModule {}
    const logger = new CapturingLogger();
    const app = await NestFactory.create(AppModule, { logger, abortOnError: false });
    try {
      const broker = app.get<Broker>(OUTBOX_BROKER);
      app.connectMicroservice({
        strategy: new SageBrokerTransport({ broker, group: `ep-${kind}`, retryDelay: 200 }),
      });
      const started = Date.now();
      await app.startAllMicroservices();
      await app.init();
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(
        logger.warnings(/SageBrokerTransport @EventPattern subscriptions: cannot subscribe yet/),
      ).toHaveLength(1);

      const id = await publishThroughOutbox(app, destination);
      await proxy.start();
      await waitUntil(
        () => received.includes(id),
        `the ${kind} @EventPattern to receive ${id}`,
        45_000,
        50,
      );
    } finally {
      await app.close();
      await proxy.stop();
    }
  });

  it("'wait': retries retryAttempts × retryDelay, then fails startup with BrokerUnavailableError naming the broker and the cause", async () => {
    const port = await closedPort();
    const logger = new CapturingLogger();
    const error = await boot(
      { broker: url(port), brokerStartup: 'wait', retryAttempts: 2, retryDelay: 100 },
      `startup-${kind}-${randomUUID().slice(0, 8)}`,
      logger,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BrokerUnavailableError);
    expect(error).toMatchObject({ code: 'BROKER_UNAVAILABLE', broker: kind });
    const message = (error as Error).message;
    expect(message).toMatch(
      new RegExp(
        `^Broker "${kind}" is unavailable: not reachable at startup after 3 attempt\\(s\\), 100 ms apart: `,
      ),
    );
    expect(message).toMatch(unreachable(port));
    expect(message).toContain("brokerStartup: 'degraded' starts the app without it");
    expect(logger.warnings(/is unreachable: .*; attempt \d\/3, retrying in 100 ms/)).toHaveLength(
      2,
    );
    expect(`${message}${logger.all}`).not.toContain(`${RABBIT.username}:${RABBIT.password}@`);
  });

  it("'wait' with the broker up: starts and subscribes at once", async () => {
    const proxy = new TcpProxy(target);
    const port = await proxy.start();
    const destination = `startup-${kind}-${randomUUID().slice(0, 8)}`;
    const logger = new CapturingLogger();
    const { app } = await boot({ broker: url(port), brokerStartup: 'wait' }, destination, logger);
    try {
      expect(app.get(IdempotentHandlerExplorer).subscribed).toBe(1);
      expect(logger.warnings(/unreachable/)).toEqual([]);
    } finally {
      await app.close();
      await proxy.stop();
    }
  });
});

describe('publish errors carry the real cause', () => {
  const message = (): BrokerMessage => ({
    id: randomUUID(),
    destination: 'startup-cause',
    key: null,
    type: 't',
    payload: 1,
    headers: {},
    time: new Date(),
  });
  const brokers: Broker[] = [];
  afterAll(() => Promise.all(brokers.map((b) => b.close())));

  it('RabbitMQ: not connected, with the connection error, then the confirm timeout', async () => {
    const port = await closedPort();
    const broker = new RabbitMqBroker({
      url: `amqp://sage:s3cret-pw@127.0.0.1:${port}`,
      publishTimeoutMs: 500,
      reconnectTimeInSeconds: 0.1,
    });
    brokers.push(broker);
    // Let a connection attempt fail first, as it has by the time the relay publishes.
    await broker.probe(2000);
    const [result] = await broker.publish([message()]);
    expect(result).toMatchObject({
      ok: false,
      retryable: true,
      error: `not connected to RabbitMQ at 127.0.0.1:${port} (connect failed: connect ECONNREFUSED 127.0.0.1:${port}); no confirm within 500 ms (connection lost or broker slow)`,
      // The outage, not the message's fault: the relay does not count it as an attempt.
      unavailable: true,
    });
  });

  it('Kafka: the producer cannot connect, naming the bootstrap servers and the cause', async () => {
    const port = await closedPort();
    const broker = new KafkaBroker({
      brokers: [`127.0.0.1:${port}`],
      retry: { retries: 1, initialRetryTime: 50 },
    });
    brokers.push(broker);
    const [result] = await broker.publish([message()]);
    expect(result).toMatchObject({ ok: false, retryable: true, unavailable: true });
    expect(result && !result.ok && result.error).toMatch(
      new RegExp(
        `^Broker "kafka": producer cannot connect to Kafka at 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED 127\\.0\\.0\\.1:${port}`,
      ),
    );
  });

  it('NATS: unreachable with its cause; after losing a connection, publishes say not connected', async () => {
    const port = await closedPort();
    const down = new NatsJetStreamBroker({ servers: `nats://127.0.0.1:${port}` });
    brokers.push(down);
    const error = await down.publish([message()]).catch((e: unknown) => e);
    // The outage, not the messages' fault: the relay does not count it as an attempt.
    expect(error).toBeInstanceOf(BrokerUnavailableError);
    expect((error as Error).message).toBe(
      `Broker "nats" is unavailable: JetStream at nats://127.0.0.1:${port} is not reachable: connection refused: connect ECONNREFUSED 127.0.0.1:${port}`,
    );

    const proxy = new TcpProxy({ host: NATS.hostname, port: Number(NATS.port) });
    const proxyPort = await proxy.start();
    const cut = new NatsJetStreamBroker({
      servers: `nats://127.0.0.1:${proxyPort}`,
      publishTimeoutMs: 500,
    });
    brokers.push(cut);
    try {
      expect((await cut.publish([message()]))[0]).toMatchObject({ ok: true });
      await proxy.stop();
      await waitUntil(async () => !(await cut.health()).up, 'NATS to notice the cut', 10_000, 50);
      const [result] = await cut.publish([message()]);
      expect(result).toMatchObject({ ok: false, retryable: true, unavailable: true });
      expect(result && !result.ok && result.error).toMatch(
        new RegExp(`^not connected to NATS at nats://127\\.0\\.0\\.1:${proxyPort} \\(.+\\); `),
      );
    } finally {
      await proxy.stop();
    }
  });
});
