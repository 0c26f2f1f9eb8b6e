import type { SagaStatus } from '../../core/ports/saga-store';
import type { ReceivedSagaCommand } from '../../core/saga/saga-command';
import type { CrashBoundary } from './crash-boundaries';
import type { StepActivity, StepCommit } from './run-activity';
import type { StepFault } from './step-faults';

/** One run of the harness: a crash at a boundary (or a fault scenario without one), and its verdict. */
export interface CrashRunReport {
  /** The boundary's name, or the scenario's faults (`no faults` for the plain run). */
  readonly name: string;
  readonly boundary: CrashBoundary | undefined;
  readonly faults: readonly StepFault[];
  /** Undefined when the saga could not even be started. */
  readonly sagaId: string | undefined;
  /** How the saga ended (or where it stood when the run gave up). */
  readonly status: SagaStatus | 'not started';
  /** The saga's stored error (why it compensated or failed), if any. */
  readonly error: string | null;
  /** How the same scenario ends without the crash (boundary runs). */
  readonly expectedStatus: SagaStatus | undefined;
  /** The worker was killed at the boundary (false: the boundary was never reached). */
  readonly crashed: boolean;
  /** Per step: how often it (and its compensation) ran and committed, over both workers. */
  readonly steps: Readonly<Record<string, StepActivity>>;
  /** Step transactions that committed, in order. */
  readonly commits: readonly StepCommit[];
  /** Remote steps' commands the saga sent (committed), as the harness answered them. */
  readonly commands: readonly ReceivedSagaCommand[];
  /** `steps` as one line per step, e.g. `"reserve-stock" ran 2× committed 1×`. */
  readonly activity: readonly string[];
  /** Violated checks and invariants; empty when the run passed. */
  readonly problems: readonly string[];
  /** The workers' last log lines (kept when the run failed). */
  readonly log: readonly string[];
  readonly durationMs: number;
}

/** Every boundary's run (`runAllBoundaries`), and the crash-free runs they were compared with. */
export interface CrashHarnessReport {
  readonly saga: string;
  /** One per boundary, in `boundaries()` order. */
  readonly runs: readonly CrashRunReport[];
  /** The runs without a crash that give each scenario's expected ending. */
  readonly references: readonly CrashRunReport[];
  readonly durationMs: number;
}
