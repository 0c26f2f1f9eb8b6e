/**
 * Service B of the chaos run, the consumer: a Nest app on SagaOutboxModule (its own database, no
 * relay) whose two `@IdempotentHandler`s (one per destination) write each message's effect
 * through the inbox transaction (`InboxContext.manager`): chaos.b_effect plus the key's apply
 * state. The broker adapter is wrapped to count deliveries before they reach the inbox, so
 * redeliveries the inbox absorbs are measured, not assumed.
 *
 * stdin: `stop` closes the app (subscriptions drain first). stdout: `ready`, `stats` every
 * second, `exited` with the final stats.
 */
import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  IdempotentHandler,
  InboxService,
  SagaOutboxModule,
  type Broker,
  type BrokerHealth,
  type BrokerMessage,
  type DeliveredMessage,
  type InboxContext,
  type PublishResult,
  type SubscribeOptions,
  type Subscription,
} from '@sage/saga-outbox';
import { CONSUMERS, ORDERS, PAYMENTS, applyEffect, parsePayload } from '../schema';
import { consumerBroker, type ChaosBroker } from '../topology';
import { StderrLogger, emit, onCommand, runWorker, workerConfig } from './worker-io';

export interface ServiceBConfig {
  name: string;
  databaseUrl: string;
  broker: ChaosBroker;
  brokerAddress: string;
  /** The inbox's attempts before a message is dead-lettered. */
  inboxMaxAttempts: number;
  poolSize: number;
}

/** The consumer's broker, counting every delivery handed to the inbox. */
class CountingBroker implements Broker {
  readonly name: string;
  deliveries = 0;
  /** Deliveries of an id this process had delivered before. */
  redeliveries = 0;
  private readonly seen = new Set<string>();

  constructor(private readonly inner: Broker) {
    this.name = inner.name;
  }

  get distinct(): number {
    return this.seen.size;
  }

  publish(batch: readonly BrokerMessage[], signal?: AbortSignal): Promise<PublishResult[]> {
    return this.inner.publish(batch, signal);
  }

  subscribe(
    destination: string,
    handler: (message: DeliveredMessage) => Promise<void>,
    options?: SubscribeOptions,
  ): Promise<Subscription> {
    return this.inner.subscribe(
      destination,
      (message) => {
        this.deliveries++;
        if (this.seen.has(message.id)) this.redeliveries++;
        else this.seen.add(message.id);
        return handler(message);
      },
      options,
    );
  }

  health(): Promise<BrokerHealth> {
    return this.inner.health();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

function consumerClass(worker: string, maxAttempts: number) {
  const handle = (message: DeliveredMessage, ctx: InboxContext): Promise<void> =>
    applyEffect(ctx.manager, {
      consumer: ctx.consumer,
      messageId: ctx.messageId,
      payload: parsePayload(message.payload),
      attempt: ctx.attempt,
      deliveryAttempt: message.deliveryAttempt,
      worker,
    });

  @Injectable()
  class ChaosConsumer {
    @IdempotentHandler(ORDERS, { consumer: CONSUMERS.orders, maxAttempts })
    onOrder(message: DeliveredMessage, ctx: InboxContext): Promise<void> {
      return handle(message, ctx);
    }

    @IdempotentHandler(PAYMENTS, { consumer: CONSUMERS.payments, maxAttempts })
    onPayment(message: DeliveredMessage, ctx: InboxContext): Promise<void> {
      return handle(message, ctx);
    }
  }
  return ChaosConsumer;
}

async function main(): Promise<void> {
  const config = workerConfig<ServiceBConfig>();
  const worker = `${config.name}-${process.pid}`;
  const broker = new CountingBroker(
    await consumerBroker(config.broker, config.brokerAddress, {
      clientId: config.name,
      // Above the inbox's own limit: while the database is down the inbox cannot count attempts,
      // and the broker must not dead-letter what the inbox would still retry.
      maxDeliveries: config.inboxMaxAttempts * 10,
    }),
  );

  @Module({
    imports: [
      SagaOutboxModule.forRoot({
        postgres: { url: config.databaseUrl, poolSize: config.poolSize },
        runMigrations: false,
        broker,
        inbox: { maxAttempts: config.inboxMaxAttempts, retention: { enabled: false } },
        outbox: { relay: { enabled: false }, retention: { enabled: false } },
      }),
    ],
    providers: [consumerClass(worker, config.inboxMaxAttempts)],
  })
  class ServiceBModule {}

  const app = await NestFactory.createApplicationContext(ServiceBModule, {
    logger: new StderrLogger(config.name),
  });
  const inbox = app.get(InboxService);
  const stats = () => ({
    deliveries: broker.deliveries,
    distinct: broker.distinct,
    redeliveries: broker.redeliveries,
    inbox: { ...inbox.stats },
  });
  const timer = setInterval(() => emit('stats', stats()), 1_000);
  onCommand((command) => {
    if (command !== 'stop') return;
    clearInterval(timer);
    void app
      .close()
      .then(() => broker.close())
      .then(() => {
        emit('exited', stats());
        process.exit(0);
      });
  });
  emit('ready', { worker });
}

runWorker(main);
