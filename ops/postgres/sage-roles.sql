-- Least privilege for Sage on PostgreSQL: two roles (docs/security.md, "Least privilege").
--
--   migrator  owns Sage's schema and everything in it: runs `sage migrate` (DDL) at deploy time.
--   runtime   what the apps, the relay (sage-relay) and operators (sage CLI) connect as: DML on
--             Sage's tables only (SELECT, INSERT, UPDATE, DELETE), no DDL, owns nothing. Run them
--             with migrations off (runMigrations: false / SAGE_RUN_MIGRATIONS=false; the default
--             with NODE_ENV=production).
--
-- Run once per database (and again after upgrading from a setup where a superuser ran the
-- migrations: it hands the existing objects to the migrator), as a role that may create roles
-- and owns the database (or a superuser):
--
--   psql "postgres://admin@db:5432/app" -v ON_ERROR_STOP=1 \
--     -v schema=sage -v migrator=sage_migrator -v runtime=sage_runtime \
--     -f ops/postgres/sage-roles.sql
--
-- Variables (all optional): schema (default sage), migrator (default sage_migrator), runtime
-- (default sage_runtime), migrations_schema (default public: where TypeORM's migrations tables,
-- `migrations` and `sage_migrations`, live). The roles are created with LOGIN and no password if
-- they do not exist; give them one yourself (`\password sage_runtime`) or use certificates.
-- Idempotent: safe to run again.

\if :{?schema}
\else
  \set schema sage
\endif
\if :{?migrator}
\else
  \set migrator sage_migrator
\endif
\if :{?runtime}
\else
  \set runtime sage_runtime
\endif
\if :{?migrations_schema}
\else
  \set migrations_schema public
\endif

BEGIN;

-- The roles, if missing. NOINHERIT/NOCREATEROLE/NOCREATEDB/NOSUPERUSER are PostgreSQL's defaults.
SELECT format('CREATE ROLE %I LOGIN', :'migrator')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'migrator') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'runtime')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'runtime') \gexec

-- Both connect. The migrator may create schemas (Sage's first migration runs CREATE SCHEMA IF NOT
-- EXISTS, which PostgreSQL checks before it sees the schema exists); the runtime may not.
SELECT format('GRANT CONNECT ON DATABASE %I TO %I, %I', current_database(), :'migrator', :'runtime') \gexec
SELECT format('GRANT CREATE ON DATABASE %I TO %I', current_database(), :'migrator') \gexec

-- Sage's schema, owned by the migrator; objects a superuser created before are handed over.
CREATE SCHEMA IF NOT EXISTS :"schema" AUTHORIZATION :"migrator";
ALTER SCHEMA :"schema" OWNER TO :"migrator";
SELECT format('ALTER TABLE %I.%I OWNER TO %I', n.nspname, c.relname, :'migrator')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = :'schema' AND c.relkind IN ('r', 'p', 'v', 'm')
  ORDER BY c.relname \gexec
SELECT format('ALTER FUNCTION %s OWNER TO %I', p.oid::regprocedure, :'migrator')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname = :'schema' \gexec

-- TypeORM's migrations tables (`migrations` for `sage migrate` and app DataSources,
-- `sage_migrations` when Sage migrates its own pool): the migrator creates and writes them.
SELECT format('GRANT USAGE, CREATE ON SCHEMA %I TO %I', :'migrations_schema', :'migrator') \gexec
SELECT format('ALTER TABLE %I.%I OWNER TO %I', :'migrations_schema', t, :'migrator')
  FROM unnest(ARRAY['migrations', 'sage_migrations']) AS t
  WHERE to_regclass(format('%I.%I', :'migrations_schema', t)) IS NOT NULL \gexec

-- The runtime role: no CREATE anywhere, only DML on Sage's tables, and reading the migrations
-- tables (the startup check that no Sage migration is pending; `sage migrate --check`).
-- Sequences (the outbox's identity column) and functions (the outbox NOTIFY trigger's) are
-- granted too; LISTEN/NOTIFY and advisory locks need no grant.
REVOKE CREATE ON SCHEMA :"schema" FROM PUBLIC;
GRANT USAGE ON SCHEMA :"schema" TO :"runtime";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA :"schema" TO :"runtime";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA :"schema" TO :"runtime";
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA :"schema" TO :"runtime";
SELECT format('GRANT USAGE ON SCHEMA %I TO %I', :'migrations_schema', :'runtime') \gexec
SELECT format('GRANT SELECT ON TABLE %I.%I TO %I', :'migrations_schema', t, :'runtime')
  FROM unnest(ARRAY['migrations', 'sage_migrations']) AS t
  WHERE to_regclass(format('%I.%I', :'migrations_schema', t)) IS NOT NULL \gexec
-- Data-subject keys (crypto-shredding): the runtime role makes keys (INSERT), reads them, erases
-- subjects (DELETE) and rotates their wrapping (UPDATE). Stated on its own, so a later tightening
-- of the blanket grant above keeps it.
SELECT format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %I.subject_key TO %I', :'schema', :'runtime')
  WHERE to_regclass(format('%I.subject_key', :'schema')) IS NOT NULL \gexec

-- The audit log is append-only for everyone but its owner (docs/audit-log.md): the runtime role
-- INSERTs entries (audit_pending: INSERT, SELECT, DELETE for the sealer) and reads checkpoints,
-- which only sage_audit_prune (SECURITY DEFINER, EXECUTE granted above) writes. The audit-log
-- migration strips the same rights when it creates the tables after this script has run.
SELECT format('REVOKE UPDATE, DELETE, TRUNCATE ON %I.audit_log FROM %I', :'schema', :'runtime')
  WHERE to_regclass(format('%I.audit_log', :'schema')) IS NOT NULL \gexec
SELECT format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON %I.audit_checkpoint FROM %I', :'schema', :'runtime')
  WHERE to_regclass(format('%I.audit_checkpoint', :'schema')) IS NOT NULL \gexec

-- What the migrator creates later (new tables of a Sage upgrade) is granted the same way.
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator" IN SCHEMA :"schema"
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"runtime";
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator" IN SCHEMA :"schema"
  GRANT USAGE, SELECT ON SEQUENCES TO :"runtime";
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator" IN SCHEMA :"schema"
  GRANT EXECUTE ON FUNCTIONS TO :"runtime";
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT SELECT ON TABLES TO %I',
              :'migrator', :'migrations_schema', :'runtime') \gexec

-- Retention vacuums the tables after large deletes. PostgreSQL 17+ has a MAINTAIN privilege for
-- that; before 17 only the owner may VACUUM, and the runtime role's VACUUM is skipped with a
-- warning (autovacuum still runs).
SELECT current_setting('server_version_num')::int >= 170000 AS sage_has_maintain \gset
\if :sage_has_maintain
  GRANT MAINTAIN ON ALL TABLES IN SCHEMA :"schema" TO :"runtime";
  ALTER DEFAULT PRIVILEGES FOR ROLE :"migrator" IN SCHEMA :"schema"
    GRANT MAINTAIN ON TABLES TO :"runtime";
\endif

COMMIT;
