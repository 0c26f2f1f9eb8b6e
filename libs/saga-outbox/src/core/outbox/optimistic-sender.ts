import { setMaxListeners } from 'node:events';
import { InvalidOptionsError } from '../errors';
import type { Broker, BrokerMessage, PublishResult } from '../ports/broker';
import { systemClock, type Clock } from '../ports/clock';
import { silentLogger, type SageLogger } from '../ports/logger';
import type { OutboxStore, OutboxWriter, TransactionCommitHooks } from '../ports/outbox-store';
import { uuidv7 } from '../uuid';
import {
  emitOutcomeEvents,
  OutboxEventEmitter,
  type OutboxEventListener,
  type OutboxFailureReason,
} from './outbox-events';
import {
  toBrokerMessage,
  type ClaimedOutboxMessage,
  type NewOutboxMessage,
} from './outbox-message';
import { errorText } from '../error-text';
import { raceAbort } from '../race-abort';

/** The rollout: which share of messages is sent optimistically. */
export interface OptimisticRollout {
  /** Share of messages sent optimistically, 0–100 (decided per message). Default 100. */
  percent?: number;
  /** Per message type, overrides `percent` (0–100), e.g. `{ 'order.placed': 100, 'audit.logged': 0 }`. */
  types?: Record<string, number>;
}

export interface OptimisticSenderSettings extends OptimisticRollout {
  /** Master switch. Default false: nothing is sent optimistically, the relay publishes everything. */
  enabled?: boolean;
  /**
   * Bound on one optimistic attempt, from the commit: claiming, publishing and recording. When it
   * is over, an unfinished publish is abandoned and its rows handed back to the relay. Default 500.
   */
  timeoutMs?: number;
  /**
   * Optimistic attempts (one per committed transaction) in flight at once. When that many are
   * running, further commits are not tried optimistically (counted as skipped); their rows stay
   * pending and the relay publishes them. Each attempt takes a pooled connection for each of its
   * short statements (never across the broker call): keep this in proportion to the pool. Default 32.
   */
  maxConcurrent?: number;
  /**
   * Claim lease on the database clock. Only matters if this process dies while holding a claim:
   * the reaper of any relay frees the rows once it is over. Must exceed `timeoutMs`. Default
   * 10000, or twice `timeoutMs` if that is more.
   */
  leaseMs?: number;
  /** Messages per broker `publish()` call (a transaction's messages are sent in parallel chunks). Default 100. */
  publishBatchSize?: number;
}

export interface OptimisticSenderOptions extends OptimisticSenderSettings {
  store: OutboxStore;
  broker: Broker;
  clock?: Clock;
  logger?: SageLogger;
  /** Uniform in [0, 1) for the rollout draw. Default Math.random. */
  random?: () => number;
  /**
   * Called after rows were handed back (released). The store's release already wakes listening
   * relays (NOTIFY); this is for a relay in this process that cannot listen (embedded PGlite).
   */
  onHandBack?: () => void;
}

export interface OptimisticSenderStats {
  /** Attempts started (one claim + publish round for the ids of the commits queued together). */
  attempts: number;
  /** Messages selected by the rollout. */
  selected: number;
  /** Messages this publisher claimed. */
  claimed: number;
  /** Published and recorded as sent by this publisher. */
  sent: number;
  /** Claimed but handed back to the relay (broker error, timeout, stop). */
  released: number;
  /**
   * Acked, or failed, but the claim was lost before that was recorded (the relay may publish them
   * again): the `stale_claim` events.
   */
  staleMarks: number;
  /** Selected but never claimed in time (a relay took them first, or not claimable before the deadline). */
  leftToRelay: number;
  /** Selected but not tried: `maxConcurrent` attempts in flight and the queue full (backpressure). */
  skippedSaturated: number;
  /** Ids committed and waiting for a free attempt slot right now. */
  queued: number;
  /** Attempts that hit a database error (their rows are left to the relay / reaper). */
  errors: number;
  inFlight: number;
}

interface Resolved {
  enabled: boolean;
  percent: number;
  types: Record<string, number>;
  timeoutMs: number;
  maxConcurrent: number;
  leaseMs: number;
  publishBatchSize: number;
}

const DEFAULTS: Resolved = {
  enabled: false,
  percent: 100,
  types: {},
  timeoutMs: 500,
  maxConcurrent: 32,
  leaseMs: 10_000,
  publishBatchSize: 100,
};

/** First wait before claiming rows again that were not claimable yet (behind their key's head). */
const FIRST_RETRY_MS = 2;
const MAX_RETRY_MS = 20;
/** At most one warning per this interval for failing optimistic publishes (the relay has them). */
const WARN_EVERY_MS = 10_000;

/** One message's outcome in a round. */
type RoundResult = { ok: true } | { ok: false; error: string; reason: OutboxFailureReason };

/** What the publisher needs of a committed message. */
export type OptimisticCandidate = Pick<NewOutboxMessage, 'id' | 'type'>;

/**
 * Optimistic sending: right after a transaction that wrote outbox rows commits, the producing
 * process claims exactly those rows, with the relay's own claim (same eligibility, same
 * conditional `pending → claimed` transition, restricted to the ids: OutboxStore.claimByIds), and
 * publishes them at once, instead of waiting for a relay to notice them.
 *
 * It is only a fast path; the outbox guarantees do not depend on it:
 * - the relay and this publisher can race on the same rows: the claim gives each row to one of
 *   them; marking sent is fenced by the claim token, exactly like the relay;
 * - per-key order holds because the claim is the relay's claim: a row that
 *   is not claimable yet is retried briefly (within `timeoutMs`), then left to the relay;
 * - on a broker error, a timeout or stop, claimed rows are released (back to pending, due now,
 *   attempts unchanged: the single optimistic try is not counted) and the relay publishes them;
 * - it never blocks or fails the committing caller: `afterCommit` returns at once, attempts run in
 *   the background, at most `maxConcurrent` at a time, commits landing close together sharing one
 *   attempt; beyond that and a bounded queue, commits are skipped (their rows
 *   simply wait for the relay) and counted;
 * - if the process dies while holding claims, the rows are freed by a relay's reaper after
 *   `leaseMs` (a message acked by the broker just before the crash is then published twice:
 *   at-least-once, deduplicated downstream by message id).
 *
 * Emits the relay's outbox events with `path: 'optimistic'`, plus `outbox.skipped`.
 */
export class OptimisticSender {
  private o: Resolved;
  private readonly clock: Clock;
  private readonly logger: SageLogger;
  private readonly random: () => number;
  private readonly events = new OutboxEventEmitter();
  /** Aborted by stop(): in-flight attempts give up and hand their rows back. */
  private readonly stopController = new AbortController();
  private readonly running = new Set<Promise<void>>();
  /** Committed ids waiting for an attempt (see scheduleFlush). */
  private readonly queued: string[] = [];
  /** Committed rows this process claimed at write (claimWrite), waiting for an attempt. */
  private readonly queuedClaimed: ClaimedOutboxMessage[] = [];
  /**
   * The claim token of rows claimed at write (withOptimisticSend over a writer with
   * insertClaimed). One per sender: the fence is the token plus `status = 'claimed'`, and a row a
   * reaper took back and a relay claimed again carries that relay's token.
   */
  readonly writeClaimToken = uuidv7();
  private flushScheduled = false;
  private lastWarnAt = -Infinity;
  private readonly counters = {
    attempts: 0,
    selected: 0,
    claimed: 0,
    sent: 0,
    released: 0,
    staleMarks: 0,
    leftToRelay: 0,
    skippedSaturated: 0,
    errors: 0,
  };

  constructor(private readonly options: OptimisticSenderOptions) {
    if (!options?.store) throw new InvalidOptionsError('outbox.optimistic.store', 'is required');
    if (!options.broker)
      throw new InvalidOptionsError('outbox.optimistic.broker', 'is required (a Broker adapter)');
    this.o = resolveOptimisticSettings(options);
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
    this.random = options.random ?? Math.random;
    // Every in-flight attempt listens for stop: up to maxConcurrent listeners, not a leak.
    setMaxListeners(0, this.stopController.signal);
  }

  get enabled(): boolean {
    return this.o.enabled && !this.stopController.signal.aborted;
  }

  /** Changes the rollout at runtime (e.g. from a feature-flag service). Validated like the options. */
  setRollout(rollout: OptimisticRollout & { enabled?: boolean }): void {
    this.o = resolveOptimisticSettings({ ...this.o, ...rollout });
  }

  /** Subscribes to this publisher's outbox events (path 'optimistic'); returns the unsubscribe function. */
  onEvent(listener: OutboxEventListener): () => void {
    return this.events.on(listener);
  }

  get stats(): OptimisticSenderStats {
    return {
      ...this.counters,
      inFlight: this.running.size,
      queued: this.queued.length + this.queuedClaimed.length,
    };
  }

  /** True when at least one of `messages` would be tried (the flag is on and the rollout may pick it). */
  wants(messages: readonly OptimisticCandidate[]): boolean {
    if (!this.enabled) return false;
    if (this.o.percent > 0) return true;
    return messages.some((m) => (this.o.types[m.type] ?? 0) > 0);
  }

  /**
   * Call right after the transaction that wrote `messages` committed (never before: the claim
   * would find nothing, or worse, nothing yet). Returns at once; never throws.
   */
  afterCommit(messages: readonly OptimisticCandidate[]): void {
    if (!this.enabled || !messages.length) return;
    const ids = messages.filter((m) => this.selected(m.type)).map((m) => m.id);
    if (!ids.length) return;
    this.counters.selected += ids.length;
    // Backpressure: beyond what the attempts in flight and one queue of the same size can take,
    // the rows are simply left to the relay (counted), so a burst never grows memory or latency.
    if (this.queued.length + ids.length > this.maxQueued) {
      this.skip(ids.length);
      return;
    }
    this.queued.push(...ids);
    this.scheduleFlush();
  }

  /**
   * The rollout's draw for `messages` written in a transaction: the ids to try optimistically
   * (withOptimisticSend claims them at write when the store can, then calls afterCommitSelected).
   */
  select(messages: readonly OptimisticCandidate[]): string[] {
    if (!this.enabled) return [];
    return messages.filter((m) => this.selected(m.type)).map((m) => m.id);
  }

  /** Lease of rows claimed at write (`leaseMs`). */
  get writeLeaseMs(): number {
    return this.o.leaseMs;
  }

  /**
   * After the commit, for rows already drawn by `select`: `claimed` were written claimed by
   * `writeClaimToken` and are published at once, with no claim; `ids` (the rest) are claimed as
   * in afterCommit. If this sender cannot take them (stopped, saturated), the claimed rows are
   * handed back to the relay at once rather than left to their lease. Never throws.
   */
  afterCommitSelected(ids: readonly string[], claimed: readonly ClaimedOutboxMessage[]): void {
    if (!ids.length && !claimed.length) return;
    this.counters.selected += ids.length + claimed.length;
    if (
      !this.enabled ||
      this.queued.length + this.queuedClaimed.length + ids.length + claimed.length > this.maxQueued
    ) {
      this.skip(ids.length + claimed.length);
      this.handBack(claimed);
      return;
    }
    this.queued.push(...ids);
    this.queuedClaimed.push(...claimed);
    this.scheduleFlush();
  }

  /** Releases rows claimed at write that no attempt will publish (the relay takes them now). */
  private handBack(claimed: readonly ClaimedOutboxMessage[]): void {
    if (!claimed.length) return;
    const ids = claimed.map((m) => m.id);
    void this.options.store.release(this.writeClaimToken, ids).then(
      (released) => {
        this.counters.released += released.length;
        if (released.length) this.options.onHandBack?.();
      },
      (error: unknown) =>
        this.warn(
          'optimistic release failed; the rows return to the relay when their lease ends',
          error,
        ),
    );
  }

  /**
   * Commits that land close together share one attempt (one claim, one publish round, one
   * mark-sent for all their rows): at a thousand commits a second, a round trip per commit would
   * cost more than the relay it tries to beat. Queued ids start as soon as the current event-loop
   * turn ends, or when an attempt frees a slot.
   */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (
      (this.queued.length || this.queuedClaimed.length) &&
      this.running.size < this.o.maxConcurrent &&
      this.enabled
    ) {
      const claimed = this.queuedClaimed.splice(0, this.maxAttemptIds);
      const ids = this.queued.splice(0, this.maxAttemptIds - claimed.length);
      this.counters.attempts++;
      const attempt = this.attempt(ids, claimed).catch((error: unknown) => {
        // attempt() handles its own failures; this is the last line of defence, never reached
        // in practice, so that nothing escapes to the caller's process as an unhandled rejection.
        this.counters.errors++;
        this.warn(
          'optimistic publish failed unexpectedly; the relay publishes its messages',
          error,
        );
      });
      this.running.add(attempt);
      void attempt.finally(() => {
        this.running.delete(attempt);
        if (this.queued.length || this.queuedClaimed.length) this.scheduleFlush();
      });
    }
    if (!this.enabled && (this.queued.length || this.queuedClaimed.length)) {
      const claimed = this.queuedClaimed.splice(0);
      this.skip(this.queued.splice(0).length + claimed.length);
      this.handBack(claimed);
    }
  }

  private skip(count: number): void {
    this.counters.skippedSaturated += count;
    if (this.events.active)
      this.events.emit({
        type: 'outbox.skipped',
        path: 'optimistic',
        reason: 'saturated',
        count,
        at: this.clock.now(),
      });
  }

  /** Ids one attempt takes at most (several publish chunks). */
  private get maxAttemptIds(): number {
    return this.o.publishBatchSize * 4;
  }

  /** Ids that may wait for a free attempt slot. */
  private get maxQueued(): number {
    return this.o.maxConcurrent * this.maxAttemptIds;
  }

  /**
   * No new attempts; in-flight ones give up at once, hand their claimed rows back to the relay
   * and are awaited (each is bounded by `timeoutMs` plus its database calls).
   */
  async stop(): Promise<void> {
    this.stopController.abort(new Error('optimistic sender stopped'));
    if (this.queued.length) this.counters.leftToRelay += this.queued.splice(0).length;
    const claimed = this.queuedClaimed.splice(0);
    if (claimed.length) {
      this.counters.leftToRelay += claimed.length;
      try {
        this.counters.released += (
          await this.options.store.release(
            this.writeClaimToken,
            claimed.map((m) => m.id),
          )
        ).length;
      } catch (error) {
        this.warn(
          'optimistic release failed; the rows return to the relay when their lease ends',
          error,
        );
      }
    }
    await Promise.allSettled([...this.running]);
  }

  /** Resolves once no attempt is in flight (tests, graceful drains). */
  async idle(): Promise<void> {
    while (
      this.running.size ||
      this.queued.length ||
      this.queuedClaimed.length ||
      this.flushScheduled
    ) {
      if (this.running.size) await Promise.allSettled([...this.running]);
      else await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private selected(type: string): boolean {
    const percent = this.o.types[type] ?? this.o.percent;
    if (percent >= 100) return true;
    if (percent <= 0) return false;
    return this.random() * 100 < percent;
  }

  /**
   * Committed selected rows: first those claimed at write (`atWrite`, published at once), then
   * `ids`: claim what is claimable, publish, record; repeat for rows that became claimable, until
   * done or the deadline.
   */
  private async attempt(ids: string[], atWrite: ClaimedOutboxMessage[] = []): Promise<void> {
    const claimToken = uuidv7();
    const deadline = new AbortController();
    // The broker listens on it once per message in flight (a batch is many): not a leak.
    setMaxListeners(0, deadline.signal);
    const stop = this.stopController.signal;
    const onStop = (): void => deadline.abort(stop.reason);
    stop.addEventListener('abort', onStop, { once: true });
    const timer = setTimeout(
      () => deadline.abort(new Error(`optimistic publish timed out after ${this.o.timeoutMs} ms`)),
      this.o.timeoutMs,
    );
    timer.unref?.();
    let remaining = ids;
    let retryMs = FIRST_RETRY_MS;
    try {
      if (atWrite.length) {
        const clean = await this.publishRound(this.writeClaimToken, atWrite, deadline.signal);
        if (!clean) return; // the rest of those keys would wait behind the released rows anyway
      }
      while (remaining.length && !deadline.signal.aborted) {
        let claimed: ClaimedOutboxMessage[];
        let waiting: string[];
        try {
          ({ claimed, waiting } = await this.options.store.claimByIds(
            claimToken,
            remaining,
            this.o.leaseMs,
          ));
        } catch (error) {
          this.counters.errors++;
          this.warn('optimistic claim failed; the relay publishes these messages', error);
          return;
        }
        remaining = waiting;
        if (claimed.length) {
          const clean = await this.publishRound(claimToken, claimed, deadline.signal);
          // After a failure, later messages of the same keys would wait behind the released ones
          // anyway: leave everything to the relay.
          if (!clean) return;
          retryMs = FIRST_RETRY_MS;
        } else if (waiting.length) {
          // Not claimable yet: an earlier message of the key is in flight or backing off. Look again shortly, within the deadline.
          try {
            await this.clock.sleep(retryMs, deadline.signal);
          } catch {
            break; // deadline or stop
          }
          retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
        }
      }
    } finally {
      clearTimeout(timer);
      stop.removeEventListener('abort', onStop);
      this.counters.leftToRelay += remaining.length;
    }
  }

  /** Publishes one claimed round and records it; false when anything did not end as sent. */
  private async publishRound(
    claimToken: string,
    claimed: readonly ClaimedOutboxMessage[],
    signal: AbortSignal,
  ): Promise<boolean> {
    const startedAt = this.clock.now();
    const emitting = this.events.active;
    this.counters.claimed += claimed.length;
    if (emitting)
      this.events.emit({
        type: 'outbox.claimed',
        path: 'optimistic',
        count: claimed.length,
        at: startedAt,
      });
    const acks = new Map<string, { publishMs: number; at: number }>();
    const acked: string[] = [];
    const failed: { id: string; error: string; reason: OutboxFailureReason }[] = [];
    await Promise.all(
      chunk(claimed, this.o.publishBatchSize).map(async (part) => {
        const sentAt = this.clock.now();
        const results = await this.publishWithin(part, signal);
        const ackAt = this.clock.now();
        part.forEach((m, i) => {
          const r = results[i]!;
          if (r.ok) {
            acked.push(m.id);
            acks.set(m.id, { publishMs: ackAt - sentAt, at: ackAt });
          } else {
            failed.push({ id: m.id, error: r.error, reason: r.reason });
          }
        });
      }),
    );

    let marked: string[] = [];
    let released: string[] = [];
    let dbError = false;
    /** Whether mark-sent / release ran: then an id they did not record had lost its claim. */
    let markRecorded = false;
    let releaseRecorded = false;
    try {
      marked = await this.options.store.markSent(claimToken, acked);
      markRecorded = true;
    } catch (error) {
      // The rows stay claimed until their lease ends; the reaper then hands them to a relay,
      // which publishes them again (at-least-once).
      dbError = true;
      this.counters.errors++;
      this.warn('optimistic mark-sent failed; these messages will be published again', error);
    }
    if (failed.length) {
      try {
        released = await this.options.store.release(
          claimToken,
          failed.map((f) => f.id),
        );
        releaseRecorded = true;
      } catch (error) {
        dbError = true;
        this.counters.errors++;
        this.warn(
          'optimistic release failed; the rows return to the relay when their lease ends',
          error,
        );
      }
      this.warn(
        `optimistic publish of ${failed.length} message(s) failed (${failed[0]!.reason}); handed back to the relay`,
        failed[0]!.error,
      );
    }
    const handedBack = new Set(released);
    const lostFailures = releaseRecorded ? failed.filter((f) => !handedBack.has(f.id)).length : 0;
    const staleMarks = (markRecorded ? acked.length - marked.length : 0) + lostFailures;
    this.counters.sent += marked.length;
    this.counters.released += released.length;
    if (released.length) this.options.onHandBack?.();
    this.counters.staleMarks += staleMarks;
    if (staleMarks) {
      this.logger.warn(
        'optimistic sender lost claims before recording them; those messages may be published twice',
        { event: 'outbox.optimistic.stale_claim', claimToken, staleMarks },
      );
    }
    if (emitting) {
      emitOutcomeEvents(this.events, 'optimistic', {
        claimed,
        acks: markRecorded ? acks : new Map(),
        marked,
        failed: failed.map((f) => ({
          ...f,
          deadLettered: false,
          claimLost: releaseRecorded && !handedBack.has(f.id),
        })),
        released: released.length,
        startedAt,
        now: this.clock.now(),
      });
    }
    return !dbError && !failed.length && staleMarks === 0;
  }

  /**
   * One broker call bounded by the attempt's deadline. A broker that ignores the abort signal is
   * not waited for: its call is abandoned (its late outcome ignored) and the messages reported as
   * timed out, so their rows go back to the relay on time. A late ack then means a duplicate,
   * which is what `outbox.failed` with reason `timeout` counts.
   */
  private async publishWithin(
    part: readonly ClaimedOutboxMessage[],
    signal: AbortSignal,
  ): Promise<RoundResult[]> {
    const batch: BrokerMessage[] = part.map(toBrokerMessage);
    const fail = (error: string, reason: OutboxFailureReason) =>
      part.map(() => ({ ok: false as const, error, reason }));
    if (signal.aborted) return fail(abortMessage(signal), 'timeout');
    let call: Promise<PublishResult[]>;
    try {
      call = this.options.broker.publish(batch, signal);
    } catch (error) {
      call = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    try {
      // Undefined once the signal aborts; an abandoned call's later rejection is handled.
      const outcome = await raceAbort(call, signal);
      if (outcome === undefined) return fail(abortMessage(signal), 'timeout');
      const byId = new Map(outcome.map((r) => [r.id, r]));
      return part.map((m) => {
        const r = byId.get(m.id);
        if (!r)
          return {
            ok: false as const,
            error: `broker "${this.options.broker.name}" returned no result for this message`,
            reason: 'broker_error' as const,
          };
        return r.ok
          ? { ok: true as const }
          : { ok: false as const, error: r.error, reason: 'broker_error' as const };
      });
    } catch (error) {
      if (signal.aborted) return fail(abortMessage(signal), 'timeout');
      const message = errorText(error);
      return fail(
        `broker "${this.options.broker.name}" publish failed: ${message}`,
        'broker_error',
      );
    }
  }

  private warn(message: string, error: unknown): void {
    const now = this.clock.now();
    const fields = {
      event: 'outbox.optimistic.failed',
      error: errorText(error),
    };
    if (now - this.lastWarnAt < WARN_EVERY_MS) {
      this.logger.debug(message, fields);
      return;
    }
    this.lastWarnAt = now;
    this.logger.warn(message, fields);
  }
}

/**
 * Writes through `writer` and, once the transaction that wrote the messages has committed, hands
 * them to `publisher` (all messages of one transaction together, in one attempt). Rolled-back
 * transactions hand over nothing. This is how `outbox.publish()` and saga steps' `ctx.emit()` get
 * optimistic sending without knowing about it.
 */
export function withOptimisticSend<Tx>(
  writer: OutboxWriter<Tx>,
  hooks: TransactionCommitHooks<Tx>,
  publisher: OptimisticSender,
): OutboxWriter<Tx> {
  /** Per open transaction handle: the rows drawn so far (one attempt per transaction). */
  const pending = new WeakMap<object, { ids: string[]; claimed: ClaimedOutboxMessage[] }>();
  return {
    isTransaction: (tx) => writer.isTransaction(tx),
    async insert(tx, messages) {
      if (!messages.length || !publisher.wants(messages)) return writer.insert(tx, messages);
      const key = tx as unknown as object;
      let entry = pending.get(key);
      if (!entry) {
        // Observe the transaction's end before claiming anything at write: a claim nobody would
        // publish after the commit would hold its key until the lease ran out.
        const fresh = { ids: [] as string[], claimed: [] as ClaimedOutboxMessage[] };
        const observed = hooks.onTransactionEnd(tx, (committed) => {
          const written = pending.get(key);
          pending.delete(key);
          if (committed && written) publisher.afterCommitSelected(written.ids, written.claimed);
        });
        if (!observed) return writer.insert(tx, messages);
        pending.set(key, fresh);
        entry = fresh;
      }
      const selected = publisher.select(messages);
      if (!selected.length || !writer.insertClaimed) {
        await writer.insert(tx, messages);
        entry.ids.push(...selected);
        return;
      }
      const claimed = await writer.insertClaimed(tx, messages, {
        claimToken: publisher.writeClaimToken,
        leaseMs: publisher.writeLeaseMs,
        ids: selected,
      });
      const atWrite = new Set(claimed.map((m) => m.id));
      entry.claimed.push(...claimed);
      entry.ids.push(...selected.filter((id) => !atWrite.has(id)));
    },
  };
}

/** Validates optimistic settings; InvalidOptionsError names the option (`outbox.optimistic.*`). */
export function resolveOptimisticSettings(s: OptimisticSenderSettings): Resolved {
  const o: Resolved = { ...DEFAULTS, types: {} };
  const name = (key: string): string => `outbox.optimistic.${key}`;
  if (s.enabled !== undefined) {
    if (typeof s.enabled !== 'boolean')
      throw new InvalidOptionsError(name('enabled'), `must be a boolean, got ${String(s.enabled)}`);
    o.enabled = s.enabled;
  }
  const percent = (key: string, v: unknown): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 100)
      throw new InvalidOptionsError(name(key), `must be a number from 0 to 100, got ${String(v)}`);
    return v;
  };
  if (s.percent !== undefined) o.percent = percent('percent', s.percent);
  if (s.types !== undefined) {
    if (typeof s.types !== 'object' || s.types === null || Array.isArray(s.types))
      throw new InvalidOptionsError(
        name('types'),
        'must be an object of message type → percent (0–100)',
      );
    for (const [type, v] of Object.entries(s.types)) o.types[type] = percent(`types.${type}`, v);
  }
  for (const key of ['timeoutMs', 'maxConcurrent', 'leaseMs', 'publishBatchSize'] as const) {
    const v = s[key];
    if (v === undefined) continue;
    const integer = key === 'maxConcurrent' || key === 'publishBatchSize';
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v)))
      throw new InvalidOptionsError(
        name(key),
        `must be a positive ${integer ? 'integer' : 'number'}, got ${String(v)}`,
      );
    o[key] = v;
  }
  if (s.leaseMs === undefined) o.leaseMs = Math.max(DEFAULTS.leaseMs, 2 * o.timeoutMs);
  if (o.leaseMs <= o.timeoutMs)
    throw new InvalidOptionsError(
      name('leaseMs'),
      `must exceed timeoutMs (${o.timeoutMs}), got ${o.leaseMs}: a claim must outlive the attempt holding it`,
    );
  return o;
}

function abortMessage(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason.message : 'optimistic publish aborted';
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
