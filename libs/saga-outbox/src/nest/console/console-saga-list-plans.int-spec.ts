/**
 * The console's sagas list on a million sagas: every page, at any depth and with any filter, is
 * read from an index (keyset on (created_at, id)), never by scanning or sorting the table. The
 * statement is the CLI's operator query (selectSagaList) with the console's cursor and filters,
 * planned with EXPLAIN against the busy-system mix (95 % completed, a few live), and one deep page
 * run with EXPLAIN ANALYZE to show it reads about a page of rows, not the rows before it.
 */
import { loadavg } from 'node:os';
import { Client } from 'pg';
import { busySystemSeed, SAGA_NAMES } from '@test/support/busy-system-seed';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { explain, indexScans, seqScans, type QueryPlan } from '@test/support/query-plan';
import * as operatorSql from '../../persistence/postgres/operator-queries.sql';
import { sagaSchema } from '../../persistence/postgres/schema-name';

jest.setTimeout(120_000);

const ROWS = 1_000_000;
const PAGE = 51; // the console asks for one more row than it shows
const schema = sagaSchema();
const ENDED = 'saga_instance_ended_created_idx';
const LIVE = 'saga_instance_claim_idx';

let db: TestDatabase;
let client: Client;
/** A cursor half-way down the table: page 10,000 of 50 sagas. */
let middle: operatorSql.SagaListCursor;

beforeAll(async () => {
  db = await createTestDatabase();
  client = new Client(db.connection);
  await client.connect();
  // Only the saga tables of the busy-system seed (instances with one step each).
  for (const sql of busySystemSeed(ROWS)[1]!) await client.query(sql);
  await client.query(`ANALYZE ${schema.sagaInstance}, ${schema.sagaStep}`);
  const { rows } = await client.query<{ micros: string; id: string }>(
    `SELECT (extract(epoch FROM created_at) * 1000000)::bigint::text AS micros, id
       FROM ${schema.sagaInstance} ORDER BY created_at DESC, id DESC OFFSET ${ROWS / 2} LIMIT 1`,
  );
  middle = { createdAtMicros: rows[0]!.micros, id: rows[0]!.id };
});

afterAll(async () => {
  await client?.end();
  await db?.drop();
});

function list(p: Partial<Parameters<typeof operatorSql.selectSagaList>[1]>) {
  return operatorSql.selectSagaList(schema, {
    status: null,
    name: null,
    limit: PAGE,
    stalledAfterSeconds: 60,
    ...p,
  });
}

/**
 * Uses each index given, scans no saga table sequentially. (The live branch sorts the live sagas
 * it reads from the claim index in memory, by design: they are few; see selectSagaList.)
 */
async function expectIndexed(
  statement: { text: string; values: readonly unknown[] },
  indexes: readonly string[],
): Promise<QueryPlan> {
  const plan = await explain(client, statement);
  const problems = [
    ...indexes.filter((i) => !indexScans(plan, i).length).map((i) => `uses no index scan of ${i}`),
    ...['saga_instance', 'saga_step']
      .filter((t) => seqScans(plan, t).length)
      .map((t) => `scans ${t} sequentially`),
  ];
  if (problems.length) throw new Error(`${problems.join('; ')}\nplan:\n${plan.text}`);
  return plan;
}

it('the first page, a deep page, and pages by status, name and age read indexes only', async () => {
  await expectIndexed(list({}), [ENDED, LIVE]);
  await expectIndexed(list({ before: middle }), [ENDED, LIVE]);
  await expectIndexed(list({ before: middle, status: 'compensated' }), [ENDED]);
  await expectIndexed(list({ before: middle, status: 'running' }), [LIVE]);
  await expectIndexed(list({ before: middle, name: SAGA_NAMES[1]! }), [ENDED, LIVE]);
  await expectIndexed(list({ before: middle, olderThanSeconds: 3600 }), [ENDED, LIVE]);
});

it('an idempotency key with its saga name is one probe of the unique index', async () => {
  await expectIndexed(list({ name: SAGA_NAMES[2]!, idempotencyKey: 'key-1002' }), [
    'saga_instance_name_idempotency_key_key',
  ]);
});

it('a deep page reads about one page of rows (keyset: no offset to skip)', async () => {
  const statement = list({ before: middle });
  const { rows } = await client.query<{
    'QUERY PLAN': [{ Plan: RawNode; 'Execution Time': number }];
  }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${statement.text}`, [...statement.values]);
  const [{ Plan: root, 'Execution Time': ms }] = rows[0]!['QUERY PLAN'];
  const scans: RawNode[] = [];
  const stack = [root];
  while (stack.length) {
    const node = stack.pop()!;
    if (node['Relation Name'] === 'saga_instance') scans.push(node);
    stack.push(...(node.Plans ?? []));
  }
  const read = scans.reduce((n, s) => n + s['Actual Rows'] * s['Actual Loops'], 0);
  // Measured, not asserted (a shared machine): reported with the load it ran under.
  process.stdout.write(
    `console sagas list, deep page of ${ROWS.toLocaleString('en')} sagas: ${ms.toFixed(1)} ms, ` +
      `${read} instance rows read (load ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')})\n`,
  );
  // The live branch reads the few live sagas older than the cursor (at most a page), the ended
  // branch a page: nothing near the half million rows before the cursor.
  expect(read).toBeLessThanOrEqual(2 * PAGE);
});

interface RawNode {
  'Relation Name'?: string;
  'Actual Rows': number;
  'Actual Loops': number;
  Plans?: RawNode[];
}
