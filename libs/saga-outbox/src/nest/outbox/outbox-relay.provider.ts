import {
  Inject,
  Injectable,
  Optional,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { OutboxRelay } from '../../core/outbox/outbox-relay';
import type { Broker } from '../../core/ports/broker';
import { PostgresOutboxStore } from '../../persistence/postgres/postgres-outbox-store';
import { NestSageLogger } from '../nest-sage-logger';
import { SageDatabase } from '../sage-database';
import { OUTBOX_PUBLISHING_BROKER } from './outbox-publishing-broker';
import { OUTBOX_AUTO_START, OUTBOX_OPTIONS, type OutboxModuleOptions } from './outbox.options';

/**
 * The outbox relay of this process (unless `outbox.relay.enabled` is false or no broker is
 * configured): started on application bootstrap (unless OUTBOX_AUTO_START is false), drained on
 * shutdown after whatever hands rows back to it (see `drainBefore`).
 */
@Injectable()
export class OutboxRelayProvider implements OnApplicationBootstrap, BeforeApplicationShutdown {
  readonly relay: OutboxRelay | undefined;
  private readonly drainFirst: (() => Promise<void>)[] = [];

  constructor(
    store: PostgresOutboxStore,
    database: SageDatabase,
    @Optional() @Inject(OUTBOX_PUBLISHING_BROKER) broker?: Broker | null,
    @Optional() @Inject(OUTBOX_OPTIONS) options?: OutboxModuleOptions,
    @Optional() @Inject(OUTBOX_AUTO_START) private readonly autoStart: boolean = true,
  ) {
    const logger = new NestSageLogger('SageOutbox');
    const { enabled, ...tuning } = options?.relay ?? {};
    if (enabled === false) return;
    if (!broker) {
      logger.warn(
        'no broker configured: this process runs no outbox relay; messages wait in the outbox until a relay with a broker runs (pass `broker` to SagaOutboxModule.forRoot, or run the standalone relay)',
        { event: 'outbox.relay.disabled' },
      );
      return;
    }
    // LISTEN/NOTIFY does not cross PGlite's socket multiplexer: poll only there.
    this.relay = new OutboxRelay({ listen: !database.embedded, ...tuning, store, broker, logger });
  }

  /**
   * Registers work that must finish before the relay stops on shutdown: the optimistic sender's
   * stop, whose handed-back rows the draining relay then publishes.
   */
  drainBefore(drain: () => Promise<void>): void {
    this.drainFirst.push(drain);
  }

  onApplicationBootstrap(): void {
    if (this.autoStart !== false) this.relay?.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await Promise.all(this.drainFirst.map((drain) => drain()));
    await this.relay?.stop();
  }
}
