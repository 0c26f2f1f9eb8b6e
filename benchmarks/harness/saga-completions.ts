import { performance } from 'node:perf_hooks';
import type { SagaEvent } from '@sage/saga-outbox';

/**
 * Resolves a started saga's waiter when its terminal event fires (no polling), with the instant it
 * fired. Events can beat `start()`'s own resolution, so early outcomes are parked. Also counts
 * recovery events (`saga.resumed`, `saga.interrupted`): a clean run has none.
 */
export class SagaCompletions {
  private readonly pending = new Map<
    string,
    { resolve: (at: number) => void; reject: (e: Error) => void }
  >();
  private readonly early = new Map<string, { at: number; error?: string }>();
  resumed = 0;
  interrupted = 0;

  readonly listener = (event: SagaEvent): void => {
    switch (event.type) {
      case 'saga.completed':
        return this.settle(event.sagaId, performance.now());
      case 'saga.failed':
        return this.settle(event.sagaId, performance.now(), `saga failed: ${event.reason}`);
      case 'saga.compensated':
        return this.settle(event.sagaId, performance.now(), 'saga compensated');
      case 'saga.resumed':
        this.resumed++;
        return;
      case 'saga.interrupted':
        this.interrupted++;
        return;
      default:
        return;
    }
  };

  wait(sagaId: string): Promise<number> {
    const early = this.early.get(sagaId);
    if (early) {
      this.early.delete(sagaId);
      return early.error ? Promise.reject(new Error(early.error)) : Promise.resolve(early.at);
    }
    return new Promise((resolve, reject) => this.pending.set(sagaId, { resolve, reject }));
  }

  /** Settles `sagaId` at `at` (rejected with `error` when set); parked if nobody waits yet. */
  settle(sagaId: string, at: number, error?: string): void {
    const waiter = this.pending.get(sagaId);
    if (!waiter) {
      this.early.set(sagaId, { at, error });
      return;
    }
    this.pending.delete(sagaId);
    if (error) waiter.reject(new Error(error));
    else waiter.resolve(at);
  }
}
