import type {
  ClaimedOutboxMessage,
  NewOutboxMessage,
  OutboxMessage,
} from '../core/outbox/outbox-message';
import { canTransition, type OutboxTransitionName } from '../core/outbox/outbox-transitions';
import { systemClock, type Clock } from '../core/ports/clock';
import type {
  ClaimByIdsResult,
  DeadLetterFilter,
  DeadLetterPage,
  OutboxFailure,
  OutboxStats,
  OutboxStore,
  OutboxWakeSubscription,
  OutboxWriter,
  TransactionCommitHooks,
} from '../core/ports/outbox-store';
import { InMemoryTx } from './in-memory-saga-store';

interface Row extends OutboxMessage {
  /** Commit order (stands in for (txid, seq): rows become visible in commit order). */
  seq: number;
  claimToken: string | null;
  leaseUntil: number | null;
}

type Selector = { ids: readonly string[] } | { filter: DeadLetterFilter; limit: number };

/**
 * The outbox in memory, with the PostgreSQL store's semantics for unit tests: rows exist only once
 * their transaction commits (`transaction(body)`), claims take pending, due rows that head their
 * key, every move out of `claimed` is fenced by the claim token, leases run on the store's clock.
 * Rows held back for any other reason are modelled by `setClaimable` (rows it rejects are not
 * claimable yet), and `setFault` makes an operation throw.
 */
/** A row written in an open transaction; `claim`: written already claimed (insertClaimed). */
type WrittenMessage = NewOutboxMessage & { claim?: { token: string; leaseMs: number } };

export class InMemoryOutboxStore
  implements OutboxStore, OutboxWriter<InMemoryTx>, TransactionCommitHooks<InMemoryTx>
{
  private readonly rows = new Map<string, Row>();
  /** Open transactions and the messages each wrote (applied, in order, at commit). */
  private readonly openTx = new WeakMap<InMemoryTx, WrittenMessage[]>();
  private seq = 0;
  private claimable: ((message: OutboxMessage) => boolean) | undefined;
  private fault: ((operation: string) => Error | undefined) | undefined;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly clock: Clock = systemClock) {}

  /** Runs `body` in a transaction: its rows (and onCommit effects) apply if it returns, none if it throws. */
  async transaction<T>(body: (tx: InMemoryTx) => Promise<T>): Promise<T> {
    const tx = new InMemoryTx();
    this.openTx.set(tx, []);
    try {
      const value = await body(tx);
      const written = this.openTx.get(tx) ?? [];
      this.openTx.delete(tx);
      // Another transaction committed one of these ids meanwhile (PostgreSQL: the INSERT waits for
      // it, then fails on the primary key): this one fails and writes nothing.
      const taken = written.find((m) => this.rows.has(m.id));
      if (taken) throw duplicateId(taken.id);
      // The rows first (a commit makes them all visible at once), then the onCommit effects.
      const createdAt = new Date(this.clock.now());
      for (const { claim, ...m } of written) {
        this.rows.set(m.id, {
          ...m,
          headers: { ...m.headers },
          status: claim ? 'claimed' : 'pending',
          attempts: 0,
          nextAttemptAt: createdAt,
          createdAt,
          sentAt: null,
          lastError: null,
          seq: ++this.seq,
          claimToken: claim?.token ?? null,
          leaseUntil: claim ? this.clock.now() + claim.leaseMs : null,
        });
      }
      tx.commit();
      for (const notify of this.listeners) notify();
      return value;
    } finally {
      this.openTx.delete(tx);
    }
  }

  /** Extra claim eligibility (e.g. a row not claimable yet); undefined: all eligible. */
  setClaimable(predicate: ((message: OutboxMessage) => boolean) | undefined): void {
    this.claimable = predicate;
  }

  /** Makes the named store operation throw the returned error (undefined: proceed). */
  setFault(fault: ((operation: string) => Error | undefined) | undefined): void {
    this.fault = fault;
  }

  /** Every row, in commit order (for assertions). */
  all(): OutboxMessage[] {
    return [...this.rows.values()].sort((a, b) => a.seq - b.seq).map(toMessage);
  }

  // -- write side ------------------------------------------------------------------------------

  isTransaction(tx: InMemoryTx): boolean {
    return tx instanceof InMemoryTx && this.openTx.has(tx);
  }

  insert(tx: InMemoryTx, messages: readonly NewOutboxMessage[]): Promise<void> {
    this.throwFault('insert');
    const written = this.openTx.get(tx);
    if (!written) return Promise.reject(new Error('InMemoryOutboxStore: not an open transaction'));
    // The id is the primary key: an id already stored, written earlier in this transaction or
    // twice in this call fails the insert (and with it the transaction), as on PostgreSQL.
    const ids = new Set([...this.rows.keys(), ...written.map((m) => m.id)]);
    for (const m of messages) {
      if (ids.has(m.id)) return Promise.reject(duplicateId(m.id));
      ids.add(m.id);
    }
    written.push(...messages.map((m) => ({ ...m, headers: { ...m.headers } })));
    return Promise.resolve();
  }

  /**
   * insert, with the rows of `claim.ids` that head their key (the call's first of the key, no
   * committed or earlier-written row of the key pending or claimed; keyless always) written
   * `claimed` by `claim.claimToken`. No key locks here: the decision is taken at write and applied
   * at commit (PostgreSQL's key locks keep another writer of the key from committing in between).
   */
  async insertClaimed(
    tx: InMemoryTx,
    messages: readonly NewOutboxMessage[],
    claim: { claimToken: string; leaseMs: number; ids: readonly string[] },
  ): Promise<ClaimedOutboxMessage[]> {
    await this.insert(tx, messages);
    const written = this.openTx.get(tx)!;
    const wanted = new Set(claim.ids);
    const busy = new Set<string>();
    for (const r of this.rows.values())
      if (r.key !== null && (r.status === 'pending' || r.status === 'claimed')) busy.add(r.key);
    const fresh = written.slice(written.length - messages.length);
    for (const m of written.slice(0, written.length - messages.length))
      if (m.key !== null) busy.add(m.key);
    const out: ClaimedOutboxMessage[] = [];
    for (const m of fresh) {
      const heads = m.key === null || !busy.has(m.key);
      if (m.key !== null) busy.add(m.key);
      if (!heads || !wanted.has(m.id)) continue;
      m.claim = { token: claim.claimToken, leaseMs: claim.leaseMs };
      out.push({
        ...m,
        payload: structuredClone(m.payload),
        headers: { ...m.headers },
        attempts: 0,
        createdAt: new Date(this.clock.now()),
      });
    }
    return out.map(({ claim: _claim, ...c }: ClaimedOutboxMessage & { claim?: unknown }) => c);
  }

  /** Commits are observed (InMemoryTx.onCommit); a rolled-back InMemoryTx just never calls back. */
  onTransactionEnd(tx: InMemoryTx, callback: (committed: boolean) => void): boolean {
    if (!(tx instanceof InMemoryTx)) return false;
    tx.onCommit(() => callback(true));
    return true;
  }

  // -- relay side ------------------------------------------------------------------------------

  claim(claimToken: string, limit: number, leaseMs: number): Promise<ClaimedOutboxMessage[]> {
    this.throwFault('claim');
    const taken = this.ordered()
      .filter((r) => this.eligible(r))
      .slice(0, Math.max(0, limit));
    return Promise.resolve(taken.map((r) => this.take(r, claimToken, leaseMs)));
  }

  claimByIds(
    claimToken: string,
    ids: readonly string[],
    leaseMs: number,
  ): Promise<ClaimByIdsResult> {
    this.throwFault('claimByIds');
    const wanted = new Set(ids);
    const mine = this.ordered().filter((r) => wanted.has(r.id));
    const claimed: ClaimedOutboxMessage[] = [];
    const waiting: string[] = [];
    for (const r of mine) {
      if (this.eligible(r)) claimed.push(this.take(r, claimToken, leaseMs));
      else if (r.status === 'pending') waiting.push(r.id);
    }
    return Promise.resolve({ claimed, waiting });
  }

  markSent(claimToken: string, ids: readonly string[]): Promise<string[]> {
    this.throwFault('markSent');
    return Promise.resolve(
      this.fenced('markSent', claimToken, ids, (r) => {
        r.sentAt = new Date(this.clock.now());
      }),
    );
  }

  markFailed(claimToken: string, failures: readonly OutboxFailure[]): Promise<string[]> {
    this.throwFault('markFailed');
    const done: string[] = [];
    for (const f of failures) {
      const r = this.rows.get(f.id);
      if (!r || r.claimToken !== claimToken || !canTransition('retry', r.status)) continue;
      if (f.counted !== false || f.delayMs === null) r.attempts++;
      r.lastError = f.error;
      r.claimToken = null;
      r.leaseUntil = null;
      if (f.delayMs === null) r.status = 'dead_letter';
      else {
        r.status = 'pending';
        r.nextAttemptAt = new Date(this.clock.now() + f.delayMs);
      }
      done.push(f.id);
    }
    return Promise.resolve(done);
  }

  release(claimToken: string, ids: readonly string[]): Promise<string[]> {
    this.throwFault('release');
    const released = this.fenced('release', claimToken, ids, () => undefined);
    if (released.length) for (const notify of this.listeners) notify();
    return Promise.resolve(released);
  }

  reapExpired(limit: number): Promise<number> {
    this.throwFault('reapExpired');
    const now = this.clock.now();
    let n = 0;
    for (const r of this.ordered()) {
      if (n >= limit) break;
      if (r.status !== 'claimed' || r.leaseUntil === null || r.leaseUntil >= now) continue;
      r.status = 'pending';
      r.claimToken = null;
      r.leaseUntil = null;
      r.lastError = 'claim lease expired (relay stopped or stalled); released by the reaper';
      n++;
    }
    return Promise.resolve(n);
  }

  listen(onNotify: () => void): Promise<OutboxWakeSubscription | null> {
    this.listeners.add(onNotify);
    return Promise.resolve({
      close: () => {
        this.listeners.delete(onNotify);
        return Promise.resolve();
      },
    });
  }

  // -- dead letters ----------------------------------------------------------------------------

  get(id: string): Promise<OutboxMessage | undefined> {
    const r = this.rows.get(id);
    return Promise.resolve(r ? toMessage(r) : undefined);
  }

  listDeadLetters(
    filter: DeadLetterFilter,
    limit: number,
    after?: string,
  ): Promise<DeadLetterPage> {
    const all = this.deadLetters(filter).filter((r) => after === undefined || r.id > after);
    const page = all.slice(0, limit).map(toMessage);
    return Promise.resolve({
      messages: page,
      nextCursor: all.length > limit ? (page[page.length - 1]?.id ?? null) : null,
    });
  }

  replayDeadLetters(selector: Selector): Promise<string[]> {
    const done = this.select(selector).map((r) => {
      r.status = 'pending';
      r.attempts = 0;
      r.nextAttemptAt = new Date(this.clock.now());
      return r.id;
    });
    if (done.length) for (const notify of this.listeners) notify();
    return Promise.resolve(done);
  }

  discardDeadLetters(selector: Selector): Promise<string[]> {
    return Promise.resolve(
      this.select(selector).map((r) => {
        this.rows.delete(r.id);
        return r.id;
      }),
    );
  }

  // -- retention / stats -----------------------------------------------------------------------

  deleteSentBatch(olderThanMs: number, limit: number): Promise<number | null> {
    const cutoff = this.clock.now() - olderThanMs;
    const doomed = this.ordered()
      .filter((r) => r.status === 'sent' && r.sentAt !== null && r.sentAt.getTime() < cutoff)
      .slice(0, limit);
    for (const r of doomed) this.rows.delete(r.id);
    return Promise.resolve(doomed.length);
  }

  stats(): Promise<OutboxStats> {
    const s: OutboxStats = {
      pending: 0,
      claimed: 0,
      sent: 0,
      deadLetter: 0,
      oldestPendingAgeSeconds: 0,
    };
    let oldest: number | undefined;
    for (const r of this.rows.values()) {
      if (r.status === 'dead_letter') s.deadLetter++;
      else s[r.status]++;
      if (r.status === 'pending') oldest = Math.min(oldest ?? Infinity, r.createdAt.getTime());
    }
    if (oldest !== undefined) s.oldestPendingAgeSeconds = (this.clock.now() - oldest) / 1000;
    return Promise.resolve(s);
  }

  // -- internals -------------------------------------------------------------------------------

  private ordered(): Row[] {
    return [...this.rows.values()].sort((a, b) => a.seq - b.seq);
  }

  /** claim's eligibility: pending, due, claimable (watermark), head of its key. */
  private eligible(r: Row): boolean {
    if (!canTransition('claim', r.status)) return false;
    if (r.nextAttemptAt.getTime() > this.clock.now()) return false;
    if (this.claimable && !this.claimable(toMessage(r))) return false;
    if (r.key === null) return true;
    for (const e of this.rows.values()) {
      if (e.key === r.key && e.seq < r.seq && (e.status === 'pending' || e.status === 'claimed'))
        return false;
    }
    return true;
  }

  private take(r: Row, claimToken: string, leaseMs: number): ClaimedOutboxMessage {
    r.status = 'claimed';
    r.claimToken = claimToken;
    r.leaseUntil = this.clock.now() + leaseMs;
    return {
      id: r.id,
      destination: r.destination,
      type: r.type,
      key: r.key,
      payload: structuredClone(r.payload),
      headers: { ...r.headers },
      sagaId: r.sagaId,
      attempts: r.attempts,
      createdAt: r.createdAt,
    };
  }

  private fenced(
    name: OutboxTransitionName,
    claimToken: string,
    ids: readonly string[],
    apply: (r: Row) => void,
  ): string[] {
    const done: string[] = [];
    for (const id of ids) {
      const r = this.rows.get(id);
      if (!r || r.claimToken !== claimToken || !canTransition(name, r.status)) continue;
      r.status = name === 'markSent' ? 'sent' : 'pending';
      r.claimToken = null;
      r.leaseUntil = null;
      apply(r);
      done.push(id);
    }
    return done;
  }

  private deadLetters(f: DeadLetterFilter): Row[] {
    return [...this.rows.values()]
      .filter(
        (r) =>
          r.status === 'dead_letter' &&
          (f.destination === undefined || r.destination === f.destination) &&
          (f.type === undefined || r.type === f.type) &&
          (f.key === undefined || r.key === f.key) &&
          (f.sagaId === undefined || r.sagaId === f.sagaId) &&
          (f.createdBefore === undefined || r.createdAt < f.createdBefore),
      )
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  private select(selector: Selector): Row[] {
    if ('ids' in selector) {
      return [...new Set(selector.ids)]
        .map((id) => this.rows.get(id))
        .filter((r): r is Row => r?.status === 'dead_letter');
    }
    return this.deadLetters(selector.filter).slice(0, selector.limit);
  }

  private throwFault(operation: string): void {
    const error = this.fault?.(operation);
    if (error) throw error;
  }
}

function duplicateId(id: string): Error {
  return new Error(`InMemoryOutboxStore: an outbox message with id ${id} already exists`);
}

function toMessage(r: Row): OutboxMessage {
  return {
    id: r.id,
    destination: r.destination,
    type: r.type,
    key: r.key,
    payload: structuredClone(r.payload),
    headers: { ...r.headers },
    sagaId: r.sagaId,
    status: r.status,
    attempts: r.attempts,
    nextAttemptAt: r.nextAttemptAt,
    createdAt: r.createdAt,
    sentAt: r.sentAt,
    lastError: r.lastError,
  };
}
