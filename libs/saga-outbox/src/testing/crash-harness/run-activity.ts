import type { StepPhase } from '../../core/ports/saga-store';
import type {
  StepCommitPoint,
  StepTransactionPoint,
} from '../../persistence/postgres/step-transaction-probe';

/** How often one step phase ran and committed in a run, across both workers. */
export interface StepPhaseActivity {
  /** Attempts whose transaction ran the step's code (or the compensation's). */
  ran: number;
  /** Those that committed. A local phase commits at most once; a remote one once per command sent. */
  committed: number;
}

/** What a step did in a run: its forward action and its compensation. */
export interface StepActivity {
  readonly forward: StepPhaseActivity;
  readonly compensate: StepPhaseActivity;
}

/** A step transaction that committed, in commit order. */
export interface StepCommit {
  readonly step: string;
  readonly phase: StepPhase;
  readonly attempt: number;
  /** A remote phase's transaction: it sent the command, the reply completes the phase. */
  readonly awaitingReply: boolean;
  /** 1: the worker that started the saga; 2: the one that recovered it. */
  readonly worker: number;
}

/** Everything a run's step transactions did, as the workers' probes saw it. */
export class RunActivity {
  readonly steps: Record<string, StepActivity> = {};
  readonly commits: StepCommit[] = [];

  constructor(stepNames: readonly string[]) {
    for (const name of stepNames)
      this.steps[name] = {
        forward: { ran: 0, committed: 0 },
        compensate: { ran: 0, committed: 0 },
      };
  }

  ran(point: StepTransactionPoint): void {
    const activity = this.steps[point.step];
    if (activity) activity[point.phase].ran++;
  }

  committed(point: StepCommitPoint, worker: number): void {
    const activity = this.steps[point.step];
    if (activity) activity[point.phase].committed++;
    this.commits.push({
      step: point.step,
      phase: point.phase,
      attempt: point.attempt,
      awaitingReply: point.awaitingReply,
      worker,
    });
  }

  /** `reserve-stock ran 2× committed 1×; its compensation ran 1× committed 1×` per step, one line each. */
  describe(): string[] {
    return Object.entries(this.steps).map(([name, a]) => {
      const forward = `"${name}" ran ${a.forward.ran}× committed ${a.forward.committed}×`;
      const back = a.compensate.ran
        ? `; its compensation ran ${a.compensate.ran}× committed ${a.compensate.committed}×`
        : '';
      return forward + back;
    });
  }
}
