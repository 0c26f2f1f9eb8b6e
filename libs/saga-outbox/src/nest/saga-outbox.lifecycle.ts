import {
  Inject,
  Injectable,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { SagaEngine } from '../core/saga/saga-engine';
import { SAGA_OUTBOX_OPTIONS } from './saga-outbox.module-definition';
import type { SagaOutboxModuleOptions } from './saga-outbox.options';
import { SageDatabase } from './sage-database';

/** Registers builder sagas, starts the engine's loops on bootstrap and drains them on shutdown. */
@Injectable()
export class SagaOutboxLifecycle
  implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown
{
  constructor(
    @Inject(SAGA_OUTBOX_OPTIONS) private readonly options: SagaOutboxModuleOptions,
    private readonly engine: SagaEngine<EntityManager>,
    private readonly database: SageDatabase,
  ) {}

  onModuleInit(): void {
    for (const def of this.options.sagas ?? []) this.engine.register(def);
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.options.autoStart !== false) await this.engine.startBackground();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.engine.shutdown();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.database.close();
  }
}
