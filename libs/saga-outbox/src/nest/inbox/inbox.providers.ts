import type { Provider } from '@nestjs/common';
import { PostgresInboxStore } from '../../persistence/postgres/inbox-postgres-store';
import { SageDatabase } from '../sage-database';
import { IdempotentHandlerExplorer } from './idempotent-handler.explorer';
import { InboxService } from './inbox.service';

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
];
