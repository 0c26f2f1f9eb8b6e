import type { LoggerService, ModuleMetadata, Provider } from '@nestjs/common';
import type * as NestTesting from '@nestjs/testing';
import type { TestingModule } from '@nestjs/testing';
import type { EntityManager } from 'typeorm';
import { DataSource } from 'typeorm';
import { SagaEngine } from '../../core/saga/saga-engine';
import type { SagaEventListener } from '../../core/saga/saga-events';
import { SagaOutboxModule } from '../../nest/saga-outbox.module';
import { loadOptionalPeer } from '../../optional-peer';
import { createSagaDataSource } from '../../persistence/postgres/data-source';
import {
  probeStepTransactions,
  type StepTransactionProbe,
} from '../../persistence/postgres/step-transaction-probe';
import type { HarnessDatabase } from './harness-database';
import type { ResolvedSaga } from './saga-under-test';
import { WorkerLink } from './worker-link';

/** What every worker of one harness is made of. */
export interface WorkerBlueprint {
  readonly saga: ResolvedSaga;
  readonly imports: NonNullable<ModuleMetadata['imports']>;
  readonly providers: readonly Provider[];
  readonly schema: string;
  /** The reply destination remote steps need (the harness answers commands itself). */
  readonly replyTo: string | undefined;
  readonly logger: LoggerService;
}

/** How the harness wants this worker watched: its step transactions and its saga events. */
export interface WorkerWatch {
  readonly probe: (worker: HarnessWorker) => StepTransactionProbe;
  readonly onEvent?: (worker: HarnessWorker) => SagaEventListener;
}

/** Worker leases: the harness ends a killed worker's lease itself (expireLease), so it may be long. */
const WORKER_LEASE_MS = 10_000;
/** Recovery claims the killed worker's saga (and woken sagas) within this. */
const WORKER_RECOVERY_INTERVAL_MS = 10;

/**
 * One worker process, as a Nest testing module: SagaOutboxModule on a DataSource of its own that
 * reaches the database only through its WorkerLink, the saga under test and the user's providers.
 * `kill()` severs the link: the database drops its connections (open transactions roll back) and
 * nothing the worker does afterwards arrives; `close()` then disposes of what is left in the process.
 */
export class HarnessWorker {
  private killedAt: string | undefined;
  private stopWatching: () => void = () => undefined;

  private constructor(
    /** 1 for the worker that starts the saga, 2 for the one that recovers it. */
    readonly index: number,
    readonly ownerId: string,
    private readonly link: WorkerLink,
    private readonly dataSource: DataSource,
    private moduleRef: TestingModule | undefined,
  ) {}

  static async start(
    index: number,
    db: HarnessDatabase,
    blueprint: WorkerBlueprint,
    watch: WorkerWatch,
  ): Promise<HarnessWorker> {
    const { Test } = loadOptionalPeer(
      'the saga crash harness (it runs each worker in Test.createTestingModule)',
      ['@nestjs/testing'],
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy optional peer
      () => require('@nestjs/testing') as typeof NestTesting,
    );
    const link = await WorkerLink.open(db.target);
    const dataSource = createSagaDataSource({
      url: db.workerUrl(link.port),
      schema: blueprint.schema,
      poolSize: 4,
      applicationName: `sage-crash-harness-worker-${index}`,
    });
    const ownerId = `crash-harness-worker-${index}-${Date.now().toString(36)}`;
    const worker = new HarnessWorker(index, ownerId, link, dataSource, undefined);
    try {
      await dataSource.initialize();
      worker.stopWatching = probeStepTransactions(dataSource, watch.probe(worker));
      const { saga } = blueprint;
      const builder = Test.createTestingModule({
        imports: [
          SagaOutboxModule.forRoot({
            dataSource,
            schema: blueprint.schema,
            runMigrations: false,
            // Only the saga engine's recovery runs (started below): no relay, retention or
            // subscriptions; commands are answered by the harness, messages stay in the outbox.
            autoStart: false,
            outbox: { relay: { enabled: false }, retention: { enabled: false } },
            ...(saga.definition ? { sagas: [saga.definition] } : {}),
            saga: {
              ownerId,
              leaseMs: WORKER_LEASE_MS,
              recoveryIntervalMs: WORKER_RECOVERY_INTERVAL_MS,
              shutdownTimeoutMs: 200,
              ...(blueprint.replyTo ? { replyTo: blueprint.replyTo } : {}),
            },
          }),
          ...blueprint.imports,
        ],
        providers: [
          ...(saga.provider ? [saga.provider] : []),
          ...blueprint.providers,
          // Providers that inject the DataSource use this worker's connections, and die with it.
          { provide: DataSource, useValue: dataSource },
        ],
      });
      builder.setLogger(blueprint.logger);
      worker.moduleRef = await builder.compile();
      await worker.moduleRef.init();
      const engine = worker.engine;
      if (watch.onEvent) engine.onEvent(watch.onEvent(worker));
      await engine.startBackground();
      return worker;
    } catch (error) {
      await worker.close();
      throw error;
    }
  }

  get engine(): SagaEngine<EntityManager> {
    if (!this.moduleRef) throw new Error(`crash harness worker ${this.index} is not started`);
    return this.moduleRef.get<SagaEngine<EntityManager>>(SagaEngine, { strict: false });
  }

  get killed(): boolean {
    return this.killedAt !== undefined;
  }

  /** Where it was killed, as the boundary's name says. */
  get killedWhere(): string | undefined {
    return this.killedAt;
  }

  /** Kills the worker here and now (synchronously): see the class comment. */
  kill(where: string): void {
    if (this.killedAt !== undefined) return;
    this.killedAt = where;
    this.link.sever();
  }

  /**
   * Disposes of the worker. A killed one's connections are already cut, so its shutdown hooks can
   * write nothing (its lease stays, as a killed process's does); a live one shuts down gracefully.
   */
  async close(): Promise<void> {
    this.stopWatching();
    try {
      await this.moduleRef?.close();
    } finally {
      this.moduleRef = undefined;
      if (this.dataSource.isInitialized) {
        const destroyed = this.dataSource.destroy().catch(() => undefined);
        // A killed worker's pool may still lend a connection to code that never returns it (a
        // step body awaiting something that will not come): its sockets are gone, so stop waiting.
        await (this.killed ? Promise.race([destroyed, delay(1_000)]) : destroyed);
      }
      await this.link.close();
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
