import type { SagaRetentionStore } from '../ports/saga-retention-store';
import { RetentionLoop, type RetentionTuning } from '../retention-loop';

/** Default: terminal sagas are kept 30 days after their last transition. */
export const DEFAULT_SAGA_RETENTION_MS = 30 * 24 * 3_600_000;

export interface SagaRetentionOptions extends RetentionTuning {
  store: SagaRetentionStore;
  /**
   * How long a terminal saga (completed, compensated, failed) is kept after its last transition,
   * with its steps (default 30 days). Keep it longer than any idempotency key is reused (a key whose
   * saga was deleted starts a new saga) and than operators need to look at failed sagas.
   */
  retentionMs?: number;
}

/**
 * Keeps the saga tables bounded: deletes terminal sagas older than the retention period with their
 * steps, in bounded batches, on one process at a time (the saga maintenance advisory lock; the
 * others skip). Running, waiting and compensating sagas are never deleted, whatever their age.
 */
export class SagaRetention extends RetentionLoop {
  constructor(options: SagaRetentionOptions) {
    const { store } = options;
    super(
      {
        name: 'saga-retention',
        optionPrefix: 'saga.retention',
        defaultRetentionMs: DEFAULT_SAGA_RETENTION_MS,
      },
      (olderThanMs, limit) => store.deleteTerminalSagaBatch(olderThanMs, limit),
      options,
      store.vacuum ? () => store.vacuum!() : undefined,
    );
  }
}
