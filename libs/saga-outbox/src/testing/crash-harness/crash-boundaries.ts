import type { StepPhase } from '../../core/ports/saga-store';
import type { StepKind } from '../../core/saga/saga-definition';

/**
 * Where a worker dies. `before-commit`: the step phase's writes (the step's, its completion
 * record, its outbox messages) are in the open transaction, COMMIT is next; they roll back.
 * `after-commit`: COMMIT succeeded; nothing after it runs in that worker. `after-failure`: the
 * step's final failure was recorded; the worker dies before compensation starts.
 */
export type CrashPoint =
  | {
      readonly kind: 'before-commit' | 'after-commit';
      readonly step: string;
      readonly phase: StepPhase;
    }
  | { readonly kind: 'after-failure'; readonly step: string };

/**
 * A step boundary the crash harness kills the worker at, and the scenario that leads there. Its
 * `name` says both, e.g. `crash after "reserve-stock" committed, before "confirm-order" started`:
 * one Jest test per boundary reads well with `it.each(harness.boundaries())('$name', ...)`.
 */
export interface CrashBoundary {
  /** Unique within a saga: the test's title, and what `harness.run(name)` accepts. */
  readonly name: string;
  readonly crash: CrashPoint;
  /**
   * Compensation scenarios: the step made to fail for good (`StepFault.failForGood`) so that the
   * steps before it are compensated. Undefined for the forward boundaries.
   */
  readonly failingStep?: string;
}

/** What the boundaries (and the harness's checks) read of a saga definition. */
export interface SagaGraph {
  readonly order: readonly string[];
  readonly steps: ReadonlyMap<
    string,
    {
      readonly kind: StepKind;
      readonly dependsOn: readonly string[];
      readonly afterPivot: boolean;
      readonly compensatable: boolean;
    }
  >;
}

/**
 * Every step boundary of a saga, from its graph:
 * - for each step, in order: a crash before its transaction commits, and one after (for a remote
 *   step: the transaction that sends its command);
 * - for each step that can fail before the point of no return (a step before or at a pivot): that
 *   step failing for good, with a crash after its failure is recorded, and a crash before and
 *   after each compensation that failure certainly leads to (its compensatable ancestors, in the
 *   order they are compensated: dependants first).
 * Steps that run beside the failing one may complete and be compensated too; their compensation
 * boundaries come from the failure of a step that depends on them.
 */
export function crashBoundaries(graph: SagaGraph): CrashBoundary[] {
  const boundaries: CrashBoundary[] = [];
  for (const name of graph.order) {
    const step = graph.steps.get(name)!;
    const remote = step.kind === 'remote';
    const next = dependantsOf(graph, name);
    boundaries.push({
      name: `crash before "${name}" committed${remote ? ' its command' : ''}`,
      crash: { kind: 'before-commit', step: name, phase: 'forward' },
    });
    boundaries.push({
      name: remote
        ? `crash after "${name}" committed its command, before its reply`
        : `crash after "${name}" committed, before ${next.length ? `${quoted(next)} started` : 'the saga completed'}`,
      crash: { kind: 'after-commit', step: name, phase: 'forward' },
    });
  }
  for (const failing of graph.order) {
    if (graph.steps.get(failing)!.afterPivot) continue;
    const scenario = `"${failing}" fails for good`;
    boundaries.push({
      name: `${scenario}; crash after its failure was recorded, before compensation started`,
      crash: { kind: 'after-failure', step: failing },
      failingStep: failing,
    });
    const ancestors = ancestorsOf(graph, failing);
    for (const name of [...graph.order].reverse()) {
      const step = graph.steps.get(name)!;
      if (!ancestors.has(name) || !step.compensatable) continue;
      const command = step.kind === 'remote' ? ' its command' : '';
      boundaries.push({
        name: `${scenario}; crash before the compensation of "${name}" committed${command}`,
        crash: { kind: 'before-commit', step: name, phase: 'compensate' },
        failingStep: failing,
      });
      boundaries.push({
        name: `${scenario}; crash after the compensation of "${name}" committed${command}`,
        crash: { kind: 'after-commit', step: name, phase: 'compensate' },
        failingStep: failing,
      });
    }
  }
  return boundaries;
}

/** Steps that list `name` in `dependsOn`, in the saga's order. */
function dependantsOf(graph: SagaGraph, name: string): string[] {
  return graph.order.filter((n) => graph.steps.get(n)!.dependsOn.includes(name));
}

/** Every step `name` depends on, directly or not. */
export function ancestorsOf(graph: SagaGraph, name: string): Set<string> {
  const seen = new Set<string>();
  const visit = (n: string): void => {
    for (const d of graph.steps.get(n)?.dependsOn ?? []) {
      if (seen.has(d)) continue;
      seen.add(d);
      visit(d);
    }
  };
  visit(name);
  return seen;
}

function quoted(names: readonly string[]): string {
  const q = names.map((n) => `"${n}"`);
  return q.length === 1 ? q[0]! : `${q.slice(0, -1).join(', ')} and ${q[q.length - 1]!}`;
}
