import type { DataSource } from 'typeorm';
import type { StepPhase } from '../../core/ports/saga-store';

/**
 * The crash harness's seam in PostgresSagaStore (internal: exported from no entry point). The
 * harness (testing/crash-harness) gives each worker it starts a DataSource of its own and probes
 * the step transactions run on it: to stop the worker at the edge of a commit, and to make a step's
 * attempt fail or overrun its timeout. A DataSource nobody probes (every production one) pays one
 * WeakMap lookup per step transaction.
 */
export interface StepTransactionPoint {
  readonly sagaId: string;
  readonly step: string;
  readonly phase: StepPhase;
  readonly attempt: number;
}

export interface StepCommitPoint extends StepTransactionPoint {
  /** A remote phase: the transaction sends the command and leaves the step awaiting its reply. */
  readonly awaitingReply: boolean;
  /** The transaction also completes the saga (its last step). */
  readonly completesSaga: boolean;
}

export interface StepTransactionProbe {
  /**
   * Runs the attempt's body (the step's code and the writes Sage adds to its transaction), once
   * the step is locked and still open. What it throws is the attempt's failure, as if the step
   * threw it.
   */
  body?<T>(point: StepTransactionPoint, run: () => Promise<T>): Promise<T>;
  /** The body's writes and the step's record are in the open transaction; COMMIT is next. */
  beforeCommit?(point: StepCommitPoint): void;
  /** COMMIT succeeded. */
  afterCommit?(point: StepCommitPoint): void;
}

const probes = new WeakMap<DataSource, StepTransactionProbe>();

/**
 * Probes the step transactions PostgresSagaStore runs on `dataSource` until the returned function
 * is called. What `beforeCommit` / `afterCommit` throw fails the store's COMMIT (the worker then
 * stops driving the saga, as on a lost connection).
 */
export function probeStepTransactions(
  dataSource: DataSource,
  probe: StepTransactionProbe,
): () => void {
  probes.set(dataSource, probe);
  return () => {
    if (probes.get(dataSource) === probe) probes.delete(dataSource);
  };
}

/** The probe on `dataSource`, if any. */
export function stepTransactionProbe(dataSource: DataSource): StepTransactionProbe | undefined {
  return probes.get(dataSource);
}
