import type { JsonValue } from '../core/json';
import { systemClock, type Clock } from '../core/ports/clock';
import type {
  InboxDeadLetterPage,
  InboxEntry,
  InboxFailure,
  InboxFailureOutcome,
  InboxFailureRecord,
  InboxKey,
  InboxStore,
} from '../core/ports/inbox-store';
import { InMemoryTx } from './in-memory-saga-store';

/** Where the in-memory inbox store can be made to fail (fault injection for unit tests). */
export type InMemoryInboxFaultPoint = 'markProcessed' | 'commit' | 'recordFailure';

/**
 * The consumer inbox in memory, with the PostgreSQL store's semantics: a transaction's inbox row
 * and its `onCommit` effects apply together at commit and not at all on rollback; a second
 * transaction recording the same key waits for the first to end (the primary key's row lock),
 * then sees a duplicate if it committed. Handlers register their effects on the `InMemoryTx`
 * they get (`tx.onCommit(() => effects.push(...))`), so tests count effects as with a database.
 */
export class InMemoryInboxStore implements InboxStore<InMemoryTx> {
  private readonly entries = new Map<string, InboxEntry>();
  private readonly failures = new Map<string, InboxFailureRecord>();
  /** Keys recorded by a transaction still open: resolved when it commits or rolls back. */
  private readonly uncommitted = new Map<string, Promise<void>>();
  /** Per open transaction: the keys it recorded and how to release their locks. */
  private readonly open = new WeakMap<InMemoryTx, { keys: InboxKey[]; releases: (() => void)[] }>();
  private fault: ((point: InMemoryInboxFaultPoint, key: InboxKey) => Error | undefined) | undefined;

  constructor(private readonly clock: Clock = systemClock) {}

  /** Makes an operation throw the returned error (undefined: proceed normally). */
  setFault(
    fault: ((point: InMemoryInboxFaultPoint, key: InboxKey) => Error | undefined) | undefined,
  ): void {
    this.fault = fault;
  }

  async transaction<T>(body: (tx: InMemoryTx) => Promise<T>): Promise<T> {
    const tx = new InMemoryTx();
    const state = { keys: [] as InboxKey[], releases: [] as (() => void)[] };
    this.open.set(tx, state);
    try {
      const value = await body(tx);
      for (const key of state.keys) this.throwFault('commit', key);
      tx.commit();
      return value;
    } finally {
      // After commit() applied the rows: a waiter released here sees them.
      for (const release of state.releases) release();
      this.open.delete(tx);
    }
  }

  async markProcessed(tx: InMemoryTx, key: InboxKey): Promise<number | null> {
    const k = keyOf(key);
    this.throwFault('markProcessed', key);
    const state = this.open.get(tx);
    if (!state) throw new Error('InMemoryInboxStore.markProcessed: tx is not an open transaction');
    // This transaction recorded the key already (PostgreSQL: ON CONFLICT with its own row): a
    // duplicate, never a wait on itself.
    if (state.keys.some((held) => keyOf(held) === k)) return null;
    for (;;) {
      if (this.entries.has(k)) return null;
      const open = this.uncommitted.get(k);
      if (!open) break;
      await open; // another transaction holds the key: wait for it to end, then look again
    }
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    this.uncommitted.set(k, held);
    state.keys.push(key);
    state.releases.push(() => {
      if (this.uncommitted.get(k) === held) this.uncommitted.delete(k);
      release();
    });
    const attempt = (this.failures.get(k)?.attempts ?? 0) + 1;
    tx.onCommit(() => {
      this.entries.set(k, {
        ...key,
        status: 'processed',
        attempts: attempt,
        lastError: null,
        message: null,
        processedAt: new Date(this.clock.now()),
      });
      this.failures.delete(k);
    });
    return attempt;
  }

  async markProcessedBatch(
    tx: InMemoryTx,
    consumer: string,
    messageIds: readonly string[],
  ): Promise<(number | null)[]> {
    if (new Set(messageIds).size !== messageIds.length)
      throw new Error('InMemoryInboxStore.markProcessedBatch: messageIds repeats an id');
    // In key order, as the PostgreSQL statement takes the keys' locks: two overlapping batches
    // never wait on each other in opposite orders.
    const attempts = new Map<string, number | null>();
    for (const messageId of [...messageIds].sort())
      attempts.set(messageId, await this.markProcessed(tx, { consumer, messageId }));
    return messageIds.map((messageId) => attempts.get(messageId) ?? null);
  }

  recordFailure(failure: InboxFailure): Promise<InboxFailureOutcome> {
    const key = { consumer: failure.consumer, messageId: failure.messageId };
    this.throwFault('recordFailure', key);
    const k = keyOf(key);
    if (this.entries.has(k)) return Promise.resolve({ outcome: 'already-done' });
    const now = new Date(this.clock.now());
    const previous = this.failures.get(k);
    const attempts = (previous?.attempts ?? 0) + 1;
    if (attempts >= failure.maxAttempts) {
      this.failures.delete(k);
      this.entries.set(k, {
        ...key,
        status: 'dead_letter',
        attempts,
        lastError: failure.error,
        message: clone(failure.message),
        processedAt: now,
      });
      return Promise.resolve({ outcome: 'dead-lettered', attempts });
    }
    this.failures.set(k, {
      ...key,
      attempts,
      lastError: failure.error,
      firstFailedAt: previous?.firstFailedAt ?? now,
      lastFailedAt: now,
    });
    return Promise.resolve({ outcome: 'counted', attempts });
  }

  get(key: InboxKey): Promise<InboxEntry | undefined> {
    return Promise.resolve(clone(this.entries.get(keyOf(key))));
  }

  getFailure(key: InboxKey): Promise<InboxFailureRecord | undefined> {
    return Promise.resolve(clone(this.failures.get(keyOf(key))));
  }

  listDeadLetters(
    filter: { consumer?: string },
    limit: number,
    after?: InboxKey,
  ): Promise<InboxDeadLetterPage> {
    const all = [...this.entries.values()]
      .filter((e) => e.status === 'dead_letter')
      .filter((e) => filter.consumer === undefined || e.consumer === filter.consumer)
      .filter((e) => !after || compareKeys(e, after) > 0)
      .sort(compareKeys);
    const entries = all.slice(0, limit).map((e) => clone(e));
    const last = entries[entries.length - 1];
    return Promise.resolve({
      entries,
      nextCursor:
        all.length > limit && last ? { consumer: last.consumer, messageId: last.messageId } : null,
    });
  }

  deleteDeadLetters(consumer: string, messageIds: readonly string[]): Promise<string[]> {
    const deleted: string[] = [];
    for (const messageId of messageIds) {
      const k = keyOf({ consumer, messageId });
      if (this.entries.get(k)?.status !== 'dead_letter') continue;
      this.entries.delete(k);
      deleted.push(messageId);
    }
    return Promise.resolve(deleted);
  }

  deleteProcessedBatch(olderThanMs: number, limit: number): Promise<number | null> {
    const cutoff = this.clock.now() - olderThanMs;
    // Up to `limit` of each kind, oldest first, as the PostgreSQL statement does.
    const processed = [...this.entries]
      .filter(([, e]) => e.status === 'processed' && e.processedAt.getTime() < cutoff)
      .sort(([, a], [, b]) => a.processedAt.getTime() - b.processedAt.getTime())
      .slice(0, limit);
    const stale = [...this.failures]
      .filter(([, f]) => f.lastFailedAt.getTime() < cutoff)
      .sort(([, a], [, b]) => a.lastFailedAt.getTime() - b.lastFailedAt.getTime())
      .slice(0, limit);
    for (const [k] of processed) this.entries.delete(k);
    for (const [k] of stale) this.failures.delete(k);
    return Promise.resolve(processed.length + stale.length);
  }

  /** Every inbox row (processed and dead-lettered), for assertions. */
  all(): InboxEntry[] {
    return [...this.entries.values()].map((e) => clone(e));
  }

  private throwFault(point: InMemoryInboxFaultPoint, key: InboxKey): void {
    const error = this.fault?.(point, key);
    if (error) throw error;
  }
}

/** JSON of the pair: unambiguous whatever characters the consumer name holds. */
function keyOf(key: InboxKey): string {
  return JSON.stringify([key.consumer, key.messageId]);
}

/** PostgreSQL's `ORDER BY consumer, message_id` under the C collation (code unit order is close enough for tests). */
function compareKeys(a: InboxKey, b: InboxKey): number {
  if (a.consumer !== b.consumer) return a.consumer < b.consumer ? -1 : 1;
  if (a.messageId !== b.messageId) return a.messageId < b.messageId ? -1 : 1;
  return 0;
}

function clone<T extends JsonValue | InboxEntry | InboxFailureRecord | null | undefined>(v: T): T {
  return v === undefined ? v : structuredClone(v);
}
