import type { MigrationInterface, QueryRunner } from 'typeorm';
import { outboxTables } from '../persistence/postgres/outbox-tables';
import { defaultWalName } from '../persistence/postgres/wal-names';
import type { SagaSchema } from '../persistence/postgres/schema-name';
import { migrationName, runLocked, type SagaOutboxMigrationClass } from './migration-support';

export const OUTBOX_WAL_PUBLICATION_MIGRATION_TIMESTAMP = 1764921600000;

/**
 * Opt-in (not in sagaOutboxMigrations()): the publication the WAL-streaming relay decodes
 * (`outbox.relay.mode: 'wal'`, docs/outbox.md#wal-streaming-relay): the outbox table's INSERTs
 * only. The relay's own updates (sent, dead letter), retries and retention deletes are not
 * published, so the stream carries each message once, at its commit.
 *
 * CREATE PUBLICATION needs the table's owner, which is why it is a migration and not done by the
 * relay (the relay's role only needs REPLICATION, to create and stream its slot). It does not need
 * `wal_level = logical`: the publication can exist before the server is switched.
 */
export function outboxWalPublicationMigration(schema: SagaSchema): SagaOutboxMigrationClass {
  const name = migrationName(
    'SageOutboxWalPublication',
    schema,
    OUTBOX_WAL_PUBLICATION_MIGRATION_TIMESTAMP,
  );
  const t = outboxTables(schema);
  // [a-z0-9_] only (schema names are validated): safe as a quoted identifier and a literal.
  const publication = defaultWalName(schema.name);
  const applied = `SELECT EXISTS (
      SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = '${publication}'
    ) AS applied`;
  const up = [
    `CREATE PUBLICATION "${publication}" FOR TABLE ${t.outboxMessage} WITH (publish = 'insert')`,
  ];
  const down = [`DROP PUBLICATION IF EXISTS "${publication}"`];

  return class SageOutboxWalPublication1764921600000 implements MigrationInterface {
    readonly name = name;

    async up(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, up, applied);
    }

    async down(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, down);
    }
  };
}
