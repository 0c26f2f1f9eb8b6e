import type { DataSource, QueryRunner } from 'typeorm';
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
