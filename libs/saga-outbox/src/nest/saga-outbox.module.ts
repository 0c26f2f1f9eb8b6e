import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import type { EntityManager } from 'typeorm';
import { SagaEngine } from '../core/saga/saga-engine';
import { PostgresSagaStore } from '../persistence/postgres/postgres-saga-store';
import { NestSageLogger } from './nest-sage-logger';
import { SagaExplorer } from './saga-explorer';
import { SagaOutboxLifecycle } from './saga-outbox.lifecycle';
import { SAGA_OUTBOX_OPTIONS, SagaOutboxConfigurableModule } from './saga-outbox.module-definition';
import { validateModuleOptions, type SagaOutboxModuleOptions } from './saga-outbox.options';
import { SagaService } from './saga.service';
import { openSageDatabase, SageDatabase } from './sage-database';

/**
 * Durable sagas (and, with later modules, the transactional outbox) for a Nest app.
 *
 * ```ts
 * SagaOutboxModule.forRoot({ postgres: { url: process.env.DATABASE_URL }, isGlobal: true })
 * SagaOutboxModule.forRootAsync({ inject: [DataSource], useFactory: (dataSource) => ({ dataSource }) })
 * ```
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    {
      provide: SageDatabase,
      inject: [SAGA_OUTBOX_OPTIONS],
      useFactory: (options: SagaOutboxModuleOptions) =>
        openSageDatabase(validateModuleOptions(options)),
    },
    {
      provide: SagaEngine,
      inject: [SageDatabase, SAGA_OUTBOX_OPTIONS],
      useFactory: (db: SageDatabase, options: SagaOutboxModuleOptions) =>
        new SagaEngine<EntityManager>({
          store: new PostgresSagaStore(db.dataSource, { schema: db.schema }),
          logger: new NestSageLogger('Sage'),
          ...options.saga,
        }),
    },
    SagaExplorer,
    SagaService,
    SagaOutboxLifecycle,
  ],
  exports: [SagaService, SageDatabase],
})
export class SagaOutboxModule extends SagaOutboxConfigurableModule {}
