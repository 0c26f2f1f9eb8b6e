import { OutboxDeadLetters } from '../core/outbox/outbox-dead-letters';
import { urlSecrets } from '../core/startup/connection-url';
import { createSagaDataSource } from '../persistence/postgres/data-source';
import { PostgresInboxStore } from '../persistence/postgres/postgres-inbox-store';
import { PostgresOperatorQueries } from '../persistence/postgres/postgres-operator-queries';
import { PostgresOutboxStore } from '../persistence/postgres/postgres-outbox-store';
import { PostgresSagaStore } from '../persistence/postgres/postgres-saga-store';
import { PostgresSagaOperatorActions } from '../persistence/postgres/postgres-saga-operator-actions';
import type { DataSource } from 'typeorm';
import { UsageError } from './cli-errors';

/** What every command may use: one small pool and the library's stores over it. */
export interface SageConnection {
  readonly dataSource: DataSource;
  readonly schema: string;
  readonly outbox: PostgresOutboxStore;
  readonly deadLetters: OutboxDeadLetters;
  readonly inbox: PostgresInboxStore;
  readonly sagas: PostgresSagaStore;
  /** `sage sagas retry|compensate`: one transaction each, audited as `auditActor`. */
  readonly sagaActions: PostgresSagaOperatorActions;
  readonly operator: PostgresOperatorQueries;
  close(): Promise<void>;
}

export interface ConnectionSettings {
  url: string;
  schema: string;
  /** TypeORM's migrations table (the app's DataSource option `migrationsTableName`). */
  migrationsTableName?: string;
  stalledAfterSeconds?: number;
  /** The operator the audit log names for dead-letter changes (`--operator`, see operator.ts). */
  auditActor?: string;
}

/**
 * `--database-url` or DATABASE_URL, checked before anything connects. Returns the URL and the
 * secrets in it (the password, raw and decoded) so error messages can be scrubbed of them.
 */
export function readDatabaseUrl(
  option: string | undefined,
  env: NodeJS.ProcessEnv,
): { url: string; secrets: string[] } {
  const url = (option ?? env.DATABASE_URL ?? '').trim();
  if (!url)
    throw new UsageError(
      'no database: set DATABASE_URL or pass --database-url postgres://user:password@host:5432/db',
    );
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Never echo the value: it may hold a password.
    throw new UsageError(
      'the database URL is not a valid URL (expected postgres://user:password@host:5432/db)',
    );
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:')
    throw new UsageError(
      `the database URL must start with postgres:// or postgresql://, not ${parsed.protocol}//`,
    );
  return { url, secrets: urlSecrets(url) };
}

/** Where we connect, for messages: host, port and database, never user or password. */
export function describeTarget(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname || '/'}`;
  } catch {
    return 'the database';
  }
}

export async function openConnection(settings: ConnectionSettings): Promise<SageConnection> {
  const dataSource = createSagaDataSource({
    url: settings.url,
    schema: settings.schema,
    poolSize: 4,
    applicationName: 'sage-cli',
    connectTimeoutMS: 10_000,
    migrationsTableName: settings.migrationsTableName,
  });
  // The stores validate the schema name before anything connects.
  const options = { schema: settings.schema };
  const outbox = new PostgresOutboxStore(dataSource, {
    ...options,
    auditActor: settings.auditActor,
  });
  const connection: SageConnection = {
    dataSource,
    schema: settings.schema,
    outbox,
    deadLetters: new OutboxDeadLetters(outbox),
    inbox: new PostgresInboxStore(dataSource, { ...options, auditActor: settings.auditActor }),
    sagas: new PostgresSagaStore(dataSource, options),
    sagaActions: new PostgresSagaOperatorActions(dataSource, {
      ...options,
      auditActor: settings.auditActor,
    }),
    operator: new PostgresOperatorQueries(dataSource, {
      ...options,
      stalledAfterSeconds: settings.stalledAfterSeconds,
    }),
    close: async () => {
      if (dataSource.isInitialized) await dataSource.destroy();
    },
  };
  await dataSource.initialize();
  return connection;
}
