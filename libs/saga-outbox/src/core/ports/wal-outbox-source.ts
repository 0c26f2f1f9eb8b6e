import type { WalOutboxTransaction } from '../outbox/wal-delivery-window';

/** What a WAL session reports to the relay, synchronously and in stream order. */
export interface WalOutboxStreamHandlers {
  /** A committed transaction's outbox messages (possibly none), in commit order. */
  onTransaction(tx: WalOutboxTransaction): void;
  /** The server has sent everything before `walEnd` (a keepalive between transactions). */
  onKeepalive(walEnd: bigint): void;
  /** The stream ended: `error` undefined after `close()`, else why (connection lost, slot taken). */
  onClose(error: Error | undefined): void;
}

/** A fenced record: `owner` false when this session no longer holds the slot (nothing changed). */
export interface WalFencedResult {
  owner: boolean;
  /** Ids whose row this changed (pending rows among those asked). */
  ids: string[];
  /**
   * Ids whose row the write could not see, so it changed nothing for them: the stream can deliver
   * a transaction a moment before it becomes visible to other sessions (PostgreSQL streams a commit
   * once it is flushed, before the committing session has finished it), or the row was removed
   * since. The relay records them again shortly (and takes a row still unseen after 30 s as
   * removed). Optional: a source that always sees what it streamed leaves it out.
   */
  unseen?: string[];
}

/**
 * One streamer's hold on the replication slot. While it lasts no other session can stream from the
 * slot (PostgreSQL allows one active consumer per slot), and only this session can confirm: the
 * confirmation travels on the replication connection itself. Its writes to the outbox table are
 * fenced on the slot's active holder, so a deposed streamer changes nothing.
 */
export interface WalOutboxSession {
  /** The slot holder's identity (the walsender's backend pid), in logs. */
  readonly holder: string;
  /** The slot's confirmed position when streaming began: the stream resumes right after it. */
  readonly startLsn: bigint;
  /** Stops reading the stream (backpressure); the server buffers, then waits. */
  pause(): void;
  resume(): void;
  /** Confirms the slot up to `lsn` (standby status update). Only ever called with increasing values. */
  confirm(lsn: bigint): void;
  /** pending → sent for acked messages, fenced on the slot holder. */
  markSent(ids: readonly string[]): Promise<WalFencedResult>;
  /** pending → dead_letter (with the reason), fenced on the slot holder. */
  deadLetter(failures: readonly { id: string; error: string }[]): Promise<WalFencedResult>;
  /** Ends the stream (idempotent); `onClose(undefined)` follows. */
  close(): Promise<void>;
  /**
   * Whether a failed `markSent` / `deadLetter` means the server is going away or cannot be reached
   * (shutting down, restarting, connection refused or cut), rather than a passing failure. The relay
   * then ends the session instead of retrying the record on it: a server shutting down waits for
   * its replication client to confirm what it streamed, which the relay cannot do before recording,
   * so retrying would hold the shutdown for ever. Optional: without it every failure is retried.
   */
  serverGone?(error: unknown): boolean;
}

/** Where the WAL relay gets its stream (PostgreSQL: persistence/postgres/postgres-wal-source.ts). */
export interface WalOutboxSource {
  /**
   * Starts streaming from the slot's confirmed position (creating the slot first if it does not
   * exist). Resolves null when another streamer holds the slot (this one stands by). Throws a typed
   * error for what no retry fixes (wal_level, missing publication, invalidated slot).
   */
  open(handlers: WalOutboxStreamHandlers): Promise<WalOutboxSession | null>;
  /**
   * The checks `open` starts with, alone: what no retry fixes (wal_level, publication, slot) throws
   * its typed error. Run at startup, so a misconfiguration fails the start instead of a loop.
   */
  check(): Promise<void>;
  /** How far behind the server's WAL the slot's confirmed position is; null without a slot. */
  slotLag(): Promise<WalSlotLag | null>;
}

export interface WalSlotLag {
  /** Bytes of WAL between the slot's confirmed flush position and the server's current position. */
  lagBytes: number;
  /** pg_replication_slots.wal_status: reserved, extended, unreserved, lost. */
  walStatus: string | null;
  /** Some session streams from the slot now. */
  active: boolean;
}
