/**
 * A statement's plan as PostgreSQL would run it (`EXPLAIN (FORMAT JSON)`, never executed), flattened
 * into its nodes, for tests that hold hot statements to their indexes. The statement is sent with
 * its parameters, so the planner sees the values (a custom plan), as it does for the first runs of a
 * prepared statement.
 */
import type { Client } from 'pg';

/** The fields of a plan node the plan tests read. */
export interface PlanNode {
  readonly nodeType: string;
  readonly relation: string | undefined;
  readonly index: string | undefined;
  /** The planner's estimate of the rows this node returns (per loop). */
  readonly rows: number;
  /** `ON CONFLICT` arbiter indexes of an INSERT. */
  readonly arbiterIndexes: readonly string[];
}

export interface QueryPlan {
  readonly nodes: readonly PlanNode[];
  /** The plan as indented text (node, relation, index, estimated rows), for failure messages. */
  readonly text: string;
}

interface RawNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Plan Rows': number;
  'Conflict Arbiter Indexes'?: string[];
  Plans?: RawNode[];
}

export const INDEX_SCANS: readonly string[] = [
  'Index Scan',
  'Index Only Scan',
  'Bitmap Index Scan',
];

export async function explain(
  client: Client,
  statement: { text: string; values: readonly unknown[] },
): Promise<QueryPlan> {
  const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: RawNode }] }>(
    `EXPLAIN (FORMAT JSON) ${statement.text}`,
    [...statement.values],
  );
  const root = rows[0]?.['QUERY PLAN'][0].Plan;
  if (!root) throw new Error('EXPLAIN returned no plan');
  const nodes: PlanNode[] = [];
  const lines: string[] = [];
  const walk = (n: RawNode, depth = 0): void => {
    lines.push(
      `${'  '.repeat(depth)}${n['Node Type']}${n['Relation Name'] ? ` on ${n['Relation Name']}` : ''}` +
        `${n['Index Name'] ? ` using ${n['Index Name']}` : ''} (rows=${n['Plan Rows']})`,
    );
    nodes.push({
      nodeType: n['Node Type'],
      relation: n['Relation Name'],
      index: n['Index Name'],
      rows: n['Plan Rows'],
      arbiterIndexes: n['Conflict Arbiter Indexes'] ?? [],
    });
    for (const child of n.Plans ?? []) walk(child, depth + 1);
  };
  walk(root);
  return { nodes, text: lines.join('\n') };
}

/** The index scans (any kind) of `index` in the plan. */
export function indexScans(plan: QueryPlan, index: string): PlanNode[] {
  return plan.nodes.filter((n) => n.index === index && INDEX_SCANS.includes(n.nodeType));
}

/** Sequential scans of `relation` in the plan. */
export function seqScans(plan: QueryPlan, relation: string): PlanNode[] {
  return plan.nodes.filter((n) => n.nodeType === 'Seq Scan' && n.relation === relation);
}
