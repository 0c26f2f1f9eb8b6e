import type { DataSource } from 'typeorm';

/**
 * Every row of every table of a database, as JSON text (`row_to_json`), by table; but TypeORM's
 * lists of migrations run (`public.*migrations`: their names and 13-digit timestamps, no data).
 * What the e2e specs scan for data that must never be stored in clear.
 */
export async function allRows(ds: DataSource): Promise<Map<string, string[]>> {
  const tables = (await ds.query(
    `SELECT format('%I.%I', table_schema, table_name) AS name FROM information_schema.tables
      WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
        AND NOT (table_schema = 'public' AND table_name LIKE '%migrations')
      ORDER BY 1`,
  )) as { name: string }[];
  const rows = new Map<string, string[]>();
  for (const { name } of tables)
    rows.set(
      name,
      (
        (await ds.query(`SELECT row_to_json(t)::text AS row FROM ${name} t`)) as { row: string }[]
      ).map((r) => r.row),
    );
  return rows;
}
