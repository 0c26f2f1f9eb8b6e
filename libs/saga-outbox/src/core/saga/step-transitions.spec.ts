import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  StepFailure,
  TERMINAL_SAGA_STATUSES,
  type SagaStatus,
  type StepPhase,
  type StepStatus,
} from '../ports/saga-store';
import {
  DRIVEN_SAGA_STATUSES,
  LIVE_SAGA_STATUSES,
  SAGA_STATUSES,
  SAGA_TRANSITIONS,
  canSagaTransition,
  sagaStateDiagram,
} from './saga-transitions';
import {
  FORWARD_STEP_STATUSES,
  STEP_PHASE_TRANSITIONS,
  STEP_STATUSES,
  STEP_STATUSES_TO_COMPENSATE,
  STEP_TRANSITIONS,
  awaitingReplyStatus,
  canStepTransition,
  stepFailureTransition,
  stepPhaseFailed,
  stepPhaseOpen,
  stepStateDiagram,
} from './step-transitions';

const ROOT = join(__dirname, '../../../../..');
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
const mermaid = (diagram: string): string => ['```mermaid', diagram, '```'].join('\n');

/** The statuses a CHECK constraint in migrations/schema.sql allows, in its order. */
function checkedStatuses(constraint: string): string[] {
  const line = read('migrations/schema.sql')
    .split('\n')
    .find((l) => l.includes(`CONSTRAINT ${constraint} CHECK`));
  if (!line) throw new Error(`no ${constraint} in migrations/schema.sql`);
  return [...line.matchAll(/'([a-z_]+)'::text/g)].map((m) => m[1]!);
}

const PHASES: StepPhase[] = ['forward', 'compensate'];

describe('step state transitions', () => {
  it('docs/sagas.md shows exactly the diagrams generated from STEP_TRANSITIONS and SAGA_TRANSITIONS', () => {
    const doc = read('docs/sagas.md');
    expect(doc).toContain(mermaid(stepStateDiagram()));
    expect(doc).toContain(mermaid(sagaStateDiagram()));
  });

  it('knows every status the schema allows, and only those', () => {
    expect([...STEP_STATUSES]).toEqual(checkedStatuses('saga_step_status_check'));
    expect([...SAGA_STATUSES]).toEqual(checkedStatuses('saga_instance_status_check'));
  });

  it('reaches every step status; the forward phase stays among the forward statuses', () => {
    const reachable = new Set<StepStatus>([
      'pending',
      ...Object.values(STEP_TRANSITIONS).map((t) => t.to),
    ]);
    expect([...reachable].sort()).toEqual([...STEP_STATUSES].sort());
    for (const t of Object.values(STEP_TRANSITIONS)) {
      const inForward = (s: StepStatus) => FORWARD_STEP_STATUSES.includes(s);
      if (t.phase === 'forward') expect([...t.from, t.to].every(inForward)).toBe(true);
      else expect(inForward(t.to)).toBe(false);
    }
  });

  it('moves a step only while its phase is open; a reply only from the awaiting status', () => {
    for (const t of Object.values(STEP_TRANSITIONS)) {
      for (const from of t.from) expect(stepPhaseOpen(t.phase, from)).toBe(true);
    }
    for (const phase of PHASES) {
      const { replySucceeded, replyRejected, awaitReply } = STEP_PHASE_TRANSITIONS[phase];
      // The SQL applying a reply guards on one list for both outcomes.
      expect(STEP_TRANSITIONS[replySucceeded].from).toEqual([awaitingReplyStatus(phase)]);
      expect(STEP_TRANSITIONS[replyRejected].from).toEqual([awaitingReplyStatus(phase)]);
      expect(STEP_TRANSITIONS[awaitReply].to).toBe(awaitingReplyStatus(phase));
    }
    expect(canStepTransition('replySucceeded', 'waiting')).toBe(true);
    expect(canStepTransition('replySucceeded', 'pending')).toBe(false);
    expect(canStepTransition('compensationReplyRejected', 'compensating')).toBe(true);
  });

  it('ends each phase where SagaStore.runStepTransaction says it does', () => {
    // Forward is over once `completed`, `failed`, `timed_out` or any compensation status;
    // compensation once `compensated` or `compensation_failed`.
    const forwardOver: StepStatus[] = [
      'completed',
      'failed',
      'timed_out',
      'compensating',
      'compensated',
      'compensation_failed',
    ];
    for (const s of STEP_STATUSES) {
      expect(stepPhaseOpen('forward', s)).toBe(!forwardOver.includes(s));
      expect(stepPhaseOpen('compensate', s)).toBe(
        s !== 'compensated' && s !== 'compensation_failed',
      );
    }
    expect(STEP_STATUSES.filter((s) => stepPhaseFailed('forward', s))).toEqual([
      'failed',
      'timed_out',
    ]);
    expect(STEP_STATUSES.filter((s) => stepPhaseFailed('compensate', s))).toEqual([
      'compensation_failed',
    ]);
  });

  it('the store accepts a compensation of every step the runner compensates', () => {
    for (const s of STEP_STATUSES_TO_COMPENSATE) expect(stepPhaseOpen('compensate', s)).toBe(true);
    expect(STEP_STATUSES_TO_COMPENSATE).not.toContain('pending');
    expect(STEP_STATUSES_TO_COMPENSATE).not.toContain('failed');
  });

  it('a recorded failure makes its transition only when final; no reply to the last send is timed_out', () => {
    expect(stepFailureTransition(StepFailure.retryable('a', 'forward', 1, 'x'))).toBeUndefined();
    expect(stepFailureTransition(StepFailure.retryable('a', 'compensate', 1, 'x'))).toBeUndefined();
    expect(stepFailureTransition(StepFailure.final('a', 'forward', 3, 'x'))).toBe('fail');
    expect(stepFailureTransition(StepFailure.unanswered('a', 'forward', 3, 'x'))).toBe('timeOut');
    expect(stepFailureTransition(StepFailure.final('a', 'compensate', 3, 'x'))).toBe(
      'failCompensation',
    );
    // A compensation's silence is its failure: nothing is "unknown" about an undo that never answered.
    expect(stepFailureTransition(StepFailure.unanswered('a', 'compensate', 3, 'x'))).toBe(
      'failCompensation',
    );
  });
});

describe('saga state transitions', () => {
  it('reaches every status; terminal statuses have no way out', () => {
    const reachable = new Set<SagaStatus>([
      'running',
      ...Object.values(SAGA_TRANSITIONS).map((t) => t.to),
    ]);
    expect([...reachable].sort()).toEqual([...SAGA_STATUSES].sort());
    for (const t of Object.values(SAGA_TRANSITIONS)) {
      for (const from of t.from) expect(TERMINAL_SAGA_STATUSES).not.toContain(from);
    }
  });

  it('live statuses are the non-terminal ones; an owner drives all of them but a parked saga', () => {
    expect([...LIVE_SAGA_STATUSES]).toEqual(['running', 'waiting', 'compensating']);
    expect([...DRIVEN_SAGA_STATUSES]).toEqual(
      LIVE_SAGA_STATUSES.filter((s) => !canSagaTransition('wake', s)),
    );
    expect(canSagaTransition('park', 'running')).toBe(true);
    expect(canSagaTransition('park', 'compensating')).toBe(false);
    expect(canSagaTransition('compensate', 'waiting')).toBe(false);
  });
});
