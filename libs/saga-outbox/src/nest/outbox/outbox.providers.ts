import {
  Inject,
  Injectable,
  Optional,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
  type Provider,
} from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { EntityManager } from 'typeorm';
import {
  OptimisticPublisher,
  withOptimisticSend,
  type OptimisticPublisherSettings,
} from '../../core/outbox/optimistic-publisher';
import { OutboxDeadLetters } from '../../core/outbox/outbox-dead-letters';
import type { OutboxEventListener } from '../../core/outbox/outbox-events';
import type { OutboxMessageInput } from '../../core/outbox/outbox-message';
import { OutboxPublisher } from '../../core/outbox/outbox-publisher';
import { OutboxRelay, type OutboxRelayOptions } from '../../core/outbox/outbox-relay';
import { OutboxRetention, type OutboxRetentionOptions } from '../../core/outbox/outbox-retention';
import type { Broker } from '../../core/ports/broker';
import { PostgresOutboxStore } from '../../persistence/postgres/outbox-postgres-store';
import { TypeOrmCommitHooks } from '../../persistence/postgres/typeorm-commit-hooks';
import { NestSageLogger } from '../nest-sage-logger';
import { NO_TRACING, type SageTracer } from '../../core/ports/tracer';
import { SAGE_TRACER } from '../sage-tracer.token';
import { SageDatabase } from '../sage-database';
import { ClsAmbientTransaction } from './cls-ambient-transaction';

/** The Broker the relay publishes to (provide an adapter instance under this token). */
export const OUTBOX_BROKER = Symbol('SAGE_OUTBOX_BROKER');
/** Outbox tuning (OutboxModuleOptions); optional. */
export const OUTBOX_OPTIONS = Symbol('SAGE_OUTBOX_OPTIONS');
/**
 * Optional `() => EntityManager | undefined` returning the ambient transaction. Not needed with
 * `@nestjs-cls/transactional` (TypeORM adapter, default connection): its TransactionHost is found
 * on its own. Provide it to override that, e.g. for a named connection:
 *
 * ```ts
 * { provide: OUTBOX_AMBIENT_TRANSACTION, inject: [getTransactionHostToken('orders')],
 *   useFactory: (host) => () => (host.isTransactionActive() ? host.tx : undefined) }
 * ```
 */
export const OUTBOX_AMBIENT_TRANSACTION = Symbol('SAGE_OUTBOX_AMBIENT_TRANSACTION');

export interface OutboxModuleOptions {
  /** Largest message (payload + headers as JSON bytes). Default 1 MiB. */
  maxMessageBytes?: number;
  /** Relay tuning; `enabled: false` runs no relay in this process (e.g. relays deployed separately). */
  relay?: Omit<OutboxRelayOptions, 'store' | 'broker' | 'clock' | 'logger' | 'onBatch'> & {
    enabled?: boolean;
  };
  /** Retention of sent rows; `enabled: false` to leave it to another deployment. */
  retention?: Omit<OutboxRetentionOptions, 'store' | 'clock' | 'logger'> & { enabled?: boolean };
  /**
   * Optimistic sending: right after a transaction that wrote outbox rows commits, this process
   * claims and publishes them at once (the relay's claim, restricted to those rows); on failure or
   * timeout the relay takes over. Off by default; `{ enabled: true, percent: 10 }` rolls it out
   * to 10 % of messages; `types` overrides the percentage per message type. Needs a broker.
   * See docs/outbox.md, "Optimistic sending".
   */
  optimistic?: OptimisticPublisherSettings;
}

type AmbientTransaction = () => EntityManager | undefined;

/** OutboxRelayService under another name: the write side needs its optimistic publisher. */
const OUTBOX_OPTIMISTIC = Symbol('SAGE_OUTBOX_OPTIMISTIC');
interface OptimisticSending {
  readonly optimistic: OptimisticPublisher | undefined;
  readonly commitHooks: TypeOrmCommitHooks;
}

/**
 * The write side for application code: `outbox.publish(message | messages, { manager })` inside
 * the business transaction, or with no manager inside the ambient transaction: the one
 * OUTBOX_AMBIENT_TRANSACTION returns when provided, else the current `@nestjs-cls/transactional`
 * transaction (`@Transactional()`) when the app registered ClsModule with ClsPluginTransactional.
 * Outside any transaction: OutboxTransactionRequiredError.
 */
@Injectable()
export class OutboxRepository {
  /** The core publisher (saga steps' ctx.emit writes through it). */
  readonly publisher: OutboxPublisher<EntityManager>;

  constructor(
    store: PostgresOutboxStore,
    moduleRef: ModuleRef,
    @Optional() @Inject(OUTBOX_AMBIENT_TRANSACTION) ambient?: AmbientTransaction,
    @Optional() @Inject(OUTBOX_OPTIONS) options?: OutboxModuleOptions,
    @Optional() @Inject(OUTBOX_OPTIMISTIC) relayService?: OptimisticSending,
    @Optional() @Inject(SAGE_TRACER) tracer: SageTracer = NO_TRACING,
  ) {
    // The explicit binding wins; otherwise the CLS transaction, looked up on first use.
    const cls = ambient ? undefined : new ClsAmbientTransaction(moduleRef);
    // With optimistic sending on, every write (publish(), saga steps' ctx.emit) registers its rows
    // for the after-commit hook of its transaction.
    const optimistic = relayService?.optimistic;
    this.publisher = new OutboxPublisher<EntityManager>({
      // Traced outermost: the write span's traceparent is in the headers every layer below stores.
      writer: tracer.outboxWriter(
        optimistic ? withOptimisticSend(store, relayService.commitHooks, optimistic) : store,
      ),
      ambientTransaction: ambient ?? (() => cls?.current()),
      maxMessageBytes: options?.maxMessageBytes,
    });
  }

  publish(
    messages: OutboxMessageInput | readonly OutboxMessageInput[],
    options: { manager?: EntityManager } = {},
  ): Promise<string[]> {
    return this.publisher.publish(messages, options);
  }
}

/**
 * Starts the relay (and leader-only retention) on bootstrap; drains them on shutdown. Owns the
 * optimistic publisher too (when `outbox.optimistic.enabled`), and is where this process's outbox
 * events are subscribed to (`onEvent`).
 */
@Injectable()
export class OutboxRelayService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  readonly relay: OutboxRelay | undefined;
  readonly retention: OutboxRetention | undefined;
  /** Present when `outbox.optimistic.enabled` and a broker is configured. */
  readonly optimistic: OptimisticPublisher | undefined;
  /** After-commit hooks on TypeORM transactions (what the optimistic publisher runs from). */
  readonly commitHooks = new TypeOrmCommitHooks();

  constructor(
    store: PostgresOutboxStore,
    database: SageDatabase,
    @Optional() @Inject(OUTBOX_BROKER) broker?: Broker | null,
    @Optional() @Inject(OUTBOX_OPTIONS) options?: OutboxModuleOptions,
    @Optional() @Inject(SAGE_TRACER) tracer: SageTracer = NO_TRACING,
  ) {
    const logger = new NestSageLogger('SageOutbox');
    const { enabled: relayEnabled, ...relayOptions } = options?.relay ?? {};
    const { enabled: retentionEnabled, ...retentionOptions } = options?.retention ?? {};
    const optimisticEnabled = options?.optimistic?.enabled === true;
    if (relayEnabled !== false && !broker) {
      logger.warn(
        'no broker configured: this process runs no outbox relay; messages wait in the outbox until a relay with a broker runs (pass `broker` to SagaOutboxModule.forRoot, or run the standalone relay)',
        { event: 'outbox.relay.disabled' },
      );
    }
    if (relayEnabled !== false && broker) {
      // LISTEN/NOTIFY does not cross PGlite's socket multiplexer: poll only there.
      this.relay = new OutboxRelay({
        listen: !database.embedded,
        ...relayOptions,
        store,
        broker: tracer.broker(broker),
        logger,
      });
    }
    if (retentionEnabled !== false)
      this.retention = new OutboxRetention({ ...retentionOptions, store, logger });
    if (optimisticEnabled && !broker) {
      logger.warn(
        'outbox.optimistic.enabled is set but no broker is configured: nothing is sent optimistically',
        { event: 'outbox.optimistic.disabled' },
      );
    }
    if (optimisticEnabled && broker) {
      this.optimistic = new OptimisticPublisher({
        ...options?.optimistic,
        store,
        broker: tracer.broker(broker),
        logger,
        // Released rows are announced by NOTIFY; a relay that cannot listen (PGlite) is woken here.
        onHandBack: () => this.relay?.wake(),
      });
    }
  }

  /**
   * Subscribes to this process's outbox events: the relay's (path 'relay') and the optimistic
   * publisher's (path 'optimistic'). Returns the unsubscribe function. Listeners run synchronously
   * on the publishing path (keep them cheap); what they throw is ignored.
   */
  onEvent(listener: OutboxEventListener): () => void {
    const offs = [this.relay?.onEvent(listener), this.optimistic?.onEvent(listener)];
    return () => offs.forEach((off) => off?.());
  }

  onApplicationBootstrap(): void {
    this.relay?.start();
    this.retention?.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    // The optimistic publisher first: what it hands back is published by the relay while it drains.
    await this.optimistic?.stop();
    this.commitHooks.detachAll();
    await Promise.all([this.relay?.stop(), this.retention?.stop()]);
  }
}

/** Dead-letter operations (list, inspect, replay, discard) as an injectable service. */
@Injectable()
export class OutboxDeadLettersService extends OutboxDeadLetters {
  constructor(store: PostgresOutboxStore) {
    super(store, new NestSageLogger('SageOutbox'));
  }
}

/**
 * Providers to add to SagaOutboxModule (with an OUTBOX_BROKER provider, e.g.
 * `{ provide: OUTBOX_BROKER, useValue: new InMemoryBroker() }`, and optionally OUTBOX_OPTIONS /
 * OUTBOX_AMBIENT_TRANSACTION). Export OutboxRepository and OutboxDeadLettersService.
 */
export const outboxProviders: Provider[] = [
  {
    provide: PostgresOutboxStore,
    inject: [SageDatabase],
    useFactory: (db: SageDatabase) => new PostgresOutboxStore(db.dataSource, { schema: db.schema }),
  },
  OutboxRepository,
  OutboxRelayService,
  {
    provide: OUTBOX_OPTIMISTIC,
    inject: [OutboxRelayService],
    useFactory: (service: OutboxRelayService): OptimisticSending => service,
  },
  OutboxDeadLettersService,
];
