import {
  Inject,
  Injectable,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { SagaRetention } from '../core/saga/saga-retention';
import { PostgresSagaRetentionStore } from '../persistence/postgres/postgres-saga-retention-store';
import { NestSageLogger } from './nest-sage-logger';
import { SAGA_OUTBOX_OPTIONS } from './saga-outbox.module-definition';
import type { SagaOutboxModuleOptions } from './saga-outbox.options';
import { SageDatabase } from './sage-database';

/**
 * The leader-only retention of terminal sagas (`saga.retention`; on by default, 30 days), started
 * on application bootstrap unless `saga.retention.enabled` or `autoStart` is false, stopped on
 * shutdown. With `autoStart: false` it is built but not started: `retention?.start()`.
 */
@Injectable()
export class SagaRetentionProvider implements OnApplicationBootstrap, BeforeApplicationShutdown {
  /** Absent when `saga.retention.enabled` is false. */
  readonly retention: SagaRetention | undefined;
  private readonly autoStart: boolean;

  constructor(
    database: SageDatabase,
    @Inject(SAGA_OUTBOX_OPTIONS) options: SagaOutboxModuleOptions,
  ) {
    const { enabled, ...tuning } = options.saga?.retention ?? {};
    this.autoStart = options.autoStart !== false;
    if (enabled !== false)
      this.retention = new SagaRetention({
        ...tuning,
        store: new PostgresSagaRetentionStore(database.dataSource, { schema: database.schema }),
        logger: new NestSageLogger('Sage'),
      });
  }

  onApplicationBootstrap(): void {
    if (this.autoStart) this.retention?.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.retention?.stop();
  }
}
