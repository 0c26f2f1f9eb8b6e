import {
  Inject,
  Injectable,
  Optional,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { OutboxRetention } from '../../core/outbox/outbox-retention';
import { PostgresOutboxStore } from '../../persistence/postgres/postgres-outbox-store';
import { NestSageLogger } from '../nest-sage-logger';
import { OUTBOX_AUTO_START, OUTBOX_OPTIONS, type OutboxModuleOptions } from './outbox.options';

/**
 * The leader-only retention of sent outbox rows (unless `outbox.retention.enabled` is false):
 * started on application bootstrap (unless OUTBOX_AUTO_START is false), stopped on shutdown.
 */
@Injectable()
export class OutboxRetentionProvider implements OnApplicationBootstrap, BeforeApplicationShutdown {
  readonly retention: OutboxRetention | undefined;

  constructor(
    store: PostgresOutboxStore,
    @Optional() @Inject(OUTBOX_OPTIONS) options?: OutboxModuleOptions,
    @Optional() @Inject(OUTBOX_AUTO_START) private readonly autoStart: boolean = true,
  ) {
    const { enabled, ...tuning } = options?.retention ?? {};
    if (enabled !== false)
      this.retention = new OutboxRetention({
        ...tuning,
        store,
        logger: new NestSageLogger('SageOutbox'),
      });
  }

  onApplicationBootstrap(): void {
    if (this.autoStart !== false) this.retention?.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.retention?.stop();
  }
}
