import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import type { EntityManager } from 'typeorm';
import { SagaEngine } from '../core/saga/saga-engine';
import { PostgresSagaStore } from '../persistence/postgres/postgres-saga-store';
import { InMemoryBroker } from '../brokers/memory/in-memory-broker';
import type { Broker } from '../core/ports/broker';
import { NestSageLogger } from './nest-sage-logger';
import { SagaFailureLogService } from './logging/saga-failure-log';
import { NO_TRACING, type SageTracer } from '../core/ports/tracer';
import { SAGE_TRACER } from './sage-tracer.token';
import { INBOX_OPTIONS, type InboxModuleOptions } from './inbox/inbox.options';
import { inboxProviders } from './inbox/inbox.providers';
import { InboxService } from './inbox/inbox.service';
import { brokerFromUrl } from './relay/broker-url';
import { OUTBOX_AUTO_START, OUTBOX_BROKER, OUTBOX_OPTIONS } from './outbox/outbox.options';
import { OutboxDeadLettersService, outboxProviders } from './outbox/outbox.providers';
import { OutboxRepository } from './outbox/outbox.repository';
import { SagaCommandHandlerExplorer } from './remote/saga-command-handler.explorer';
import { SagaReplyConsumer } from './remote/saga-reply.consumer';
import { SagaExplorer } from './saga-explorer';
import { SagaOutboxLifecycle } from './saga-outbox.lifecycle';
import { SagaRetentionProvider } from './saga-retention.provider';
import { AuditSealerProvider } from './audit/audit-sealer.provider';
import { SageDataSubjects } from './protection/sage-data-subjects';
import { SAGA_OUTBOX_OPTIONS, SagaOutboxConfigurableModule } from './saga-outbox.module-definition';
import {
  validateModuleOptions,
  type SagaEngineTuning,
  type SagaOutboxModuleOptions,
} from './saga-outbox.options';
import { SagaService } from './saga.service';
import { openSageDatabase, SageDatabase } from './sage-database';
import { SageBrokerStartup } from './startup/sage-broker-startup';
import type { DataProtector } from '../core/protection/data-protector';
import { ProtectingSagaStore } from '../core/protection/protecting-saga-store';
import { DATA_PROTECTOR, dataProtectorProvider } from './protection/data-protector.provider';
import { sageContractsProvider } from './contracts/sage-contracts.provider';

/**
 * Durable sagas, the transactional outbox (with its relay) and the consumer inbox for a Nest app.
 *
 * ```ts
 * SagaOutboxModule.forRoot({ postgres: { url: process.env.DATABASE_URL } })
 * SagaOutboxModule.forRootAsync({ inject: [DataSource], useFactory: (dataSource) => ({ dataSource }) })
 * ```
 * Global by default, as `TypeOrmModule.forRoot` is: `SagaService`, `OutboxRepository`, `InboxService`
 * are injectable in every module; `isGlobal: false` keeps them to the modules that import it.
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
      inject: [SageDatabase, SAGA_OUTBOX_OPTIONS, OutboxRepository, SAGE_TRACER, DATA_PROTECTOR],
      useFactory: (
        db: SageDatabase,
        options: SagaOutboxModuleOptions,
        outbox: OutboxRepository,
        tracer: SageTracer,
        protector: DataProtector<EntityManager> | null,
      ) => {
        const store = new PostgresSagaStore(db.dataSource, { schema: db.schema });
        const engine = new SagaEngine<EntityManager>({
          // `dataProtection`: declared input and result fields are encrypted as they are stored.
          store: protector ? new ProtectingSagaStore(store, protector) : store,
          outbox: outbox.publisher,
          logger: new NestSageLogger('Sage'),
          ...engineTuning(options),
          lifecycleEvents: options.sagaEvents,
        });
        // Saga run / step / compensation spans, when the app asked for tracing.
        if (tracer !== NO_TRACING) engine.onEvent((event) => tracer.onSagaEvent(event));
        return engine;
      },
    },
    dataProtectorProvider,
    // `contracts`: both registries compiled once, at startup (SAGE_CONTRACTS, null without it).
    sageContractsProvider,
    {
      provide: SAGE_TRACER,
      inject: [SAGA_OUTBOX_OPTIONS],
      useFactory: (options: SagaOutboxModuleOptions): SageTracer => options.tracing ?? NO_TRACING,
    },
    {
      provide: OUTBOX_OPTIONS,
      inject: [SAGA_OUTBOX_OPTIONS],
      useFactory: (options: SagaOutboxModuleOptions) => options.outbox ?? {},
    },
    {
      // `autoStart: false`: the relay and retention loops are built but not started, the
      // optimistic sender is built switched off.
      provide: OUTBOX_AUTO_START,
      inject: [SAGA_OUTBOX_OPTIONS],
      useFactory: (options: SagaOutboxModuleOptions): boolean => options.autoStart !== false,
    },
    {
      provide: OUTBOX_BROKER,
      inject: [SageDatabase, SAGA_OUTBOX_OPTIONS],
      // The embedded default is self-contained: an in-process broker. With PostgreSQL, no default:
      // silently "publishing" to memory would lose messages other services wait for.
      useFactory: (db: SageDatabase, options: SagaOutboxModuleOptions): Broker | null =>
        typeof options.broker === 'string'
          ? brokerFromUrl(options.broker, 'broker', new NestSageLogger('SageBroker'))
          : (options.broker ?? (db.embedded ? new InMemoryBroker() : null)),
    },
    ...outboxProviders,
    {
      provide: INBOX_OPTIONS,
      inject: [SAGA_OUTBOX_OPTIONS],
      useFactory: (o: SagaOutboxModuleOptions): InboxModuleOptions => ({
        ...o.inbox,
        subscribe: o.inbox?.subscribe ?? o.autoStart !== false,
        retention: {
          ...o.inbox?.retention,
          enabled: (o.inbox?.retention?.enabled ?? true) && o.autoStart !== false,
        },
      }),
    },
    ...inboxProviders,
    SagaExplorer,
    SagaService,
    SagaOutboxLifecycle,
    // Leader-only deletion of old terminal sagas (`saga.retention`).
    SagaRetentionProvider,
    // Seals the audit triggers' entries into the hash chain (`audit`; on by default).
    AuditSealerProvider,
    SagaReplyConsumer,
    SagaCommandHandlerExplorer,
    // `brokerStartup`: probes the broker at module init, before the loops and subscriptions start.
    SageBrokerStartup,
    // Step failures, retries and compensations at warn / error, with no extra module.
    SagaFailureLogService,
    // Erasure and export of a data subject's data (`dataProtection`).
    SageDataSubjects,
  ],
  exports: [
    SagaService,
    SageDataSubjects,
    SageDatabase,
    OutboxRepository,
    OutboxDeadLettersService,
    OUTBOX_BROKER,
    InboxService,
  ],
})
export class SagaOutboxModule extends SagaOutboxConfigurableModule {}

/** `saga` options minus `retention` (run by SagaRetentionProvider, not the engine). */
function engineTuning(options: SagaOutboxModuleOptions): Omit<SagaEngineTuning, 'retention'> {
  const { retention: _retention, ...tuning } = options.saga ?? {};
  return tuning;
}
