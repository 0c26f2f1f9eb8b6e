/**
 * THE definition of the saga instance lifecycle. Every status change the runner asks a store for
 * (`SagaStore.transition`), parking and the recovery claim are among these transitions; the
 * PostgreSQL store's SQL takes its statuses from here (saga-queries.sql.ts), the in-memory store
 * asks the same table, and the Mermaid diagram in docs/sagas.md is generated from here (a unit test
 * keeps them equal).
 *
 * Every transition is fenced (owner and live lease) except the recovery claim, which takes a saga
 * whose lease ran out, or a parked one whose wake time came, and a parked saga's completion by the
 * reply to its last open step.
 */
import { TERMINAL_SAGA_STATUSES, type SagaStatus } from '../ports/saga-store';

/** Every saga status, in the order of the migrations' CHECK constraint. */
export const SAGA_STATUSES: readonly SagaStatus[] = [
  'running',
  'waiting',
  'compensating',
  'completed',
  'compensated',
  'failed',
];

/** Statuses a saga can still leave (the recovery claim index's predicate). */
export const LIVE_SAGA_STATUSES: readonly SagaStatus[] = SAGA_STATUSES.filter(
  (s) => !TERMINAL_SAGA_STATUSES.includes(s),
);

/** Statuses in which an owner drives the saga under a lease (a `waiting` saga has no owner). */
export const DRIVEN_SAGA_STATUSES: readonly SagaStatus[] = ['running', 'compensating'];

export interface SagaTransition {
  readonly from: readonly SagaStatus[];
  readonly to: SagaStatus;
  readonly label: string;
}

export const SAGA_TRANSITIONS = {
  complete: { from: ['running'], to: 'completed', label: 'every step completed' },
  /** Before any pivot completed, a failure is undone. */
  compensate: {
    from: ['running'],
    to: 'compensating',
    label: 'a step failed for good, or the saga timed out (no pivot completed)',
  },
  /** Past a pivot nothing is undone: an operator takes over. */
  fail: {
    from: ['running'],
    to: 'failed',
    label: 'a step failed for good, or the saga timed out, past a pivot',
  },
  /** No owner until a reply or a deadline. A compensating saga parks without changing status. */
  park: { from: ['running'], to: 'waiting', label: 'parked: every open step awaits a reply' },
  /** The recovery claim (not fenced): a reply woke it, or its earliest deadline came. */
  wake: { from: ['waiting'], to: 'running', label: 'reply or deadline: claimed by recovery' },
  /**
   * Not fenced either (a parked saga has no owner): the success reply to its last open step, in
   * the reply's transaction, before the saga deadline (SagaStore.applyReply).
   */
  completeByReply: {
    from: ['waiting'],
    to: 'completed',
    label: 'success reply to the last open step (before the deadline)',
  },
  compensated: {
    from: ['compensating'],
    to: 'compensated',
    label: 'every step that took effect undone',
  },
  /** A compensation failed for good: parked as failed, for an operator. */
  failCompensation: {
    from: ['compensating'],
    to: 'failed',
    label: 'a compensation failed for good',
  },
} as const satisfies Record<string, SagaTransition>;

export type SagaTransitionName = keyof typeof SAGA_TRANSITIONS;

/** True when `name` may move a saga that is currently `from`. */
export function canSagaTransition(name: SagaTransitionName, from: SagaStatus): boolean {
  const allowed: readonly SagaStatus[] = SAGA_TRANSITIONS[name].from;
  return allowed.includes(from);
}

/** A Mermaid state diagram of SAGA_TRANSITIONS. */
export function sagaStateDiagram(): string {
  const lines = ['stateDiagram-v2', '    [*] --> running: start()'];
  for (const t of Object.values(SAGA_TRANSITIONS) as SagaTransition[]) {
    for (const from of t.from) lines.push(`    ${from} --> ${t.to}: ${t.label}`);
  }
  for (const s of TERMINAL_SAGA_STATUSES) lines.push(`    ${s} --> [*]`);
  return lines.join('\n');
}
