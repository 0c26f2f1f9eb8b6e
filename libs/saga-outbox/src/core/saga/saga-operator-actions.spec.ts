import {
  pendingStepRecord,
  type SagaRecord,
  type SagaStatus,
  type StepStatus,
} from '../ports/saga-store';
import {
  planSagaCompensation,
  planSagaRetry,
  SagaActionRefusedError,
} from './saga-operator-actions';

const NOW = new Date('2026-12-07T10:00:00Z');

function saga(
  status: SagaStatus,
  steps: Record<string, StepStatus>,
  extra: Partial<SagaRecord> = {},
): SagaRecord {
  return {
    id: '0193a1e2-7c4b-7f00-8a1b-2f6c1d0e9a11',
    name: 'order',
    version: 'v1',
    status,
    input: {},
    idempotencyKey: null,
    owner: null,
    leaseUntil: null,
    deadlineAt: null,
    error: null,
    failedStep: null,
    wakeAt: null,
    wakeSeq: 0,
    createdAt: NOW,
    updatedAt: NOW,
    steps: Object.entries(steps).map(([name, s]) => ({
      ...pendingStepRecord(name),
      status: s,
      attempts: s === 'pending' ? 0 : 3,
    })),
    ...extra,
  };
}

const refusal = (fn: () => unknown): SagaActionRefusedError => {
  try {
    fn();
  } catch (error) {
    if (error instanceof SagaActionRefusedError) return error;
    throw error;
  }
  throw new Error('not refused');
};

describe('retry', () => {
  it('puts the steps that failed going forward back, and lifts a deadline that has passed', () => {
    const plan = planSagaRetry(
      saga(
        'failed',
        {
          reserve: 'completed',
          ship: 'completed',
          notify: 'failed',
          ping: 'timed_out',
          z: 'pending',
        },
        { deadlineAt: new Date(NOW.getTime() - 1) },
      ),
      NOW,
    );
    expect(plan).toMatchObject({
      from: 'failed',
      to: 'running',
      retrySteps: ['notify', 'ping'],
      liftsDeadline: true,
    });
    const ahead = saga('failed', { notify: 'failed' }, { deadlineAt: new Date(NOW.getTime() + 1) });
    expect(planSagaRetry(ahead, NOW).liftsDeadline).toBe(false);
  });

  it.each<[SagaStatus, string]>([
    ['running', 'it is running; retry is for a saga that ended failed'],
    ['waiting', 'it is waiting; retry is for a saga that ended failed'],
    ['compensating', 'it is compensating; retry is for a saga that ended failed'],
    ['completed', 'it is completed; retry is only for a failed saga'],
    ['compensated', 'it is compensated; retry is only for a failed saga'],
  ])('refuses a %s saga, naming its status', (status, text) => {
    const error = refusal(() => planSagaRetry(saga(status, { a: 'completed' }), NOW));
    expect(error.code).toBe('SAGA_ACTION_REFUSED');
    expect(error.status).toBe(status);
    expect(error.message).toContain(text);
  });

  it('refuses a saga whose compensation failed, naming the step', () => {
    const error = refusal(() =>
      planSagaRetry(
        saga('failed', { a: 'compensated', b: 'compensation_failed', c: 'failed' }),
        NOW,
      ),
    );
    expect(error.message).toContain(
      'it failed while compensating (compensation of step "b" failed)',
    );
  });
});

describe('compensate', () => {
  it('undoes what took effect, in reverse order (the definition order when known)', () => {
    const stuck = saga('running', { a: 'completed', b: 'completed', c: 'waiting', d: 'pending' });
    expect(planSagaCompensation(stuck).stepsToUndo).toEqual(['c', 'b', 'a']);
    expect(
      planSagaCompensation(stuck, { version: 'v1', pivots: [], reverseOrder: ['d', 'b', 'c', 'a'] })
        .stepsToUndo,
    ).toEqual(['b', 'c', 'a']);
    expect(planSagaCompensation(saga('waiting', { a: 'completed' }))).toMatchObject({
      from: 'waiting',
      to: 'compensating',
    });
  });

  it('refuses past a completed pivot, naming it, when the definition is known (at its version)', () => {
    const past = saga('running', { a: 'completed', ship: 'completed', c: 'pending' });
    const def = { version: 'v1', pivots: ['ship'], reverseOrder: ['c', 'ship', 'a'] };
    expect(refusal(() => planSagaCompensation(past, def)).message).toContain(
      'its pivot step "ship" completed',
    );
    // Another version's definition says nothing about this saga's steps.
    expect(planSagaCompensation(past, { ...def, version: 'v2' }).to).toBe('compensating');
  });

  it.each<[SagaStatus, Record<string, StepStatus>, string]>([
    ['failed', { a: 'completed', b: 'failed' }, 'a saga fails going forward only past its pivot'],
    ['failed', { a: 'compensation_failed' }, 'its compensation already ran and failed'],
    ['compensating', { a: 'completed' }, 'it is compensating already'],
    ['completed', { a: 'completed' }, 'it is completed; it has ended'],
  ])('refuses a %s saga', (status, steps, text) => {
    expect(refusal(() => planSagaCompensation(saga(status, steps))).message).toContain(text);
  });
});
