import { createHash } from 'node:crypto';
import { QueryFailedError, type DataSource, type QueryRunner } from 'typeorm';
import type { Statement } from './saga-queries.sql';

/** Runs one named statement on `runner` and returns its rows (the RETURNING rows for writes). */
export async function runStatement<Row>(
  runner: QueryRunner,
  statement: Statement<Row>,
): Promise<Row[]> {
  // useStructuredResult: TypeORM otherwise returns [rows, count] for UPDATE/DELETE.
  const result = await runner.query(statement.text, [...statement.values], true);
  return (result as { records: Row[] }).records;
}

/** One statement in its own (implicit) transaction, on a pooled connection. */
export async function queryOnce<Row>(
  dataSource: DataSource,
  statement: Statement<Row>,
): Promise<Row[]> {
  const runner = dataSource.createQueryRunner();
  try {
    return await runStatement(runner, statement);
  } finally {
    await runner.release();
  }
}

/** What runPrepared needs of the `pg` client behind a TypeORM postgres QueryRunner. */
interface PreparingClient {
  query(config: { name: string; text: string; values: unknown[] }): Promise<{ rows: unknown[] }>;
}

/**
 * The name `statement`'s text is prepared under on each connection: `prefix` plus a digest of the
 * text, so two stores on other schemas (different text) never share a name (`pg` refuses a name
 * reused for another text).
 */
export function preparedStatementName(prefix: string, statement: Statement<unknown>): string {
  return `${prefix}_${createHash('sha256').update(statement.text).digest('hex').slice(0, 16)}`;
}

/**
 * runStatement as a named prepared statement: `pg` parses it once per pooled connection and then
 * sends only Bind/Execute, and PostgreSQL reuses the parse and, after a few executions, the plan
 * (for a small hot statement, planning costs more than running it). Goes to the `pg` client under
 * `runner` directly (TypeORM's query() takes text only), logging through the DataSource's logger
 * and failing with QueryFailedError as runner.query() would. Only for a server session of its
 * own: not PGlite (one session shared by every connection) nor a PgBouncer before 1.21 in
 * transaction mode (the statement would be missing on the next server connection).
 */
export async function runPrepared<Row>(
  runner: QueryRunner,
  name: string,
  statement: Statement<Row>,
): Promise<Row[]> {
  const values = [...statement.values];
  const client = (await runner.connect()) as PreparingClient;
  const logger = runner.connection.logger;
  logger.logQuery(statement.text, values, runner);
  try {
    return (await client.query({ name, text: statement.text, values })).rows as Row[];
  } catch (error) {
    const failure = error instanceof Error ? error : new Error(String(error));
    logger.logQueryError(failure, statement.text, values, runner);
    throw new QueryFailedError(statement.text, values, failure);
  }
}
