import {
  Inject,
  Injectable,
  Module,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { Broker } from '../../core/ports/broker';
import { NO_TRACING, type SageTracer } from '../../core/ports/tracer';
import { SAGE_TRACER } from '../sage-tracer.token';
import { NestSageLogger } from '../nest-sage-logger';
import { OUTBOX_BROKER, OUTBOX_OPTIONS } from '../outbox/outbox.options';
import {
  OutboxDeadLettersService,
  OutboxRelayService,
  outboxProviders,
} from '../outbox/outbox.providers';
import { openSageDatabase, SageDatabase } from '../sage-database';
import {
  OUTBOX_RELAY_MODULE_OPTIONS,
  OutboxRelayConfigurableModule,
} from './outbox-relay.module-definition';
import { validateRelayModuleOptions, type OutboxRelayModuleOptions } from './outbox-relay.options';

const VALIDATED_OPTIONS = Symbol('SAGE_OUTBOX_RELAY_VALIDATED_OPTIONS');

/**
 * Closes what the relay module owns once the relay has drained (OutboxRelayProvider stops it in
 * beforeApplicationShutdown, before this runs): the broker, then the database.
 */
@Injectable()
export class OutboxRelayLifecycle implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new NestSageLogger('SageOutboxRelay');

  constructor(
    private readonly database: SageDatabase,
    @Inject(OUTBOX_BROKER) private readonly broker: Broker,
    private readonly relay: OutboxRelayService,
  ) {}

  onApplicationBootstrap(): void {
    this.logger.info('outbox relay running', {
      event: 'outbox.relay.started',
      relayId: (this.relay.relay ?? this.relay.walRelay)?.relayId,
      mode: this.relay.walRelay ? 'wal' : 'polling',
      schema: this.database.schema,
    });
  }

  async onApplicationShutdown(): Promise<void> {
    try {
      await this.broker.close();
    } catch (error) {
      this.logger.warn('could not close the broker cleanly', {
        event: 'outbox.relay.broker_close_failed',
        error: String(error),
      });
    }
    await this.database.close();
    this.logger.info('outbox relay stopped', {
      event: 'outbox.relay.stopped',
      relayId: (this.relay.relay ?? this.relay.walRelay)?.relayId,
      ...(this.relay.relay ?? this.relay.walRelay)?.stats,
    });
  }
}

/**
 * The outbox relay (and leader-only retention) as its own deployment: no saga engine, no HTTP.
 *
 * ```ts
 * OutboxRelayModule.forRoot({ postgres: { url: process.env.DATABASE_URL }, broker })
 * OutboxRelayModule.forRootAsync({ inject: [DataSource], useFactory: (dataSource) => ({ dataSource, broker }) })
 * ```
 * The relay starts on application bootstrap and drains on shutdown within `outbox.relay.shutdownTimeoutMs`
 * (call `app.enableShutdownHooks()`); the broker and Sage's own pool are closed after it.
 * The package's `sage-relay` bin is a ready-made entry point.
 */
@Module({
  providers: [
    // Everything below is built from the validated options, so bad input fails before anything opens.
    {
      provide: VALIDATED_OPTIONS,
      inject: [OUTBOX_RELAY_MODULE_OPTIONS],
      useFactory: validateRelayModuleOptions,
    },
    {
      provide: SageDatabase,
      inject: [VALIDATED_OPTIONS],
      useFactory: ({
        dataSource,
        postgres,
        schema,
        runMigrations,
        retryAttempts,
        retryDelay,
      }: OutboxRelayModuleOptions) =>
        openSageDatabase({
          dataSource,
          postgres,
          schema,
          runMigrations,
          retryAttempts,
          retryDelay,
        }),
    },
    {
      provide: OUTBOX_OPTIONS,
      inject: [VALIDATED_OPTIONS],
      useFactory: (options: OutboxRelayModuleOptions) => options.outbox ?? {},
    },
    {
      provide: OUTBOX_BROKER,
      inject: [VALIDATED_OPTIONS],
      useFactory: (options: OutboxRelayModuleOptions): Broker => options.broker,
    },
    {
      provide: SAGE_TRACER,
      inject: [VALIDATED_OPTIONS],
      useFactory: (options: OutboxRelayModuleOptions): SageTracer => options.tracing ?? NO_TRACING,
    },
    ...outboxProviders,
    OutboxRelayLifecycle,
  ],
  exports: [SageDatabase, OutboxRelayService, OutboxDeadLettersService, OUTBOX_BROKER],
})
export class OutboxRelayModule extends OutboxRelayConfigurableModule {}
