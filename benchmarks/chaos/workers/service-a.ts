/**
 * Service A of the chaos run, the producer: a Nest app on SagaOutboxModule (PostgreSQL, no relay in
 * process: the standalone `sage-relay` processes publish its outbox) that, at a paced rate,
 *
 * - commits business transactions: per transaction `perTx` distinct keys out of `keys`, each key's
 *   next sequence number, one outbox message per key and the `chaos.a_message` rows, together;
 * - every `sagaEvery`-th transaction also starts the `chaos-order` saga in that transaction: its
 *   steps `reserve` → `charge` (pivot) → `confirm` each emit one message (key = saga id) in the
 *   step's transaction; every `sagaFailEvery`-th saga fails at `charge` by design and compensates
 *   `reserve`, which emits `payment.released`.
 *
 * stdin: `go` starts producing, `stop` stops starting transactions (running sagas go on), `exit`
 * closes the app. stdout: `ready`, then `progress` every second.
 */
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  defineSaga,
  OutboxRepository,
  SageDatabase,
  SagaOutboxModule,
  SagaService,
  type SagaDefinition,
  type StepContext,
} from '@sage/saga-outbox';
import type { EntityManager } from 'typeorm';
import { randomInt, seededRandom, type Random } from '../rng';
import { ORDERS, PAYMENTS, SAGA_NAME, produceMessages, type ChaosMessage } from '../schema';
import { StderrLogger, emit, onCommand, runWorker, sleep, workerConfig } from './worker-io';

export interface ServiceAConfig {
  name: string;
  databaseUrl: string;
  seed: number;
  keys: number;
  perTx: number;
  /** Business transactions per second this replica aims at. */
  txPerSec: number;
  /** Transactions in flight at once. */
  concurrency: number;
  /** Every n-th transaction also starts a saga (0: none). */
  sagaEvery: number;
  /** Every n-th saga fails at its pivot by design and compensates (0: none). */
  sagaFailEvery: number;
  leaseMs: number;
  poolSize: number;
}

interface SagaInput {
  n: number;
  failAt: 'charge' | null;
}

/** The failure a saga is told to have: not worth retrying. */
class DesignedFailure extends Error {}

/** Keeps `perSec` events a second on average, catching up at most one second behind. */
class Pacer {
  private next = Date.now();
  private readonly intervalMs: number;

  constructor(perSec: number) {
    this.intervalMs = 1000 / perSec;
  }

  async take(): Promise<void> {
    const now = Date.now();
    this.next = Math.max(this.next, now - 1000);
    const at = this.next;
    this.next += this.intervalMs;
    if (at > now) await sleep(at - now);
  }
}

export function chaosSaga(producer: string): SagaDefinition<SagaInput, EntityManager> {
  const emitOne = async (ctx: StepContext<SagaInput, EntityManager>, type: string) => {
    const message: ChaosMessage = { destination: PAYMENTS, type, key: ctx.sagaId, origin: 'saga' };
    await produceMessages(ctx.manager, producer, [message], (inputs) => ctx.emit(inputs));
  };
  // Outages (database restarts) are retried for about two minutes; the designed failure is not.
  const retry = {
    maxAttempts: 60,
    initialDelayMs: 100,
    maxDelayMs: 2_000,
    retryable: (error: unknown) => !(error instanceof DesignedFailure),
  };
  return defineSaga<SagaInput, EntityManager>(SAGA_NAME, {
    failureStrategy: 'FAIL_FAST',
    afterPivotMaxAttempts: 60,
  })
    .step('reserve', {
      run: (ctx) => emitOne(ctx, 'payment.reserved'),
      compensate: (ctx) => emitOne(ctx, 'payment.released'),
      retry,
      compensationRetry: retry,
    })
    .step('charge', {
      dependsOn: ['reserve'],
      pivot: true,
      retry,
      run: async (ctx) => {
        await emitOne(ctx, 'payment.charged');
        if (ctx.input.failAt === 'charge')
          throw new DesignedFailure(`saga #${ctx.input.n} fails at charge by design`);
      },
    })
    .step('confirm', {
      dependsOn: ['charge'],
      retry,
      run: (ctx) => emitOne(ctx, 'payment.confirmed'),
    })
    .build();
}

/** `count` distinct keys out of `keys`, sorted (the one lock order of every transaction). */
function pickKeys(random: Random, keys: number, count: number): string[] {
  const picked = new Set<number>();
  while (picked.size < Math.min(count, keys)) picked.add(randomInt(random, keys));
  return [...picked].sort((a, b) => a - b).map((k) => `k${String(k).padStart(5, '0')}`);
}

async function main(): Promise<void> {
  const config = workerConfig<ServiceAConfig>();
  const owner = `${config.name}-${process.pid}`;

  @Module({
    imports: [
      SagaOutboxModule.forRoot({
        postgres: { url: config.databaseUrl, poolSize: config.poolSize },
        runMigrations: false,
        sagas: [chaosSaga(config.name)],
        saga: {
          ownerId: owner,
          leaseMs: config.leaseMs,
          recoveryIntervalMs: 1_000,
          maxConcurrentSagas: 16,
          shutdownTimeoutMs: 2_000,
        },
        // Optimistic sending stays off (its default, explicit here): it is refused with the WAL
        // relay (`--relay-mode wal`), and the standalone relays publish in both modes.
        outbox: {
          relay: { enabled: false },
          optimistic: { enabled: false },
          retention: { enabled: false },
        },
        inbox: { subscribe: false, retention: { enabled: false } },
      }),
    ],
  })
  class ServiceAModule {}

  const app = await NestFactory.createApplicationContext(ServiceAModule, {
    logger: new StderrLogger(config.name),
  });
  const dataSource = app.get(SageDatabase).dataSource;
  const outbox = app.get(OutboxRepository);
  const sagas = app.get(SagaService);
  const random = seededRandom(config.seed);

  const counts = {
    transactions: 0,
    messages: 0,
    sagasStarted: 0,
    errors: 0,
    sagasCompleted: 0,
    sagasCompensated: 0,
    sagasFailed: 0,
  };
  let lastError: string | undefined;
  sagas.onEvent((e) => {
    if (e.type === 'saga.completed') counts.sagasCompleted++;
    else if (e.type === 'saga.compensated') counts.sagasCompensated++;
    else if (e.type === 'saga.failed') counts.sagasFailed++;
  });

  let n = 0;
  const transaction = async (): Promise<void> => {
    const i = n++;
    const keys = pickKeys(random, config.keys, config.perTx);
    const startsSaga = config.sagaEvery > 0 && i % config.sagaEvery === 0;
    const sagaNo = Math.floor(i / Math.max(1, config.sagaEvery));
    await dataSource.transaction(async (manager) => {
      const messages = keys.map((key): ChaosMessage => ({
        destination: ORDERS,
        type: 'order.placed',
        key,
        origin: 'order',
      }));
      await produceMessages(manager, config.name, messages, (inputs) =>
        outbox.publish(inputs, { manager }),
      );
      if (startsSaga) {
        const failAt =
          config.sagaFailEvery > 0 && sagaNo % config.sagaFailEvery === 0 ? 'charge' : null;
        await sagas.start<SagaInput>(
          SAGA_NAME,
          { n: sagaNo, failAt },
          { manager, idempotencyKey: `${owner}:${sagaNo}` },
        );
      }
    });
    counts.transactions++;
    counts.messages += keys.length;
    if (startsSaga) {
      counts.sagasStarted++;
      sagas.resumePending();
    }
  };

  let producing = false;
  const pacer = new Pacer(config.txPerSec);
  const loop = async (): Promise<void> => {
    let backoffMs = 50;
    while (producing) {
      await pacer.take();
      if (!producing) break;
      try {
        await transaction();
        backoffMs = 50;
      } catch (error) {
        // The database is down or the commit's outcome is unknown: the checker reads the truth
        // from chaos.a_message; here we only back off.
        counts.errors++;
        lastError = error instanceof Error ? error.message : String(error);
        await sleep(backoffMs);
        backoffMs = Math.min(1_000, backoffMs * 2);
      }
    }
  };

  let loops: Promise<void>[] = [];
  const progress = setInterval(() => emit('progress', { counts, lastError }), 1_000);
  onCommand((command) => {
    if (command === 'go' && !producing) {
      producing = true;
      loops = Array.from({ length: config.concurrency }, () => loop());
    } else if (command === 'stop') {
      producing = false;
      void Promise.all(loops).then(() => emit('stopped', { counts }));
    } else if (command === 'exit') {
      producing = false;
      clearInterval(progress);
      void Promise.all(loops)
        .then(() => app.close())
        .then(() => {
          emit('exited', { counts });
          process.exit(0);
        });
    }
  });
  emit('ready', { owner });
}

runWorker(main);
