import {
  Inject,
  Injectable,
  Optional,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
  type Provider,
} from '@nestjs/common';
import { InvalidOptionsError } from '../../core/errors';
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
    inject: [SageDatabase, { token: INBOX_OPTIONS, optional: true }],
    useFactory: (db: SageDatabase, options?: InboxModuleOptions) => {
      const prepared = options?.preparedStatements;
      if (prepared !== undefined && typeof prepared !== 'boolean')
        throw new InvalidOptionsError(
          'inbox.preparedStatements',
          `must be true or false, got ${typeof prepared}`,
        );
      if (prepared === true && db.embedded)
        throw new InvalidOptionsError(
          'inbox.preparedStatements',
          'cannot be used with the embedded database (PGlite runs one session for every connection, so their prepared statements collide). Remove it, or give Sage a PostgreSQL server.',
        );
      return new PostgresInboxStore(db.dataSource, {
        schema: db.schema,
        preparedStatements: prepared,
      });
    },
  },
  InboxService,
  IdempotentHandlerExplorer,
  InboxMaintenance,
];
