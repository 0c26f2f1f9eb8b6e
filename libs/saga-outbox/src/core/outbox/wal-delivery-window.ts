import type { ClaimedOutboxMessage } from './outbox-message';

/**
 * One committed transaction's outbox messages as the WAL stream delivers them: in commit order,
 * each transaction whole, `endLsn` the position just past its commit record (what the replication
 * slot may be confirmed up to once every message of this and every earlier transaction is done).
 */
export interface WalOutboxTransaction {
  endLsn: bigint;
  messages: ClaimedOutboxMessage[];
}

interface Entry {
  message: ClaimedOutboxMessage;
  tx: TxState;
  state: 'waiting' | 'in_flight' | 'done';
  /** Process clock (ms) before which a failed message is not handed out again. */
  notBefore: number;
}

interface TxState {
  endLsn: bigint;
  open: number;
  /** Messages of this transaction (tracked ones), finished or not. */
  count: number;
}

/**
 * The WAL relay's ordering and confirmation state, without any I/O: which streamed messages may go
 * to the broker now, and how far the replication slot may be confirmed.
 *
 * - Order: messages are handed out in commit order (the stream's order). A message with a key goes
 *   out only when no earlier message of the same key is unfinished (waiting, in flight or backing
 *   off), so per key at most one message is at the broker and a retry is never overtaken; a message
 *   without a key is not held back by anything.
 * - Confirmation: `confirmableLsn` is the end of the longest prefix of transactions all of whose
 *   messages are `done` (acked and recorded, or dead-lettered and recorded). The slot is never
 *   confirmed past an unfinished message, so a restart streams it again: duplicates after a crash
 *   are at most the messages after the confirmed position (the unconfirmed window, at most
 *   `size` messages plus what was still in the socket).
 */
export class WalDeliveryWindow {
  /** Unfinished and finished-but-unconfirmed entries, in commit order. */
  private readonly entries: Entry[] = [];
  private readonly byId = new Map<string, Entry>();
  private readonly txs: TxState[] = [];
  private confirmable: bigint;
  private unfinished = 0;
  private pendingConfirm = 0;

  constructor(startLsn = 0n) {
    this.confirmable = startLsn;
  }

  /** Messages not yet `done` (waiting, backing off or at the broker). */
  get size(): number {
    return this.unfinished;
  }

  /**
   * Messages received and not yet confirmable (finished or not): what a crash now would stream
   * again. The relay stops reading the stream while this is at its `maxWindow`.
   */
  get unconfirmed(): number {
    return this.pendingConfirm;
  }

  /** The position the slot may be confirmed to: every message before it is done. */
  get confirmableLsn(): bigint {
    return this.confirmable;
  }

  /** Appends a committed transaction (stream order is commit order). */
  add(tx: WalOutboxTransaction): void {
    const state: TxState = { endLsn: tx.endLsn, open: 0, count: 0 };
    this.txs.push(state);
    for (const message of tx.messages) {
      // A message streamed twice (a row re-sent after reconnecting) is tracked once.
      if (this.byId.has(message.id)) continue;
      const entry: Entry = { message, tx: state, state: 'waiting', notBefore: 0 };
      this.entries.push(entry);
      this.byId.set(message.id, entry);
      state.open++;
      state.count++;
      this.unfinished++;
      this.pendingConfirm++;
    }
    this.advance();
  }

  /**
   * Up to `limit` messages that may go to the broker now, in commit order, marked in flight. A key
   * with an unfinished earlier message is skipped (and so is every later message of that key).
   */
  take(limit: number, now: number): ClaimedOutboxMessage[] {
    const out: ClaimedOutboxMessage[] = [];
    const blocked = new Set<string>();
    for (const entry of this.entries) {
      if (out.length >= limit) break;
      if (entry.state === 'done') continue;
      const key = entry.message.key;
      const keyBlocked = key !== null && blocked.has(key);
      if (key !== null) blocked.add(key);
      if (keyBlocked || entry.state === 'in_flight' || entry.notBefore > now) continue;
      entry.state = 'in_flight';
      out.push(entry.message);
    }
    return out;
  }

  /** The earliest time (process clock) a backing-off message becomes takeable; undefined if none. */
  nextDueAt(): number | undefined {
    let due: number | undefined;
    for (const e of this.entries)
      if (e.state === 'waiting' && e.notBefore > 0 && (due === undefined || e.notBefore < due))
        due = e.notBefore;
    return due;
  }

  /** Acked and recorded, or dead-lettered and recorded: the message is finished. */
  done(id: string): void {
    const entry = this.byId.get(id);
    if (!entry || entry.state === 'done') return;
    entry.state = 'done';
    entry.tx.open--;
    this.unfinished--;
    this.advance();
  }

  /** Back to waiting (its key stays held) until `notBefore` on the process clock. */
  retryAt(id: string, notBefore: number): void {
    const entry = this.byId.get(id);
    if (!entry || entry.state === 'done') return;
    entry.state = 'waiting';
    entry.notBefore = notBefore;
  }

  /**
   * The server says everything before `walEnd` has been sent (a keepalive). With nothing
   * unfinished, the slot may be confirmed that far: WAL of other tables and databases is not kept
   * for this slot's sake while the outbox is idle.
   */
  idle(walEnd: bigint): void {
    if (this.unfinished === 0 && this.txs.length === 0 && walEnd > this.confirmable)
      this.confirmable = walEnd;
  }

  /** Messages handed out and not yet finished or put back (for shutdown accounting). */
  inFlight(): number {
    let n = 0;
    for (const e of this.entries) if (e.state === 'in_flight') n++;
    return n;
  }

  private advance(): void {
    while (this.txs.length && this.txs[0]!.open === 0) {
      const tx = this.txs.shift()!;
      this.pendingConfirm -= tx.count;
      if (tx.endLsn > this.confirmable) this.confirmable = tx.endLsn;
    }
    // Drop finished entries at the head: nothing before them can hold a key any more.
    let drop = 0;
    while (drop < this.entries.length && this.entries[drop]!.state === 'done') drop++;
    if (drop) for (const e of this.entries.splice(0, drop)) this.byId.delete(e.message.id);
  }
}
