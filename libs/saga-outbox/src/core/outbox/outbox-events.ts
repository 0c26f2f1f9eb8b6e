/**
 * Typed outbox events. The relay and the optimistic sender emit them; metrics, logs and tests
 * subscribe. The core never imports a metrics or tracing library.
 *
 * Labels meant for metrics (`destination`, `messageType`, `path`, `reason`) are low-cardinality;
 * ids are carried for logs and traces only.
 */

import type { ClaimedOutboxMessage } from './outbox-message';

/** Who published: the relay loop, or the producing process right after its commit. */
export type OutboxPublishPath = 'relay' | 'optimistic';

/** Why a publish did not end as `sent`. */
export type OutboxFailureReason =
  /** The broker refused or errored (nack, unroutable, connection error). */
  | 'broker_error'
  /** The publish did not finish within its bound (optimistic timeout, shutdown bound). */
  | 'timeout'
  /**
   * Published (or tried) while the claim was lost: the broker acked, or the attempt failed, but
   * the fenced record of it was rejected (lease expired; the row was reaped, maybe claimed again).
   * The message goes out again from whoever holds it now: a duplicate (or one in the making).
   */
  | 'stale_claim';

export type OutboxEvent =
  | {
      type: 'outbox.claimed';
      path: OutboxPublishPath;
      count: number;
      at: number;
    }
  | {
      type: 'outbox.published';
      path: OutboxPublishPath;
      messageId: string;
      destination: string;
      messageType: string;
      /** Broker call duration for the chunk the message was part of. */
      publishMs: number;
      /**
       * From the row's `created_at` (database clock: the start of the transaction that wrote it)
       * to the broker ack (this process's clock). Includes the writing transaction's own duration.
       */
      commitToPublishMs: number;
      at: number;
    }
  | {
      type: 'outbox.failed';
      path: OutboxPublishPath;
      messageId: string;
      destination: string;
      messageType: string;
      reason: OutboxFailureReason;
      error: string;
      /** True when this failure moved the message to `dead_letter`. */
      deadLettered: boolean;
      at: number;
    }
  | {
      type: 'outbox.batch';
      path: OutboxPublishPath;
      claimed: number;
      sent: number;
      failed: number;
      /** Claim → publish → mark, wall clock. */
      durationMs: number;
      at: number;
    }
  /**
   * Claims handed back to `pending`, due now, attempts unchanged: relay shutdown (unstarted
   * claims), or an optimistic publish that failed or timed out (the relay takes over).
   */
  | { type: 'outbox.released'; path: OutboxPublishPath; count: number; at: number }
  | { type: 'outbox.reaped'; count: number; at: number }
  /**
   * Messages the optimistic sender did not try (they stay pending for the relay): `saturated`
   * when `maxConcurrent` attempts were already in flight (backpressure).
   */
  | {
      type: 'outbox.skipped';
      path: 'optimistic';
      reason: 'saturated';
      count: number;
      at: number;
    };

export type OutboxEventListener = (event: OutboxEvent) => void;

/**
 * Fan-out to listeners. A listener can never break the emitter's caller: what it throws is caught
 * and dropped (metrics and logs are not worth a lost publish).
 */
export class OutboxEventEmitter {
  private listeners: OutboxEventListener[] = [];

  /** Adds a listener; returns the function that removes it. */
  on(listener: OutboxEventListener): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  /** True when someone listens (callers skip building per-message events otherwise). */
  get active(): boolean {
    return this.listeners.length > 0;
  }

  emit(event: OutboxEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // Deliberately ignored: see the class comment.
      }
    }
  }
}

/** What one claim-publish-record round did, as emitOutcomeEvents reports it. */
export interface OutboxRoundOutcome {
  claimed: readonly ClaimedOutboxMessage[];
  /** Acked by the broker: broker call duration and ack time (process clock). */
  acks: ReadonlyMap<string, { publishMs: number; at: number }>;
  /** Acked ids the fenced mark-sent did record (the others lost their claim: `stale_claim`). */
  marked: readonly string[];
  failed: readonly {
    id: string;
    error: string;
    reason: OutboxFailureReason;
    deadLettered: boolean;
    /**
     * The fenced record of this failure (mark-failed, release) was rejected: the claim had been
     * lost. Reported as `stale_claim`, whatever `reason` the attempt itself had.
     */
    claimLost: boolean;
  }[];
  /** Claims handed back to pending. */
  released: number;
  startedAt: number;
  now: number;
}

/**
 * The per-message and per-round events of one round, shared by the relay and the optimistic
 * publisher so both report the same way: `published` per recorded ack, `failed` per failure and
 * per ack whose claim was lost, `released` if any, then one `batch`. Every message whose claim was
 * lost by the time its outcome was recorded, acked or failed, is a `stale_claim`: the one reason
 * that counts the publishes the fencing turned into duplicates.
 */
export function emitOutcomeEvents(
  events: OutboxEventEmitter,
  path: OutboxPublishPath,
  o: OutboxRoundOutcome,
): void {
  const byId = new Map(o.claimed.map((m) => [m.id, m]));
  const marked = new Set(o.marked);
  let stale = 0;
  for (const [id, ack] of o.acks) {
    const m = byId.get(id);
    if (!m) continue;
    if (marked.has(id)) {
      events.emit({
        type: 'outbox.published',
        path,
        messageId: id,
        destination: m.destination,
        messageType: m.type,
        publishMs: ack.publishMs,
        commitToPublishMs: Math.max(0, ack.at - m.createdAt.getTime()),
        at: ack.at,
      });
    } else {
      stale++;
      events.emit({
        type: 'outbox.failed',
        path,
        messageId: id,
        destination: m.destination,
        messageType: m.type,
        reason: 'stale_claim',
        error: 'acked by the broker, but the claim was lost before it was recorded (lease expired)',
        deadLettered: false,
        at: o.now,
      });
    }
  }
  for (const f of o.failed) {
    const m = byId.get(f.id);
    events.emit({
      type: 'outbox.failed',
      path,
      messageId: f.id,
      destination: m?.destination ?? '',
      messageType: m?.type ?? '',
      reason: f.claimLost ? 'stale_claim' : f.reason,
      error: f.claimLost
        ? `${f.error}; and the claim was lost before this failure was recorded (lease expired): whoever holds the message now publishes it`
        : f.error,
      deadLettered: !f.claimLost && f.deadLettered,
      at: o.now,
    });
  }
  if (o.released > 0) events.emit({ type: 'outbox.released', path, count: o.released, at: o.now });
  events.emit({
    type: 'outbox.batch',
    path,
    claimed: o.claimed.length,
    sent: marked.size,
    failed: o.failed.length + stale,
    durationMs: o.now - o.startedAt,
    at: o.now,
  });
}
