/**
 * The application the drill operates: SagaOutboxModule on a drill database, with a broker (relay
 * and `@IdempotentHandler`s running) or without one (relay disabled: another process publishes),
 * writing its outbox as application code does, and the effect rows its handlers write.
 */
import { Module, type INestApplicationContext, type Provider } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { EntityManager } from 'typeorm';
import type { Broker } from '../../libs/saga-outbox/src/core/ports/broker';
import type { OutboxMessageInput } from '../../libs/saga-outbox/src/core/outbox/outbox-message';
import { OutboxRepository } from '../../libs/saga-outbox/src/nest/outbox/outbox.providers';
import { SageDatabase } from '../../libs/saga-outbox/src/nest/sage-database';
import { SagaOutboxModule } from '../../libs/saga-outbox/src/nest/saga-outbox.module';
import { sagePostgresOptions, withClient, type TestDatabase } from '../../test/support/pg';

export async function startDrillApp(options: {
  db: TestDatabase;
  broker?: Broker;
  providers?: Provider[];
}): Promise<INestApplicationContext> {
  @Module({
    imports: [
      SagaOutboxModule.forRoot({
        postgres: sagePostgresOptions(options.db.connection),
        broker: options.broker,
        outbox: {
          relay: { pollIntervalMs: 50, enabled: options.broker !== undefined },
          retention: { enabled: false },
        },
      }),
    ],
    providers: options.providers ?? [],
  })
  class DrillAppModule {}
  const app = await NestFactory.createApplicationContext(DrillAppModule, {
    logger: process.env.SAGE_DRILL_NEST_LOGS ? ['error', 'warn'] : false,
  });
  await app.init();
  return app;
}

/** Writes outbox rows in one business transaction; their ids. */
export function writeOutbox(
  app: INestApplicationContext,
  messages: readonly OutboxMessageInput[],
): Promise<string[]> {
  const outbox = app.get(OutboxRepository);
  return app
    .get(SageDatabase)
    .dataSource.transaction((manager) => outbox.publish(messages, { manager }));
}

export async function createEffectTable(db: TestDatabase): Promise<void> {
  await withClient(db.name, (client) =>
    client.query(
      'CREATE TABLE public.effect (id bigserial PRIMARY KEY, consumer text NOT NULL, message_id text NOT NULL)',
    ),
  );
}

/** What a handler writes in its inbox transaction. */
export async function insertEffect(
  manager: EntityManager,
  consumer: string,
  messageId: string,
): Promise<void> {
  await manager.query('INSERT INTO public.effect (consumer, message_id) VALUES ($1, $2)', [
    consumer,
    messageId,
  ]);
}

/** The message ids `consumer` handled, in commit order. */
export function handled(db: TestDatabase, consumer: string): Promise<string[]> {
  return withClient(db.name, async (client) => {
    const { rows } = await client.query<{ message_id: string }>(
      'SELECT message_id FROM public.effect WHERE consumer = $1 ORDER BY id',
      [consumer],
    );
    return rows.map((r) => r.message_id);
  });
}
