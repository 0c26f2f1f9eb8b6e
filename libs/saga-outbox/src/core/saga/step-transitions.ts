/**
 * THE definition of the saga step lifecycle. Every status a store gives a step is one of these
 * transitions: the PostgreSQL store's SQL takes its statuses from here (saga-queries.sql.ts), the
 * in-memory store asks the same table, and the Mermaid diagram in docs/sagas.md is generated from
 * here (a unit test keeps them equal).
 *
 * Two phases. Forward: a step is open while `pending` or `waiting` (its command is out); it ends
 * `completed`, `failed` or `timed_out`. Compensation: a step is open until `compensated` or
 * `compensation_failed`; `compensating` means its compensation command is out. A failed attempt
 * with attempts left changes no status (only the attempt count and the error).
 */
import type { StepFailure, StepPhase, StepStatus } from '../ports/saga-store';

/** Every step status, in the order of the migrations' CHECK constraint. */
export const STEP_STATUSES: readonly StepStatus[] = [
  'pending',
  'waiting',
  'completed',
  'failed',
  'timed_out',
  'compensating',
  'compensated',
  'compensation_failed',
];

/** The statuses the forward phase moves a step through (drawn as one state in the diagram). */
export const FORWARD_STEP_STATUSES: readonly StepStatus[] = [
  'pending',
  'waiting',
  'completed',
  'failed',
  'timed_out',
];

/**
 * Where a phase has not ended yet: it may run (again), record a failed attempt, or end. Past these
 * statuses a phase is over, and running it again does nothing (`already-done`).
 */
export const STEP_PHASE_OPEN: Readonly<Record<StepPhase, readonly StepStatus[]>> = {
  /** Never run, or its command is out (a resend after a reply timeout). */
  forward: ['pending', 'waiting'],
  /**
   * Any forward status, or its compensation command is out. The store does not judge whether a
   * step needs undoing; the runner does (STEP_STATUSES_TO_COMPENSATE).
   */
  compensate: [...FORWARD_STEP_STATUSES, 'compensating'],
};

/**
 * What the runner compensates: steps that took effect, or may have (a remote step whose reply never
 * came, or is still out), and a compensation resumed with its command out.
 */
export const STEP_STATUSES_TO_COMPENSATE: readonly StepStatus[] = [
  'completed',
  'timed_out',
  'waiting',
  'compensating',
];

export interface StepTransition {
  readonly phase: StepPhase;
  readonly from: readonly StepStatus[];
  readonly to: StepStatus;
  /** Who makes it: the phase's own transaction, a failure record, or a participant's reply. */
  readonly by: 'step transaction' | 'failure' | 'reply';
  readonly label: string;
}

export const STEP_TRANSITIONS = {
  /** The step's transaction commits with its result. */
  complete: {
    phase: 'forward',
    from: STEP_PHASE_OPEN.forward,
    to: 'completed',
    by: 'step transaction',
    label: 'step transaction commits',
  },
  /** A remote step's transaction commits with its command (again, after a reply timeout). */
  awaitReply: {
    phase: 'forward',
    from: STEP_PHASE_OPEN.forward,
    to: 'waiting',
    by: 'step transaction',
    label: 'remote: command sent, reply awaited',
  },
  /** The last attempt failed, or with an error retrying cannot fix. */
  fail: {
    phase: 'forward',
    from: STEP_PHASE_OPEN.forward,
    to: 'failed',
    by: 'failure',
    label: 'last attempt failed, or not retryable',
  },
  /** No reply to the last send: the participant may have acted, so the step is compensated. */
  timeOut: {
    phase: 'forward',
    from: STEP_PHASE_OPEN.forward,
    to: 'timed_out',
    by: 'failure',
    label: 'no reply to the last send (outcome unknown)',
  },
  replySucceeded: {
    phase: 'forward',
    from: ['waiting'],
    to: 'completed',
    by: 'reply',
    label: 'success reply',
  },
  replyRejected: {
    phase: 'forward',
    from: ['waiting'],
    to: 'failed',
    by: 'reply',
    label: 'rejection reply',
  },
  /** The compensation's transaction commits. */
  compensate: {
    phase: 'compensate',
    from: STEP_PHASE_OPEN.compensate,
    to: 'compensated',
    by: 'step transaction',
    label: 'compensation commits',
  },
  /** A remote step's compensation commits with its command (again, after a reply timeout). */
  awaitCompensationReply: {
    phase: 'compensate',
    from: STEP_PHASE_OPEN.compensate,
    to: 'compensating',
    by: 'step transaction',
    label: 'remote: compensation command sent, reply awaited',
  },
  /** The last compensation attempt failed (or got no reply), or with an error retrying cannot fix. */
  failCompensation: {
    phase: 'compensate',
    from: STEP_PHASE_OPEN.compensate,
    to: 'compensation_failed',
    by: 'failure',
    label: 'last compensation attempt failed, or not retryable',
  },
  compensationReplySucceeded: {
    phase: 'compensate',
    from: ['compensating'],
    to: 'compensated',
    by: 'reply',
    label: 'success reply',
  },
  compensationReplyRejected: {
    phase: 'compensate',
    from: ['compensating'],
    to: 'compensation_failed',
    by: 'reply',
    label: 'rejection reply',
  },
} as const satisfies Record<string, StepTransition>;

export type StepTransitionName = keyof typeof STEP_TRANSITIONS;

/** The transitions of each phase, by what ends (or parks) it. */
export const STEP_PHASE_TRANSITIONS = {
  forward: {
    done: 'complete',
    awaitReply: 'awaitReply',
    fail: 'fail',
    replySucceeded: 'replySucceeded',
    replyRejected: 'replyRejected',
  },
  compensate: {
    done: 'compensate',
    awaitReply: 'awaitCompensationReply',
    fail: 'failCompensation',
    replySucceeded: 'compensationReplySucceeded',
    replyRejected: 'compensationReplyRejected',
  },
} as const satisfies Record<StepPhase, Record<string, StepTransitionName>>;

/** True when `name` may move a step that is currently `from`. */
export function canStepTransition(name: StepTransitionName, from: StepStatus): boolean {
  const allowed: readonly StepStatus[] = STEP_TRANSITIONS[name].from;
  return allowed.includes(from);
}

/** True while `phase` has not ended for a step in `status` (see STEP_PHASE_OPEN). */
export function stepPhaseOpen(phase: StepPhase, status: StepStatus): boolean {
  return STEP_PHASE_OPEN[phase].includes(status);
}

/** The status a phase's step awaits its reply in: `waiting` (forward) or `compensating`. */
export function awaitingReplyStatus(phase: StepPhase): StepStatus {
  return STEP_TRANSITIONS[STEP_PHASE_TRANSITIONS[phase].awaitReply].to;
}

/**
 * True when `status` ends `phase` in failure: `failed` or `timed_out` (forward),
 * `compensation_failed` (compensation): the `to` of the phase's failure transitions.
 */
export function stepPhaseFailed(phase: StepPhase, status: StepStatus): boolean {
  return (Object.values(STEP_TRANSITIONS) as StepTransition[]).some(
    (t) => t.phase === phase && t.by === 'failure' && t.to === status,
  );
}

/** The transition a recorded failure makes: none while attempts remain (the phase stays open). */
export function stepFailureTransition(failure: StepFailure): StepTransitionName | undefined {
  if (!failure.final) return undefined;
  if (failure.phase === 'forward' && failure.outcomeUnknown) return 'timeOut';
  return STEP_PHASE_TRANSITIONS[failure.phase].fail;
}

/**
 * A Mermaid state diagram of STEP_TRANSITIONS. The forward statuses are drawn as one composite
 * state, `forward`: a transition allowed from every one of them starts there.
 */
export function stepStateDiagram(): string {
  const forward = (Object.values(STEP_TRANSITIONS) as StepTransition[]).filter(
    (t) => t.phase === 'forward',
  );
  const compensate = (Object.values(STEP_TRANSITIONS) as StepTransition[]).filter(
    (t) => t.phase === 'compensate',
  );
  const lines = [
    'stateDiagram-v2',
    '    [*] --> forward: saga started',
    '    state forward {',
    '        [*] --> pending',
  ];
  for (const t of forward) {
    for (const from of t.from) lines.push(`        ${from} --> ${t.to}: ${t.label}`);
  }
  lines.push('    }');
  for (const t of compensate) {
    const fromForward = FORWARD_STEP_STATUSES.every((s) => t.from.includes(s));
    const rest = fromForward ? t.from.filter((s) => !FORWARD_STEP_STATUSES.includes(s)) : t.from;
    if (fromForward) lines.push(`    forward --> ${t.to}: ${t.label}`);
    for (const from of rest) lines.push(`    ${from} --> ${t.to}: ${t.label}`);
  }
  lines.push('    compensated --> [*]');
  lines.push('    compensation_failed --> [*]');
  return lines.join('\n');
}
