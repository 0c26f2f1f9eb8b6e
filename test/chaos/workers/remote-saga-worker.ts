/**
 * A service process for the remote-step chaos test: either the orchestrator (a saga whose middle
 * step is remote) or the participant (the command handler), each a Nest application context with
 * SagaOutboxModule on the test database (its own Sage schema), over a real broker (URL in config).
 *
 *   node -r ts-node/register/transpile-only -r tsconfig-paths/register remote-saga-worker.ts '<config JSON>'
 *
 * Reports on stdout, one JSON object per line: `{"ready":…}`, `{"progress":…}` every 100 ms.
 * Effects, all written in the step's or the handler's transaction:
 * - orchestrator: `public.local_effects (saga_id, step)` per local step, no unique constraint, so a
 *   step effect applied twice shows as two rows;
 * - participant: `public.command_log (message_id, idempotency_key, owner)` per handled command (no
 *   unique constraint: the inbox alone must keep it to one row per message), and
 *   `public.charges (idempotency_key PRIMARY KEY)`, the idempotent business effect per step.
 */
import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  SagaCommandHandler,
  SagaOutboxModule,
  SagaService,
  Saga,
  SagaStep,
  type InboxContext,
  type ReceivedSagaCommand,
  type SagaCommand,
  type SagaStepContext,
} from '@sage/saga-outbox';
import { RabbitMqBroker } from '@sage/saga-outbox/rabbitmq';
import { pgConnection, sagePostgresOptions } from '../../support/pg';

export const REMOTE_CHAOS_SAGA = 'remote-chaos';

export const REMOTE_CHAOS_DDL = `
  CREATE TABLE public.local_effects (
    id bigserial PRIMARY KEY, saga_id uuid NOT NULL, step text NOT NULL, owner text NOT NULL);
  CREATE TABLE public.command_log (
    id bigserial PRIMARY KEY, message_id text NOT NULL, idempotency_key text NOT NULL, owner text NOT NULL);
  CREATE TABLE public.charges (idempotency_key text PRIMARY KEY, amount int NOT NULL)`;

export interface RemoteWorkerConfig {
  role: 'orchestrator' | 'participant';
  ownerId: string;
  database: string;
  brokerUrl: string;
  commands: string;
  replies: string;
  /** Orchestrator: sagas to start (0: only resume). */
  count?: number;
  leaseMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function main(config: RemoteWorkerConfig): Promise<void> {
  const out = (msg: Record<string, unknown>): void => {
    process.stdout.write(`${JSON.stringify({ pid: process.pid, ...msg })}\n`);
  };
  const counts = { handled: 0, started: 0 };

  @Saga(REMOTE_CHAOS_SAGA)
  @Injectable()
  class RemoteChaosSaga {
    @SagaStep('prepare', { compensatable: false })
    async prepare(ctx: SagaStepContext<{ i: number }>): Promise<void> {
      await ctx.manager.query(
        'INSERT INTO public.local_effects (saga_id, step, owner) VALUES ($1, $2, $3)',
        [ctx.sagaId, 'prepare', config.ownerId],
      );
      await sleep(Math.random() * 5); // written, not committed: a window for kill -9
    }

    @SagaStep('charge', {
      kind: 'remote',
      dependsOn: ['prepare'],
      compensatable: false,
      timeoutMs: 4_000,
      retry: { maxAttempts: 20, initialDelayMs: 0 },
    })
    charge(ctx: SagaStepContext<{ i: number }>): SagaCommand {
      return {
        destination: config.commands,
        type: 'chaos.charge',
        payload: { amount: ctx.input.i },
      };
    }

    @SagaStep('finish', { dependsOn: ['charge'], compensatable: false })
    async finish(ctx: SagaStepContext<{ i: number }>): Promise<void> {
      await ctx.manager.query(
        'INSERT INTO public.local_effects (saga_id, step, owner) VALUES ($1, $2, $3)',
        [ctx.sagaId, 'finish', config.ownerId],
      );
      await sleep(Math.random() * 5);
    }
  }

  @Injectable()
  class ChaosParticipant {
    @SagaCommandHandler('chaos.charge', { destination: config.commands, consumer: 'chaos-cards' })
    async charge(command: ReceivedSagaCommand, { manager, messageId }: InboxContext) {
      await manager.query(
        'INSERT INTO public.command_log (message_id, idempotency_key, owner) VALUES ($1, $2, $3)',
        [messageId, command.idempotencyKey, config.ownerId],
      );
      await manager.query(
        'INSERT INTO public.charges (idempotency_key, amount) VALUES ($1, $2) ON CONFLICT DO NOTHING',
        [command.idempotencyKey, (command.payload as { amount: number }).amount],
      );
      await sleep(Math.random() * 5); // a window for kill -9 inside the inbox transaction
      counts.handled++;
      return { charged: command.idempotencyKey };
    }
  }

  const orchestrating = config.role === 'orchestrator';
  // A short relay lease (5 s) so that the commands a killed orchestrator held claimed go out soon;
  // the publish timeout must then be shorter than the default 10 s (the relay checks the lease is
  // at least 1.5 × it).
  const amqp = new URL(config.brokerUrl);
  const broker = new RabbitMqBroker({
    url: `${amqp.protocol}//${amqp.username}:${amqp.password}@${amqp.host}${amqp.pathname}`,
    exchange: amqp.searchParams.get('exchange') ?? undefined,
    queueType: amqp.searchParams.get('queueType') === 'classic' ? 'classic' : 'quorum',
    publishTimeoutMs: 3_000,
  });
  @Module({
    imports: [
      SagaOutboxModule.forRoot({
        postgres: { ...sagePostgresOptions(pgConnection(config.database)), poolSize: 8 },
        schema: orchestrating ? 'orders_sage' : 'cards_sage',
        broker,
        saga: orchestrating
          ? {
              replyTo: config.replies,
              ownerId: config.ownerId,
              leaseMs: config.leaseMs ?? 1_500,
              recoveryIntervalMs: 100,
              maxConcurrentSagas: 200,
              shutdownTimeoutMs: 1_000,
            }
          : { ownerId: config.ownerId },
        outbox: { relay: { pollIntervalMs: 50, leaseMs: 5_000 }, retention: { enabled: false } },
      }),
    ],
    providers: orchestrating ? [RemoteChaosSaga] : [ChaosParticipant],
  })
  class WorkerModule {}

  const app = await NestFactory.createApplicationContext(WorkerModule, { logger: ['error'] });
  await app.init();
  setInterval(() => out({ progress: counts }), 100).unref();
  process.once('SIGTERM', () => {
    void app
      .close()
      .then(() => broker.close()) // ours, not the module's: it closes only brokers it built
      .then(() => process.exit(0));
  });
  out({ ready: config.ownerId });
  if (orchestrating && config.count) {
    const sagas = app.get(SagaService);
    for (let i = 0; i < config.count; i++) {
      await sagas.start(REMOTE_CHAOS_SAGA, { i }, { idempotencyKey: `remote-chaos-${i}` });
      counts.started++;
    }
    out({ allStarted: counts.started });
  }
}

if (require.main === module) {
  const config = JSON.parse(process.argv[2] ?? '') as RemoteWorkerConfig;
  main(config).catch((error: unknown) => {
    process.stderr.write(`remote-saga-worker ${config.ownerId} crashed: ${String(error)}\n`);
    process.exit(1);
  });
}
