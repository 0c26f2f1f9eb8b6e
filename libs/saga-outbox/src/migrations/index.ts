/**
 * `@sage/saga-outbox/migrations`: Sage's TypeORM migrations, for the app's DataSource
 * (`migrations: [...sagaOutboxMigrations(), ...appMigrations]`). Also exported from the root.
 *
 * @packageDocumentation
 */
import { sagaSchema } from '../persistence/postgres/schema-name';
import { sagaStateMigration } from './1764230400000-saga-state';
import { outboxMigration } from './1764316800000-outbox';
import { inboxMigration } from './1764403200000-inbox';
import { remoteStepsMigration } from './1764489600000-remote-steps';
import { sagaInputFingerprintMigration } from './1764576000000-saga-input-fingerprint';
import { subjectKeysMigration } from './1764662400000-subject-keys';
import { auditLogMigration } from './1764748800000-audit-log';
import { retentionMigration } from './1764835200000-retention';
import { sagaListingMigration } from './1765008000000-saga-listing';
import type { SagaOutboxMigrationClass } from './migration-support';
import { outboxWalPublicationMigration as walPublicationMigration } from './1764921600000-outbox-wal-publication';

export type { SagaOutboxMigrationClass } from './migration-support';

export interface SagaOutboxMigrationOptions {
  /** Schema holding Sage's tables (default `sage`); must match the store's `schema` option. */
  schema?: string;
}

/**
 * Sage's migrations, oldest first, for the app's DataSource:
 * `migrations: [...sagaOutboxMigrations({ schema: 'sage' }), ...appMigrations]` (TypeORM orders them by
 * timestamp either way).
 * Throws InvalidOptionsError for an invalid schema name, before anything touches the database.
 */
export function sagaOutboxMigrations(
  options: SagaOutboxMigrationOptions = {},
): SagaOutboxMigrationClass[] {
  const schema = sagaSchema(options.schema);
  return [
    sagaStateMigration(schema),
    outboxMigration(schema),
    inboxMigration(schema),
    remoteStepsMigration(schema),
    sagaInputFingerprintMigration(schema),
    subjectKeysMigration(schema),
    auditLogMigration(schema),
    retentionMigration(schema),
    sagaListingMigration(schema),
  ];
}

/**
 * Opt-in migration for the WAL-streaming relay (`outbox.relay.mode: 'wal'`): the publication of the
 * outbox table's INSERTs it decodes (`sage_outbox`, or `sage_outbox_<schema>`). Add it after Sage's
 * migrations: `migrations: [...sagaOutboxMigrations(), outboxWalPublicationMigration()]`. Needs the
 * table's owner; does not need `wal_level = logical` yet.
 */
export function outboxWalPublicationMigration(
  options: SagaOutboxMigrationOptions = {},
): SagaOutboxMigrationClass {
  return walPublicationMigration(sagaSchema(options.schema));
}
