import { Inject, Injectable, Optional, type BeforeApplicationShutdown } from '@nestjs/common';
import { OptimisticSender } from '../../core/outbox/optimistic-sender';
import type { Broker } from '../../core/ports/broker';
import { PostgresOutboxStore } from '../../persistence/postgres/postgres-outbox-store';
import { TypeOrmCommitHooks } from '../../persistence/postgres/typeorm-commit-hooks';
import { NestSageLogger } from '../nest-sage-logger';
import { OutboxRelayProvider } from './outbox-relay.provider';
import { OUTBOX_PUBLISHING_BROKER } from './outbox-publishing-broker';
import { OUTBOX_AUTO_START, OUTBOX_OPTIONS, type OutboxModuleOptions } from './outbox.options';

/**
 * Optimistic sending (when `outbox.optimistic.enabled` and a broker is configured): the publisher
 * the write side hands committed rows to, and the TypeORM after-commit hooks it runs from. Stopped
 * on shutdown before the relay drains, so the relay publishes what it hands back.
 *
 * With OUTBOX_AUTO_START false (`autoStart: false`) it is built switched off, like the relay is
 * built but not started: nothing is sent optimistically and no after-commit hook is attached
 * (the rows wait for the relay) until `OutboxRelayService.optimistic.setRollout({ enabled: true })`.
 */
@Injectable()
export class OptimisticSendingProvider implements BeforeApplicationShutdown {
  /** Present when `outbox.optimistic.enabled` and a broker is configured. */
  readonly optimistic: OptimisticSender | undefined;
  /** After-commit hooks on TypeORM transactions (what the optimistic sender runs from). */
  readonly commitHooks = new TypeOrmCommitHooks();
  private stopped: Promise<void> | undefined;

  constructor(
    store: PostgresOutboxStore,
    relay: OutboxRelayProvider,
    @Optional() @Inject(OUTBOX_PUBLISHING_BROKER) broker?: Broker | null,
    @Optional() @Inject(OUTBOX_OPTIONS) options?: OutboxModuleOptions,
    @Optional() @Inject(OUTBOX_AUTO_START) autoStart: boolean = true,
  ) {
    if (options?.optimistic?.enabled !== true) return;
    const logger = new NestSageLogger('SageOutbox');
    if (!broker) {
      logger.warn(
        'outbox.optimistic.enabled is set but no broker is configured: nothing is sent optimistically',
        { event: 'outbox.optimistic.disabled' },
      );
      return;
    }
    this.optimistic = new OptimisticSender({
      ...options.optimistic,
      enabled: autoStart !== false,
      store,
      broker,
      logger,
      // Released rows are announced by NOTIFY; a relay that cannot listen (PGlite) is woken here.
      onHandBack: () => relay.relay?.wake(),
    });
    relay.drainBefore(() => this.stop());
  }

  /** No new attempts; in-flight ones hand their rows back; the commit hooks are detached. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      await this.optimistic?.stop();
      this.commitHooks.detachAll();
    })();
    return this.stopped;
  }

  beforeApplicationShutdown(): Promise<void> {
    return this.stop();
  }
}
