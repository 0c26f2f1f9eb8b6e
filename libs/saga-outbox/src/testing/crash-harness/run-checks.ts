import {
  TERMINAL_SAGA_STATUSES,
  type SagaRecord,
  type SagaStatus,
} from '../../core/ports/saga-store';
import { ancestorsOf, type SagaGraph as Graph } from './crash-boundaries';
import type { StepCommit } from './run-activity';

/**
 * What the harness checks after every run, before the user's invariants: the saga ended, as it
 * ends without the crash; compensations ran dependants first, each only for a step that had
 * committed; no local step phase committed twice; nothing left to undo in a compensated saga.
 * Returns one line per violation.
 */
export function checkRun(p: {
  graph: Graph;
  saga: SagaRecord;
  /** How the same scenario ends without a crash; undefined for that run itself. */
  expectedStatus: SagaStatus | undefined;
  commits: readonly StepCommit[];
}): string[] {
  const problems: string[] = [];
  const { saga } = p;
  if (!TERMINAL_SAGA_STATUSES.includes(saga.status))
    problems.push(`the saga did not end: it is still "${saga.status}"`);
  else if (p.expectedStatus !== undefined && saga.status !== p.expectedStatus)
    problems.push(
      `the saga ended "${saga.status}", but "${p.expectedStatus}" without the crash${saga.error ? ` (its error: ${saga.error})` : ''}`,
    );
  problems.push(...compensationOrder(p.graph, p.commits));
  problems.push(...localCommitsOnce(p.graph, p.commits));
  if (saga.status === 'compensated') {
    for (const step of saga.steps) {
      const def = p.graph.steps.get(step.name);
      if (def?.compensatable && (step.status === 'completed' || step.status === 'timed_out'))
        problems.push(
          `the saga is compensated, but step "${step.name}" is still "${step.status}" (never undone)`,
        );
    }
  }
  return problems;
}

/**
 * Compensations run in reverse dependency order (a step's compensation before those of the steps
 * it depends on), each for a step that committed. Independent steps may be undone in any order.
 */
function compensationOrder(graph: Graph, commits: readonly StepCommit[]): string[] {
  const problems: string[] = [];
  const first = new Map<string, number>();
  commits.forEach((c, i) => {
    if (c.phase === 'compensate' && !first.has(c.step)) first.set(c.step, i);
  });
  for (const [step, at] of first) {
    if (!commits.some((c, i) => c.step === step && c.phase === 'forward' && i < at))
      problems.push(`the compensation of "${step}" committed, but "${step}" itself never did`);
    for (const [dependant, dependantAt] of first) {
      if (ancestorsOf(graph, dependant).has(step) && at < dependantAt)
        problems.push(
          `compensations out of order: "${step}" was compensated before "${dependant}", which depends on it (dependants are undone first)`,
        );
    }
  }
  return problems;
}

/** A local phase's transaction (no command awaiting a reply) commits once at most. */
function localCommitsOnce(graph: Graph, commits: readonly StepCommit[]): string[] {
  const counts = new Map<string, number>();
  for (const c of commits) {
    if (c.awaitingReply) continue;
    const key = `${c.phase}\u0000${c.step}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const problems: string[] = [];
  for (const [key, n] of counts) {
    if (n <= 1) continue;
    const [phase, step] = key.split('\u0000') as [string, string];
    if (!graph.steps.has(step)) continue;
    problems.push(
      `${phase === 'forward' ? `"${step}"` : `the compensation of "${step}"`} committed ${n} times (a local step phase commits once)`,
    );
  }
  return problems;
}
