/**
 * `@sage/saga-outbox/embedded`: PostgreSQL in the process (PGlite behind a wire-protocol socket), for
 * demos, local development and tests. Needs `@electric-sql/pglite` and `@electric-sql/pglite-socket`.
 * (SagaOutboxModule without `dataSource` or `postgres` starts it by itself.)
 *
 * @packageDocumentation
 */
export { startEmbeddedPostgres } from './persistence/postgres/embedded-postgres';
export type {
  EmbeddedPostgres,
  EmbeddedPostgresOptions,
} from './persistence/postgres/embedded-postgres';
export {
  EMBEDDED_IN_PRODUCTION_ENV,
  EmbeddedDatabaseInProductionError,
} from './persistence/postgres/embedded-postgres-guard';
