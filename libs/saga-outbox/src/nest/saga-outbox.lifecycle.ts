import {
  Inject,
  Injectable,
  Optional,
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
import type { Broker } from '../core/ports/broker';
import { OUTBOX_BROKER } from './outbox/outbox.options';

/** Registers builder sagas, starts the engine's loops on bootstrap and drains them on shutdown. */
@Injectable()
export class SagaOutboxLifecycle
  implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown
{
  constructor(
    @Inject(SAGA_OUTBOX_OPTIONS) private readonly options: SagaOutboxModuleOptions,
    private readonly engine: SagaEngine<EntityManager>,
    private readonly database: SageDatabase,
    @Optional() @Inject(OUTBOX_BROKER) private readonly broker?: Broker | null,
  ) {}

  async onModuleInit(): Promise<void> {
    // The app's DataSource: checked now that the app's provider factories (its migrations) ran.
    await this.database.verifySchema();
    for (const def of this.options.sagas ?? [])
      this.engine.register(def, { declaredBy: 'SagaOutboxModule.forRoot({ sagas })' });
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.options.autoStart !== false) await this.engine.startBackground();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.engine.shutdown();
  }

  async onApplicationShutdown(): Promise<void> {
    // A broker built from a URL (or the embedded default) is ours to close; an instance passed in
    // belongs to the caller. The relay has drained by now (beforeApplicationShutdown).
    if (this.broker && typeof this.options.broker !== 'object') await this.broker.close();
    await this.database.close();
  }
}
