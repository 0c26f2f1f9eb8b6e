import type { MigrationInterface, QueryRunner } from 'typeorm';
import type { SagaSchema } from '../persistence/postgres/schema-name';
import { migrationName, runLocked, type SagaOutboxMigrationClass } from './migration-support';

export const SAGA_LISTING_MIGRATION_TIMESTAMP = 1765008000000;

/**
 * `saga_instance_ended_created_idx`: ended sagas (completed, compensated, failed) by
 * `(created_at, id)`, the order of the operator listing (`sage sagas list`, newest first: read
 * backwards; operator-queries.sql.ts selectSagaList). Without it the listing sorted a sequential
 * scan of every saga kept: on a million sagas the one hot-path plan without an index
 * (hot-statement-plans.int-spec.ts). Partial on ended sagas, on purpose: an index over every saga by
 * `created_at` made the planner walk it from the oldest saga for the recovery claim (which orders
 * live sagas by `created_at` too), filtering out every ended saga on the way. Live sagas are few and
 * listed from the claim index. A saga enters this index once, when it ends.
 *
 * A plain CREATE INDEX (in the migration's transaction, like every Sage migration): saga writes wait
 * while it builds, about a second per million ended sagas.
 */
export function sagaListingMigration(schema: SagaSchema): SagaOutboxMigrationClass {
  const name = migrationName('SageSagaListing', schema, SAGA_LISTING_MIGRATION_TIMESTAMP);
  const { quoted, sagaInstance } = schema;

  const up = [
    `CREATE INDEX IF NOT EXISTS saga_instance_ended_created_idx
      ON ${sagaInstance} (created_at, id)
      WHERE status IN ('completed', 'compensated', 'failed')`,
  ];

  // The object `up` creates, looked up with a plain SELECT (see runLocked).
  const applied = `SELECT EXISTS (
      SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ${schema.literal} AND c.relname = 'saga_instance_ended_created_idx'
    ) AS applied`;

  const down = [`DROP INDEX IF EXISTS ${quoted}."saga_instance_ended_created_idx"`];

  return class SageSagaListing1765008000000 implements MigrationInterface {
    readonly name = name;

    async up(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, up, applied);
    }

    async down(queryRunner: QueryRunner): Promise<void> {
      await runLocked(queryRunner, down);
    }
  };
}
