import {
  Inject,
  Injectable,
  Optional,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
  type Provider,
} from '@nestjs/common';
import { InboxRetention } from '../../core/inbox/inbox-retention';
import { PostgresInboxStore } from '../../persistence/postgres/postgres-inbox-store';
import { SageDatabase } from '../sage-database';
import { NestSageLogger } from '../nest-sage-logger';
import { IdempotentHandlerExplorer } from './idempotent-handler.explorer';
import { INBOX_OPTIONS, type InboxModuleOptions } from './inbox.options';
import { InboxService } from './inbox.service';

/**
 * Runs the leader-only inbox retention (see InboxRetention) from application bootstrap to
 * shutdown, unless `inbox.retention.enabled` is false.
 */
@Injectable()
export class InboxMaintenance implements OnApplicationBootstrap, BeforeApplicationShutdown {
  readonly retention: InboxRetention | undefined;

  constructor(
    store: PostgresInboxStore,
    @Optional() @Inject(INBOX_OPTIONS) options?: InboxModuleOptions,
  ) {
    const { enabled, ...tuning } = options?.retention ?? {};
    if (enabled !== false)
      this.retention = new InboxRetention({
        ...tuning,
        store,
        logger: new NestSageLogger('SageInbox'),
      });
  }

  onApplicationBootstrap(): void {
    this.retention?.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.retention?.stop();
  }
}

/**
 * Providers to add to SagaOutboxModule (next to outboxProviders; they need SageDatabase, the
 * DiscoveryModule and optionally OUTBOX_BROKER / INBOX_OPTIONS). Export InboxService.
 */
export const inboxProviders: Provider[] = [
  {
    provide: PostgresInboxStore,
    inject: [SageDatabase],
    useFactory: (db: SageDatabase) => new PostgresInboxStore(db.dataSource, { schema: db.schema }),
  },
  InboxService,
  IdempotentHandlerExplorer,
  InboxMaintenance,
];
