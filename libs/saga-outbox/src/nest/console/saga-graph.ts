import type { SagaRecord, StepRecord } from '../../core/ports/saga-store';
import type { SagaDefinition } from '../../core/saga/saga-definition';
import { html, type Html } from './html';

/** How the console names a step's state (the step record's status, read with the saga's). */
export type StepDisplayStatus =
  | 'not started'
  | 'running'
  | 'waiting for reply'
  | 'completed'
  | 'failed'
  | 'timed out'
  | 'compensating'
  | 'compensated'
  | 'compensation failed';

export function stepDisplayStatus(saga: SagaRecord, step: StepRecord): StepDisplayStatus {
  switch (step.status) {
    case 'pending':
      // A started, unfinished step of a saga still moving forward is being run (or retried).
      return step.startedAt && (saga.status === 'running' || saga.status === 'waiting')
        ? 'running'
        : 'not started';
    case 'waiting':
      return 'waiting for reply';
    case 'timed_out':
      return 'timed out';
    case 'compensation_failed':
      return 'compensation failed';
    default:
      return step.status;
  }
}

export interface GraphNode {
  name: string;
  status: StepDisplayStatus;
  dependsOn: readonly string[];
}

/**
 * The nodes to draw: from the registered definition when it is the version the saga runs on
 * (dependencies known), else from the saga's step records in their order (`dependsOn` unknown: each
 * step drawn after the one before). `fromDefinition` says which.
 */
export function graphNodes(
  saga: SagaRecord,
  definition: SagaDefinition<unknown, unknown> | undefined,
): { nodes: GraphNode[]; fromDefinition: boolean } {
  const byName = new Map(saga.steps.map((s) => [s.name, s]));
  const status = (name: string): StepDisplayStatus => {
    const step = byName.get(name);
    return step ? stepDisplayStatus(saga, step) : 'not started';
  };
  if (definition && definition.version === saga.version)
    return {
      fromDefinition: true,
      nodes: definition.order.map((name) => ({
        name,
        status: status(name),
        dependsOn: definition.steps.get(name)?.dependsOn ?? [],
      })),
    };
  return {
    fromDefinition: false,
    nodes: saga.steps.map((s, i) => ({
      name: s.name,
      status: status(s.name),
      dependsOn: i === 0 ? [] : [saga.steps[i - 1]!.name],
    })),
  };
}

const NODE_W = 170;
const NODE_H = 44;
const GAP_X = 60;
const GAP_Y = 18;
const PAD = 12;

/**
 * The step graph as inline SVG, laid out in columns by dependency depth (a step's column is one
 * more than its deepest dependency's), each node coloured by status and carrying `data-step` /
 * `data-status` for tests and styles. Iterative over the topological order: no recursion.
 */
export function sagaGraphSvg(nodes: readonly GraphNode[]): Html {
  const column = new Map<string, number>();
  for (const node of nodes)
    column.set(
      node.name,
      node.dependsOn.reduce((c, dep) => Math.max(c, (column.get(dep) ?? -1) + 1), 0),
    );
  const rows = new Map<number, number>();
  const place = new Map<string, { x: number; y: number }>();
  for (const node of nodes) {
    const c = column.get(node.name) ?? 0;
    const r = rows.get(c) ?? 0;
    rows.set(c, r + 1);
    place.set(node.name, { x: PAD + c * (NODE_W + GAP_X), y: PAD + r * (NODE_H + GAP_Y) });
  }
  const width = PAD * 2 + (Math.max(0, ...column.values()) + 1) * (NODE_W + GAP_X) - GAP_X;
  const height = PAD * 2 + Math.max(1, ...rows.values()) * (NODE_H + GAP_Y) - GAP_Y;
  const edges = nodes.flatMap((node) =>
    node.dependsOn.flatMap((dep) => {
      const from = place.get(dep);
      const to = place.get(node.name);
      if (!from || !to) return [];
      const x1 = from.x + NODE_W;
      const y1 = from.y + NODE_H / 2;
      const x2 = to.x;
      const y2 = to.y + NODE_H / 2;
      const mid = (x1 + x2) / 2;
      return [
        html`<path
          class="edge"
          d="M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 6},${y2}"
          marker-end="url(#arrow)"
        />`,
      ];
    }),
  );
  const boxes = nodes.map((node) => {
    const { x, y } = place.get(node.name)!;
    const label = node.name.length > 22 ? `${node.name.slice(0, 21)}…` : node.name;
    return html`<g
      class="step st-${node.status.replace(/ /g, '-')}"
      data-step="${node.name}"
      data-status="${node.status}"
      transform="translate(${x},${y})"
      ><title>${node.name}: ${node.status}</title
      ><rect width="${NODE_W}" height="${NODE_H}" rx="6" /><text x="10" y="18" class="name"
        >${label}</text
      ><text x="10" y="35" class="status">${node.status}</text></g
    >`;
  });
  return html`<svg
    class="graph"
    role="img"
    aria-label="saga steps and their dependencies"
    width="${width}"
    height="${height}"
    viewBox="0 0 ${width} ${height}"
    xmlns="http://www.w3.org/2000/svg"
  >
    <defs>
      <marker
        id="arrow"
        viewBox="0 0 10 10"
        refX="5"
        refY="5"
        markerWidth="7"
        markerHeight="7"
        orient="auto-start-reverse"
      >
        <path d="M0,0 L10,5 L0,10 z" />
      </marker>
    </defs>
    ${edges}${boxes}
  </svg>`;
}
