import {
  Inject,
  Injectable,
  Optional,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
  type OnModuleInit,
} from '@nestjs/common';
import { OutboxRelay } from '../../core/outbox/outbox-relay';
import type { WalOutboxRelay } from '../../core/outbox/wal-outbox-relay';
import { WalRelayUnsupportedError } from '../../core/outbox/wal-relay-errors';
import type { Broker } from '../../core/ports/broker';
import { PostgresOutboxStore } from '../../persistence/postgres/postgres-outbox-store';
import { NestSageLogger } from '../nest-sage-logger';
import { SageDatabase } from '../sage-database';
import { OUTBOX_PUBLISHING_BROKER } from './outbox-publishing-broker';
import { createWalRelay } from './wal-relay.factory';
import { walWithOptimisticError } from './wal-relay.options';
import { OUTBOX_AUTO_START, OUTBOX_OPTIONS, type OutboxModuleOptions } from './outbox.options';

/**
 * The outbox relay of this process (unless `outbox.relay.enabled` is false or no broker is
 * configured): started on application bootstrap (unless OUTBOX_AUTO_START is false), drained on
 * shutdown after whatever hands rows back to it (see `drainBefore`).
 */
@Injectable()
export class OutboxRelayProvider
  implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown
{
  /** The polling relay (`outbox.relay.mode` "polling", the default). */
  readonly relay: OutboxRelay | undefined;
  /** The WAL-streaming relay (`outbox.relay.mode` "wal"). */
  readonly walRelay: WalOutboxRelay | undefined;
  private readonly drainFirst: (() => Promise<void>)[] = [];

  constructor(
    store: PostgresOutboxStore,
    database: SageDatabase,
    @Optional() @Inject(OUTBOX_PUBLISHING_BROKER) broker?: Broker | null,
    @Optional() @Inject(OUTBOX_OPTIONS) options?: OutboxModuleOptions,
    @Optional() @Inject(OUTBOX_AUTO_START) private readonly autoStart: boolean = true,
  ) {
    const logger = new NestSageLogger('SageOutbox');
    const { enabled, mode, wal, ...tuning } = options?.relay ?? {};
    if (enabled === false) return;
    if (mode === 'wal') {
      // Also checked with the module's options (validateRelayMode): here for OUTBOX_OPTIONS users.
      if (database.embedded) throw new WalRelayUnsupportedError('embedded PGlite');
      if (options?.optimistic?.enabled) throw walWithOptimisticError();
    }
    if (!broker) {
      logger.warn(
        'no broker configured: this process runs no outbox relay; messages wait in the outbox until a relay with a broker runs (pass `broker` to SagaOutboxModule.forRoot, or run the standalone relay)',
        { event: 'outbox.relay.disabled' },
      );
      return;
    }
    if (mode === 'wal') {
      this.walRelay = createWalRelay(database, store, broker, logger, tuning, wal);
      return;
    }
    // LISTEN/NOTIFY does not cross PGlite's socket multiplexer: poll only there.
    this.relay = new OutboxRelay({ listen: !database.embedded, ...tuning, store, broker, logger });
  }

  /** The relay of this process, whichever mode: for health, metrics and events. */
  get active(): OutboxRelay | WalOutboxRelay | undefined {
    return this.relay ?? this.walRelay;
  }

  /**
   * Registers work that must finish before the relay stops on shutdown: the optimistic sender's
   * stop, whose handed-back rows the draining relay then publishes.
   */
  drainBefore(drain: () => Promise<void>): void {
    this.drainFirst.push(drain);
  }

  /**
   * wal_level, publication, slot: a typed error fails the startup here, before any loop of the
   * application starts (onApplicationBootstrap), rather than a background loop retrying forever.
   */
  async onModuleInit(): Promise<void> {
    if (this.autoStart !== false) await this.walRelay?.check();
  }

  onApplicationBootstrap(): void {
    if (this.autoStart !== false) this.active?.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await Promise.all(this.drainFirst.map((drain) => drain()));
    await this.active?.stop();
  }
}
