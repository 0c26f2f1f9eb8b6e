import { performance } from 'node:perf_hooks';
import type {
  ClaimByIdsResult,
  DeadLetterFilter,
  DeadLetterPage,
  OutboxFailure,
  OutboxMessage,
  OutboxStats,
  OutboxStore,
  OutboxWakeSubscription,
} from '@sage/saga-outbox';
import { SampleBuffer } from './stats';

/**
 * A claimed message as `OutboxStore.claim` returns it. The library does not export the name
 * `ClaimedOutboxMessage` from its public entry points (yet), so it is derived from the port.
 */
type ClaimedOutboxMessage = Awaited<ReturnType<OutboxStore['claim']>>[number];

type Selector = { ids: readonly string[] } | { filter: DeadLetterFilter; limit: number };

/**
 * An OutboxStore that times the calls the benchmarks compare with the raw side (claim, mark-sent,
 * retention delete) as the relay sees them — pool checkout, TypeORM and row mapping included —
 * and passes everything through unchanged. One `performance.now()` pair per call.
 */
export class TimedOutboxStore implements OutboxStore {
  readonly claimMs = new SampleBuffer();
  readonly markMs = new SampleBuffer();
  readonly deleteMs = new SampleBuffer();
  emptyClaims = 0;

  constructor(private readonly inner: OutboxStore) {}

  async claim(claimToken: string, limit: number, leaseMs: number): Promise<ClaimedOutboxMessage[]> {
    const t0 = performance.now();
    const rows = await this.inner.claim(claimToken, limit, leaseMs);
    this.claimMs.push(performance.now() - t0);
    if (!rows.length) this.emptyClaims++;
    return rows;
  }

  /** The optimistic sender's claim: passed through, not timed (the relay never calls it). */
  claimByIds(
    claimToken: string,
    ids: readonly string[],
    leaseMs: number,
  ): Promise<ClaimByIdsResult> {
    return this.inner.claimByIds(claimToken, ids, leaseMs);
  }

  async markSent(claimToken: string, ids: readonly string[]): Promise<string[]> {
    const t0 = performance.now();
    const marked = await this.inner.markSent(claimToken, ids);
    this.markMs.push(performance.now() - t0);
    return marked;
  }

  async deleteSentBatch(olderThanMs: number, limit: number): Promise<number | null> {
    const t0 = performance.now();
    const deleted = await this.inner.deleteSentBatch(olderThanMs, limit);
    this.deleteMs.push(performance.now() - t0);
    return deleted;
  }

  markFailed(claimToken: string, failures: readonly OutboxFailure[]): Promise<string[]> {
    return this.inner.markFailed(claimToken, failures);
  }

  release(claimToken: string, ids: readonly string[]): Promise<string[]> {
    return this.inner.release(claimToken, ids);
  }

  reapExpired(limit: number): Promise<number> {
    return this.inner.reapExpired(limit);
  }

  listen(
    onNotify: () => void,
    onError: (error: unknown) => void,
  ): Promise<OutboxWakeSubscription | null> {
    return this.inner.listen(onNotify, onError);
  }

  get(id: string): Promise<OutboxMessage | undefined> {
    return this.inner.get(id);
  }

  listDeadLetters(
    filter: DeadLetterFilter,
    limit: number,
    after?: string,
  ): Promise<DeadLetterPage> {
    return this.inner.listDeadLetters(filter, limit, after);
  }

  replayDeadLetters(selector: Selector): Promise<string[]> {
    return this.inner.replayDeadLetters(selector);
  }

  discardDeadLetters(selector: Selector): Promise<string[]> {
    return this.inner.discardDeadLetters(selector);
  }

  stats(): Promise<OutboxStats> {
    return this.inner.stats();
  }
}
