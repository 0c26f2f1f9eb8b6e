/**
 * What saga retention needs from the saga state store: leader-only deletion of old terminal sagas.
 * A port of its own, so a SagaStore implementation need not provide it.
 */
export interface SagaRetentionStore {
  /**
   * If this process wins the saga maintenance lock (try, never wait), deletes up to `limit`
   * terminal sagas (`completed`, `compensated`, `failed`) whose last transition is older than
   * `olderThanMs`, with their steps; returns how many sagas went. Null: another process holds the
   * lock. Running, waiting and compensating sagas are never deleted, whatever their age.
   */
  deleteTerminalSagaBatch(olderThanMs: number, limit: number): Promise<number | null>;

  /** Optional: reclaims the space of deleted rows now (PostgreSQL: `VACUUM`). */
  vacuum?(): Promise<void>;
}
