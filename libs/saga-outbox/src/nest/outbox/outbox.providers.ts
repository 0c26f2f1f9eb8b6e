import { Injectable, type Provider } from '@nestjs/common';
import type { OptimisticSender } from '../../core/outbox/optimistic-sender';
import { OutboxDeadLetters } from '../../core/outbox/outbox-dead-letters';
import type { OutboxEventListener } from '../../core/outbox/outbox-events';
import type { OutboxRelay } from '../../core/outbox/outbox-relay';
import type { WalOutboxRelay } from '../../core/outbox/wal-outbox-relay';
import type { OutboxRetention } from '../../core/outbox/outbox-retention';
import { PostgresOutboxStore } from '../../persistence/postgres/postgres-outbox-store';
import type { TypeOrmCommitHooks } from '../../persistence/postgres/typeorm-commit-hooks';
import { NestSageLogger } from '../nest-sage-logger';
import { SageDatabase } from '../sage-database';
import { OptimisticSendingProvider } from './optimistic-sending.provider';
import { outboxPublishingBrokerProvider } from './outbox-publishing-broker';
import { OutboxRelayProvider } from './outbox-relay.provider';
import { OutboxRetentionProvider } from './outbox-retention.provider';
import { OutboxRepository } from './outbox.repository';

export {
  OUTBOX_AMBIENT_TRANSACTION,
  OUTBOX_BROKER,
  OUTBOX_OPTIONS,
  type OutboxModuleOptions,
} from './outbox.options';
export { OutboxRepository } from './outbox.repository';
export { OutboxRelayProvider } from './outbox-relay.provider';
export { OutboxRetentionProvider } from './outbox-retention.provider';
export { OptimisticSendingProvider } from './optimistic-sending.provider';

/**
 * This process's outbox machinery in one place: the relay, the leader-only retention and the
 * optimistic sender (each started and drained by its own provider: OutboxRelayProvider,
 * OutboxRetentionProvider, OptimisticSendingProvider), and where their outbox events are
 * subscribed to (`onEvent`).
 */
@Injectable()
export class OutboxRelayService {
  constructor(
    private readonly relays: OutboxRelayProvider,
    private readonly retentions: OutboxRetentionProvider,
    private readonly sending: OptimisticSendingProvider,
  ) {}

  /** Absent when `outbox.relay.enabled` is false or no broker is configured. */
  get relay(): OutboxRelay | undefined {
    return this.relays.relay;
  }

  /** The WAL-streaming relay, when `outbox.relay.mode` is "wal" (then `relay` is absent). */
  get walRelay(): WalOutboxRelay | undefined {
    return this.relays.walRelay;
  }

  /** Absent when `outbox.retention.enabled` is false. */
  get retention(): OutboxRetention | undefined {
    return this.retentions.retention;
  }

  /** Present when `outbox.optimistic.enabled` and a broker is configured. */
  get optimistic(): OptimisticSender | undefined {
    return this.sending.optimistic;
  }

  /** After-commit hooks on TypeORM transactions (what the optimistic sender runs from). */
  get commitHooks(): TypeOrmCommitHooks {
    return this.sending.commitHooks;
  }

  /**
   * Subscribes to this process's outbox events: the relay's (path 'relay') and the optimistic
   * publisher's (path 'optimistic'). Returns the unsubscribe function. Listeners run synchronously
   * on the publishing path (keep them cheap); what they throw is ignored.
   */
  onEvent(listener: OutboxEventListener): () => void {
    const offs = [
      this.relay?.onEvent(listener),
      this.walRelay?.onEvent(listener),
      this.optimistic?.onEvent(listener),
    ];
    return () => offs.forEach((off) => off?.());
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
 * OUTBOX_AMBIENT_TRANSACTION / OUTBOX_AUTO_START / SAGE_TRACER). Export OutboxRepository and
 * OutboxDeadLettersService.
 */
export const outboxProviders: Provider[] = [
  {
    provide: PostgresOutboxStore,
    inject: [SageDatabase],
    useFactory: (db: SageDatabase) => new PostgresOutboxStore(db.dataSource, { schema: db.schema }),
  },
  outboxPublishingBrokerProvider,
  OutboxRelayProvider,
  OutboxRetentionProvider,
  OptimisticSendingProvider,
  OutboxRepository,
  OutboxRelayService,
  OutboxDeadLettersService,
];
