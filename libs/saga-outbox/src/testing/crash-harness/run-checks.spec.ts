import { pendingStepRecord, type SagaRecord, type StepRecord } from '../../core/ports/saga-store';
import { defineSaga } from '../../core/saga/saga-builder';
import type { StepCommit } from './run-activity';
import { checkRun } from './run-checks';

const noop = (): undefined => undefined;
const graph = defineSaga('three')
  .step('a', { run: noop, compensate: noop })
  .step('b', { dependsOn: ['a'], run: noop, compensate: noop })
  .step('c', { dependsOn: ['b'], run: noop, compensate: noop })
  .step('side', { run: noop, compensate: noop })
  .build();

function saga(
  status: SagaRecord['status'],
  steps: Partial<Record<string, StepRecord['status']>> = {},
): SagaRecord {
  return {
    id: '01900000-0000-7000-8000-000000000000',
    name: 'three',
    version: graph.version,
    status,
    input: null,
    idempotencyKey: null,
    owner: null,
    leaseUntil: null,
    deadlineAt: null,
    error: null,
    failedStep: null,
    wakeAt: null,
    wakeSeq: 0,
    createdAt: new Date(0),
    updatedAt: new Date(0),
    steps: graph.order.map((n) => ({ ...pendingStepRecord(n), status: steps[n] ?? 'pending' })),
  };
}

const commit = (step: string, phase: StepCommit['phase'], awaitingReply = false): StepCommit => ({
  step,
  phase,
  attempt: 1,
  awaitingReply,
  worker: 1,
});

describe('checkRun', () => {
  it('passes a run whose compensations undid dependants first', () => {
    const commits = [
      commit('a', 'forward'),
      commit('side', 'forward'),
      commit('b', 'forward'),
      commit('b', 'compensate'),
      commit('side', 'compensate'),
      commit('a', 'compensate'),
    ];
    expect(
      checkRun({ graph, saga: saga('compensated'), expectedStatus: 'compensated', commits }),
    ).toEqual([]);
  });

  it('reports compensations out of dependency order (independent steps may come in any order)', () => {
    const commits = [
      commit('a', 'forward'),
      commit('b', 'forward'),
      commit('side', 'forward'),
      commit('side', 'compensate'),
      commit('a', 'compensate'),
      commit('b', 'compensate'),
    ];
    expect(
      checkRun({ graph, saga: saga('compensated'), expectedStatus: undefined, commits }),
    ).toEqual([
      'compensations out of order: "a" was compensated before "b", which depends on it (dependants are undone first)',
    ]);
  });

  it('reports a compensation of a step that never committed, and a local phase committed twice', () => {
    const commits = [
      commit('a', 'forward'),
      commit('a', 'forward'),
      commit('b', 'compensate'),
      // A remote phase commits once per command sent: not a violation.
      commit('c', 'forward', true),
      commit('c', 'forward', true),
    ];
    expect(
      checkRun({ graph, saga: saga('completed'), expectedStatus: 'completed', commits }),
    ).toEqual([
      'the compensation of "b" committed, but "b" itself never did',
      '"a" committed 2 times (a local step phase commits once)',
    ]);
  });

  it('reports a saga that did not end, or ended otherwise than without the crash, or left a step undone', () => {
    expect(
      checkRun({ graph, saga: saga('running'), expectedStatus: 'completed', commits: [] }),
    ).toEqual(['the saga did not end: it is still "running"']);
    expect(
      checkRun({
        graph,
        saga: { ...saga('failed'), error: 'boom' },
        expectedStatus: 'compensated',
        commits: [],
      }),
    ).toEqual(['the saga ended "failed", but "compensated" without the crash (its error: boom)']);
    expect(
      checkRun({
        graph,
        saga: saga('compensated', { a: 'completed' }),
        expectedStatus: 'compensated',
        commits: [],
      }),
    ).toEqual(['the saga is compensated, but step "a" is still "completed" (never undone)']);
  });
});
