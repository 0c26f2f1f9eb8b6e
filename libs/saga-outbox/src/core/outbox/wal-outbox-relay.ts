import { setMaxListeners } from 'node:events';
import { InvalidOptionsError } from '../errors';
import { errorText } from '../error-text';
import { SingleFlightLoop, type LoopStats } from '../loop';
import type { Broker, PublishResult } from '../ports/broker';
import { systemClock, type Clock } from '../ports/clock';
import { silentLogger, type SageLogger } from '../ports/logger';
import type { WalOutboxSession, WalOutboxSource, WalSlotLag } from '../ports/wal-outbox-source';
import { uuidv7 } from '../uuid';
import { OutboxEventEmitter, type OutboxEventListener } from './outbox-events';
import type { ClaimedOutboxMessage } from './outbox-message';
import { brokerOutageDelayMs, OUTAGE_LOG_INTERVAL_MS, publishRelayChunk } from './relay-publish';
import { failureOutcome, resolveOutboxRetryPolicy, type OutboxRetryPolicy } from './outbox-retry';
import { WalDeliveryWindow } from './wal-delivery-window';

export interface WalOutboxRelayOptions {
  source: WalOutboxSource;
  broker: Broker;
  clock?: Clock;
  logger?: SageLogger;
  /** Identity in logs. Default: a fresh UUIDv7. */
  relayId?: string;
  /** Messages per broker `publish()` call. Default 100. */
  publishBatchSize?: number;
  /** Broker `publish()` calls in flight at once. Default 8. */
  maxInFlight?: number;
  /**
   * Messages received but not yet confirmed (published or not) at which the relay stops reading
   * the stream (the server then waits): it bounds memory, and the duplicates a crash can cause,
   * at `maxWindow` plus one transaction's messages (see WalDeliveryWindow). Default 10000.
   */
  maxWindow?: number;
  /** While another streamer holds the slot, how often this one tries to take over. Default 1000. */
  standbyRetryMs?: number;
  retry?: Partial<OutboxRetryPolicy>;
  /** Bound on graceful shutdown: in-flight publishes are waited for this long. Default 10000. */
  shutdownTimeoutMs?: number;
  /**
   * Run once each time this relay becomes the slot's streamer, before it streams: publishes what
   * the stream will not deliver (rows written before the slot existed, replayed dead letters). The
   * Nest wiring drains the polling relay's claim path here. Returns the ids it published: the
   * stream skips them when it delivers them again (rows committed after the confirmed position).
   * `emit` reports what it does as this relay's events (`onEvent`: metrics, logs), like the
   * stream's.
   */
  catchUp?: (signal: AbortSignal, emit: OutboxEventListener) => Promise<ReadonlySet<string>>;
  /**
   * While streaming, every `catchUpCheckMs`: are there rows the stream will not deliver (a dead
   * letter replayed since, a claim left by a cut-short catch-up whose lease is over)? When it says
   * so, the relay pauses the stream, finishes what it holds, runs `catchUp` again and streams on.
   * Without it, such rows wait for the next takeover.
   */
  catchUpCheck?: () => Promise<boolean>;
  /** How often `catchUpCheck` runs while streaming. Default 5000. */
  catchUpCheckMs?: number;
}

export interface WalOutboxRelayStats {
  /** This relay streams from the slot now (false: standing by, or stopped). */
  leader: boolean;
  /** Messages received from the stream. */
  streamed: number;
  sent: number;
  retried: number;
  deadLettered: number;
  /** Publish calls. */
  batches: number;
  /** Messages held unfinished in memory. */
  window: number;
  /** Last position confirmed to the slot, as `X/Y`. */
  confirmedLsn: string;
  /** Times this relay lost the slot while streaming (connection lost, fenced). */
  sessionsLost: number;
  loop: LoopStats;
}

const DEFAULTS = {
  publishBatchSize: 100,
  maxInFlight: 8,
  maxWindow: 10_000,
  standbyRetryMs: 1000,
  shutdownTimeoutMs: 10_000,
  catchUpCheckMs: 5000,
};
type Resolved = typeof DEFAULTS;

/** After a failed mark-sent / dead-letter write (database unreachable), try again this soon. */
const RECORD_RETRY_MS = 200;

/**
 * A catch-up while streaming needs a moment when the relay holds no unfinished message. It waits
 * for one this long while streaming on, then this long again with the stream paused; failing that
 * (a message retrying, a broker outage) it streams on, and checks again less often (doubling up to
 * CATCH_UP_MAX_CHECK_MS), so a long retry costs the stream at most a short pause now and then.
 */
const CATCH_UP_SETTLE_MS = 2000;
const CATCH_UP_MAX_CHECK_MS = 60_000;

/**
 * A streamed message whose row a record has not seen for this long is taken as removed and
 * finished. Rows become visible within moments of streaming (see WalFencedResult.unseen).
 */
export const WAL_UNSEEN_GIVE_UP_MS = 30_000;

/** `0/16B3748` as PostgreSQL prints an LSN. */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/**
 * The WAL-streaming outbox relay: outbox rows reach it through PostgreSQL logical decoding, in
 * commit order, the moment their transaction commits (no claim, no commit watermark). It publishes
 * them through the same Broker port as the polling relay, records the outcome (pending → sent, or
 * → dead_letter), and only then confirms the replication slot past them.
 *
 * - One streamer per slot: PostgreSQL lets one session stream from a slot at a time; the others
 *   stand by and try again every `standbyRetryMs`. The holder's writes are fenced on the slot's
 *   active holder, and only the holder's connection can confirm.
 * - Crash safety: the slot is confirmed only up to the end of the last transaction all of whose
 *   messages (and all before) are acked and recorded; after a crash the stream resumes there, so a
 *   message is never lost and duplicates are bounded by the unconfirmed window (`maxWindow`).
 * - Order: per key, one message at the broker at a time, in commit order, never overtaken by a
 *   retry (WalDeliveryWindow).
 */
export class WalOutboxRelay {
  readonly relayId: string;
  private readonly o: Resolved;
  private readonly retry: OutboxRetryPolicy;
  private readonly clock: Clock;
  private readonly logger: SageLogger;
  private readonly loop: SingleFlightLoop;
  private readonly events = new OutboxEventEmitter();
  private readonly loopController = new AbortController();
  private readonly hardStop = new AbortController();
  private stopping = false;
  private started = false;
  private session: WalSessionRun | undefined;
  private lastStandbyLog = Number.NEGATIVE_INFINITY;
  private readonly counters = {
    streamed: 0,
    sent: 0,
    retried: 0,
    deadLettered: 0,
    batches: 0,
    sessionsLost: 0,
  };
  private confirmed = 0n;
  /** Process clock of the last transaction or keepalive received while streaming. */
  private lastStreamAt = 0;

  constructor(private readonly options: WalOutboxRelayOptions) {
    this.o = resolveWalRelayOptions(options);
    this.retry = resolveOutboxRetryPolicy(options.retry);
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
    this.relayId = options.relayId ?? uuidv7();
    setMaxListeners(0, this.hardStop.signal);
    this.loop = new SingleFlightLoop({
      name: 'outbox-wal-relay',
      intervalMs: this.o.standbyRetryMs,
      errorBackoff: { firstMs: Math.min(this.o.standbyRetryMs, 200), maxMs: 2000 },
      tick: (signal) => this.tick(signal),
      clock: this.clock,
      logger: this.logger,
    });
  }

  /**
   * Checks what no retry fixes (wal_level, the publication, the slot; creating the slot if
   * missing) and throws its typed error: call before `start()` to fail a misconfigured startup.
   */
  check(): Promise<void> {
    return this.options.source.check();
  }

  start(): void {
    if (this.started || this.stopping) return;
    this.started = true;
    this.loop.start(this.loopController.signal);
  }

  /** Stops streaming: in-flight publishes get `shutdownTimeoutMs` to finish and be recorded. */
  async stop(): Promise<void> {
    if (this.stopping) {
      await this.loop.stopped();
      return;
    }
    this.stopping = true;
    this.loopController.abort();
    const bound = setTimeout(
      () => this.hardStop.abort(new Error('outbox WAL relay: shutdown bound reached')),
      this.o.shutdownTimeoutMs,
    );
    try {
      await this.session?.stop();
      await this.loop.stopped();
    } finally {
      clearTimeout(bound);
    }
  }

  onEvent(listener: OutboxEventListener): () => void {
    return this.events.on(listener);
  }

  /** The slot's lag (for the `outbox_wal_slot_lag_bytes` gauge). */
  slotLag(): Promise<WalSlotLag | null> {
    return this.options.source.slotLag();
  }

  get stats(): WalOutboxRelayStats {
    return {
      ...this.counters,
      leader: this.session !== undefined,
      window: this.session?.window.size ?? 0,
      confirmedLsn: formatLsn(this.confirmed),
      // A streaming session is one long tick: the stream's own traffic (transactions, and the
      // keepalive the server answers each status update with) is what shows the relay alive.
      loop: {
        ...this.loop.stats,
        lastTickAt: Math.max(this.loop.stats.lastTickAt ?? 0, this.lastStreamAt) || null,
      },
    };
  }

  /** One leadership attempt: stream until the session ends (or stand by if the slot is taken). */
  private async tick(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    const run = new WalSessionRun(this, this.o, signal);
    const session = await this.options.source.open(run.handlers);
    if (!session) {
      const now = this.clock.now();
      if (now - this.lastStandbyLog >= 60_000) {
        this.lastStandbyLog = now;
        this.logger.info('outbox WAL relay standing by: another streamer holds the slot', {
          event: 'outbox.wal.standby',
          relayId: this.relayId,
        });
      }
      return;
    }
    this.session = run;
    this.lastStandbyLog = Number.NEGATIVE_INFINITY;
    this.logger.info('outbox WAL relay streaming', {
      event: 'outbox.wal.leader',
      relayId: this.relayId,
      holder: session.holder,
      fromLsn: formatLsn(session.startLsn),
    });
    try {
      const error = await run.stream(session);
      if (error && !signal.aborted) {
        this.counters.sessionsLost++;
        throw error;
      }
    } finally {
      this.session = undefined;
    }
  }

  /** Internal plumbing for WalSessionRun. */
  get internals(): RelayInternals {
    return {
      broker: this.options.broker,
      retry: this.retry,
      clock: this.clock,
      logger: this.logger,
      relayId: this.relayId,
      events: this.events,
      counters: this.counters,
      hardStop: this.hardStop.signal,
      catchUp: this.options.catchUp,
      catchUpCheck: this.options.catchUpCheck,
      setConfirmed: (lsn) => (this.confirmed = lsn),
      touch: () => (this.lastStreamAt = this.clock.now()),
    };
  }
}

interface RelayInternals {
  broker: Broker;
  retry: OutboxRetryPolicy;
  clock: Clock;
  logger: SageLogger;
  relayId: string;
  events: OutboxEventEmitter;
  counters: {
    streamed: number;
    sent: number;
    retried: number;
    deadLettered: number;
    batches: number;
  };
  hardStop: AbortSignal;
  catchUp: WalOutboxRelayOptions['catchUp'];
  catchUpCheck: WalOutboxRelayOptions['catchUpCheck'];
  setConfirmed: (lsn: bigint) => void;
  /** The stream delivered something: the relay is alive. */
  touch: () => void;
}

/** One streaming session's state: window, publishes in flight, pending records, confirmation. */
class WalSessionRun {
  readonly window = new WalDeliveryWindow();
  private readonly r: RelayInternals;
  private session: WalOutboxSession | undefined;
  private inFlight = 0;
  private paused = false;
  private readonly acked: ClaimedOutboxMessage[] = [];
  private readonly ackInfo = new Map<string, { publishMs: number; at: number }>();
  private readonly dead: { message: ClaimedOutboxMessage; error: string }[] = [];
  private recording = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private dueTimer: NodeJS.Timeout | undefined;
  /** Outcomes whose row the record did not see yet (see `recorded`), and since when. */
  private readonly unseenAcked: ClaimedOutboxMessage[] = [];
  private readonly unseenDead: { message: ClaimedOutboxMessage; error: string }[] = [];
  private readonly unseenSince = new Map<string, number>();
  private recheckTimer: NodeJS.Timeout | undefined;
  private confirmedLsn = 0n;
  private readonly attempts = new Map<string, number>();
  private outageStreak = 0;
  private lastOutageLogAt = Number.NEGATIVE_INFINITY;
  /** Resolves with why the session ended. */
  private endResolve!: (error: Error | undefined) => void;
  private readonly ended = new Promise<Error | undefined>((resolve) => (this.endResolve = resolve));
  private isEnded = false;
  private draining = false;
  private readonly idleWaiters: (() => void)[] = [];
  private streaming = false;
  /** Ids a catch-up published: the stream skips them when it delivers them (once). */
  private readonly caughtUp = new Set<string>();
  private checkTimer: NodeJS.Timeout | undefined;
  private checkEveryMs = 0;
  /** A catch-up while streaming, in progress. */
  private catchingUp: Promise<void> | undefined;
  private readonly early: (() => void)[] = [];

  constructor(
    relay: WalOutboxRelay,
    private readonly o: Resolved,
    private readonly signal: AbortSignal,
  ) {
    this.r = relay.internals;
  }

  readonly handlers = {
    onTransaction: (tx: { endLsn: bigint; messages: ClaimedOutboxMessage[] }): void => {
      this.r.touch();
      if (!this.streaming) {
        // Before catch-up finished: keep the order, start once it is done.
        this.early.push(() => this.handlers.onTransaction(tx));
        return;
      }
      this.r.counters.streamed += tx.messages.length;
      // Sent by the catch-up already (committed after the confirmed position): not again.
      const messages = this.caughtUp.size
        ? tx.messages.filter((m) => !this.caughtUp.delete(m.id))
        : tx.messages;
      for (const m of messages) this.attempts.set(m.id, m.attempts);
      this.window.add({ endLsn: tx.endLsn, messages });
      if (!this.paused && this.window.unconfirmed >= this.o.maxWindow) {
        this.paused = true;
        this.session?.pause();
      }
      this.confirm();
      this.pump();
    },
    onKeepalive: (walEnd: bigint): void => {
      this.r.touch();
      if (!this.streaming) return;
      this.window.idle(walEnd);
      this.confirm();
    },
    onClose: (error: Error | undefined): void => this.end(error),
  };

  /** Streams until the session ends; resolves with why (undefined after a requested stop). */
  async stream(session: WalOutboxSession): Promise<Error | undefined> {
    this.session = session;
    this.confirmedLsn = session.startLsn;
    this.r.setConfirmed(session.startLsn);
    if (this.r.catchUp) {
      // What streams in meanwhile waits in the server, not in memory.
      session.pause();
      try {
        await this.runCatchUp();
      } catch (error) {
        await session.close().catch(() => undefined);
        throw error;
      }
    }
    this.streaming = true;
    for (const f of this.early.splice(0)) f();
    if (this.r.catchUp && !this.paused) session.resume();
    if (this.signal.aborted) void this.stop();
    this.scheduleCheck();
    const error = await this.ended;
    clearTimeout(this.retryTimer);
    clearTimeout(this.dueTimer);
    clearTimeout(this.recheckTimer);
    clearTimeout(this.checkTimer);
    await this.catchingUp;
    return error;
  }

  /** Runs the catch-up; what it published, the stream skips. */
  private async runCatchUp(): Promise<void> {
    const published = await this.r.catchUp!(this.signal, (event) => this.r.events.emit(event));
    for (const id of published) this.caughtUp.add(id);
    if (published.size)
      this.r.logger.info('outbox WAL relay published rows the stream does not carry', {
        event: 'outbox.wal.catch_up',
        relayId: this.r.relayId,
        published: published.size,
      });
  }

  private scheduleCheck(): void {
    if (!this.r.catchUp || !this.r.catchUpCheck || this.isEnded || this.draining) return;
    if (!this.checkEveryMs) this.checkEveryMs = this.o.catchUpCheckMs;
    this.checkTimer = setTimeout(() => {
      this.catchingUp = this.catchUpWhileStreaming().finally(() => {
        this.catchingUp = undefined;
        this.scheduleCheck();
      });
    }, this.checkEveryMs);
    this.checkTimer.unref?.();
  }

  /**
   * When rows wait that the stream will not deliver (catchUpCheck), the catch-up runs again: at a
   * moment when every message the relay holds is finished, with the stream paused (what arrives
   * meanwhile waits, in order), so per key nothing it publishes can overtake or be overtaken by a
   * streamed message.
   */
  private async catchUpWhileStreaming(): Promise<void> {
    try {
      if (!(await this.r.catchUpCheck!())) return;
    } catch {
      return; // database unreachable: the next check tries again
    }
    // A moment with nothing unfinished, streaming on; else paused, briefly (see CATCH_UP_SETTLE_MS).
    let ready = await this.settled(CATCH_UP_SETTLE_MS);
    if (this.isEnded || this.draining) return;
    this.streaming = false;
    this.session?.pause();
    try {
      if (!ready) ready = await this.settled(CATCH_UP_SETTLE_MS);
      if (!ready) {
        this.checkEveryMs = Math.min(this.checkEveryMs * 2, CATCH_UP_MAX_CHECK_MS);
        return;
      }
      this.checkEveryMs = this.o.catchUpCheckMs;
      await this.runCatchUp();
    } catch (error) {
      this.r.logger.warn('outbox WAL relay catch-up failed; it streams on and tries again', {
        event: 'outbox.wal.catch_up_error',
        relayId: this.r.relayId,
        error: errorText(error),
      });
    } finally {
      this.streaming = true;
      for (const f of this.early.splice(0)) f();
      if (!this.paused && !this.isEnded) this.session?.resume();
    }
  }

  /** Resolves true once nothing the relay holds is unfinished; false on timeout or session end. */
  private async settled(timeoutMs: number): Promise<boolean> {
    const deadline = this.r.clock.now() + timeoutMs;
    for (;;) {
      if (this.isEnded || this.draining || this.signal.aborted) return false;
      const idle =
        this.window.size === 0 &&
        this.inFlight === 0 &&
        !this.recording &&
        !this.acked.length &&
        !this.dead.length &&
        !this.unseenAcked.length &&
        !this.unseenDead.length;
      if (idle) return true;
      if (this.r.clock.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Graceful end: no new publishes; in-flight ones finish (within the relay's bound) and are recorded. */
  async stop(): Promise<void> {
    if (this.draining) return void (await this.ended);
    this.draining = true;
    await new Promise<void>((resolve) => {
      if (this.inFlight === 0 && !this.recording) resolve();
      else this.idleWaiters.push(resolve);
    });
    // One more try for outcomes whose rows were not visible yet; what stays unrecorded is not
    // confirmed, and the next streamer sends it again.
    clearTimeout(this.recheckTimer);
    this.recheckTimer = undefined;
    this.acked.push(...this.unseenAcked.splice(0));
    this.dead.push(...this.unseenDead.splice(0));
    await this.record();
    this.confirm();
    await this.session?.close().catch(() => undefined);
    this.end(undefined);
  }

  private end(error: Error | undefined): void {
    if (this.isEnded) return;
    this.isEnded = true;
    this.endResolve(error);
  }

  private confirm(): void {
    const lsn = this.window.confirmableLsn;
    if (lsn > this.confirmedLsn && this.session && !this.isEnded) {
      this.confirmedLsn = lsn;
      this.r.setConfirmed(lsn);
      this.session.confirm(lsn);
    }
  }

  private pump(): void {
    if (this.draining || this.isEnded || !this.session) return;
    const now = this.r.clock.now();
    while (this.inFlight < this.o.maxInFlight) {
      const batch = this.window.take(this.o.publishBatchSize, now);
      if (!batch.length) break;
      this.inFlight++;
      void this.publish(batch).finally(() => {
        this.inFlight--;
        this.settle();
      });
    }
    this.scheduleDue();
  }

  private settle(): void {
    if (this.inFlight === 0 && !this.recording && this.draining)
      for (const w of this.idleWaiters.splice(0)) w();
    this.pump();
  }

  private scheduleDue(): void {
    clearTimeout(this.dueTimer);
    const due = this.window.nextDueAt();
    if (due === undefined || this.isEnded) return;
    this.dueTimer = setTimeout(() => this.pump(), Math.max(1, due - this.r.clock.now()));
    this.dueTimer.unref?.();
  }

  private async publish(batch: ClaimedOutboxMessage[]): Promise<void> {
    const sentAt = this.r.clock.now();
    const results = await this.publishChunk(batch);
    const ackAt = this.r.clock.now();
    this.r.counters.batches++;
    let anyAck = false;
    let unreachable: string | undefined;
    const outageDelay = this.outageDelayMs();
    batch.forEach((message, i) => {
      const result = results[i]!;
      if (result.ok) {
        anyAck = true;
        this.acked.push(message);
        this.ackInfo.set(message.id, { publishMs: ackAt - sentAt, at: ackAt });
        return;
      }
      if (result.unavailable === true && result.retryable) {
        unreachable = result.error;
        this.window.retryAt(message.id, ackAt + outageDelay);
        return;
      }
      const attempts = this.attempts.get(message.id) ?? message.attempts;
      const outcome = failureOutcome(this.r.retry, attempts, result.retryable);
      this.attempts.set(message.id, attempts + 1);
      this.emitFailed(message, result.error, outcome.kind === 'dead_letter');
      if (outcome.kind === 'retry') {
        this.r.counters.retried++;
        this.window.retryAt(message.id, ackAt + outcome.delayMs);
        this.r.logger.warn('outbox message publish failed; will retry', {
          event: 'outbox.message.retry',
          relayId: this.r.relayId,
          messageId: message.id,
          destination: message.destination,
          type: message.type,
          key: message.key,
          attempt: attempts + 1,
          retryInMs: outcome.delayMs,
          error: result.error,
        });
      } else this.dead.push({ message, error: result.error });
    });
    if (anyAck) this.outageStreak = 0;
    else if (unreachable !== undefined) {
      this.outageStreak++;
      this.logOutage(outageDelay, unreachable);
    }
    await this.record();
  }

  /**
   * Writes the outcomes (mark sent, dead letters) fenced on the slot; once written, the messages
   * are finished and the slot may be confirmed past them. Single-flight; a failed write is retried.
   */
  private async record(): Promise<void> {
    if (this.recording || !this.session) return;
    this.recording = true;
    try {
      while ((this.acked.length || this.dead.length) && !this.isEnded) {
        const acked = this.acked.splice(0);
        const dead = this.dead.splice(0);
        let sent: ClaimedOutboxMessage[] = [];
        let failed: { message: ClaimedOutboxMessage; error: string }[] = [];
        let ackedRecorded = false;
        try {
          if (acked.length) {
            const res = await this.session.markSent(acked.map((m) => m.id));
            if (!res.owner) return this.fenced();
            ackedRecorded = true;
            sent = this.recorded(acked, (m) => m, res.unseen, this.unseenAcked);
            for (const m of sent) this.window.done(m.id);
            this.r.counters.sent += sent.length;
            this.emitPublished(sent);
          }
          if (dead.length) {
            const res = await this.session.deadLetter(
              dead.map((d) => ({ id: d.message.id, error: d.error })),
            );
            if (!res.owner) return this.fenced();
            failed = this.recorded(dead, (d) => d.message, res.unseen, this.unseenDead);
            for (const d of failed) {
              this.window.done(d.message.id);
              this.r.logger.error('outbox message dead-lettered', {
                event: 'outbox.message.dead_lettered',
                relayId: this.r.relayId,
                messageId: d.message.id,
                destination: d.message.destination,
                type: d.message.type,
                key: d.message.key,
                error: d.error,
              });
            }
            this.r.counters.deadLettered += failed.length;
          }
        } catch (error) {
          // Database unreachable: keep the outcomes, try again shortly; nothing is confirmed. (A
          // mark-sent that went through before the dead-letter write failed is not repeated.)
          if (!ackedRecorded) this.acked.unshift(...acked);
          this.dead.unshift(...dead);
          if (this.isEnded) return;
          if (this.session.serverGone?.(error) === true) return this.serverGone(error);
          this.r.logger.warn('outbox WAL relay could not record publish outcomes; retrying', {
            event: 'outbox.wal.record_error',
            relayId: this.r.relayId,
            error: errorText(error),
          });
          clearTimeout(this.retryTimer);
          this.retryTimer = setTimeout(() => void this.record(), RECORD_RETRY_MS);
          this.retryTimer.unref?.();
          return;
        }
        for (const m of sent) {
          this.ackInfo.delete(m.id);
          this.attempts.delete(m.id);
        }
        for (const d of failed) this.attempts.delete(d.message.id);
        this.confirm();
        if (this.paused && this.window.unconfirmed < this.o.maxWindow / 2) {
          this.paused = false;
          this.session.resume();
        }
      }
    } finally {
      this.recording = false;
      this.settle();
    }
  }

  /**
   * The outcomes a record wrote, from what it was asked: the ones whose row it could not see
   * (`unseen`: streamed a moment before their transaction became visible) wait in `later` and are
   * recorded again shortly; they stay unfinished, so the slot is not confirmed past them. A row
   * unseen for `WAL_UNSEEN_GIVE_UP_MS` is taken as removed (an operator deleted it): finished, with
   * a warning.
   */
  private recorded<T>(
    items: T[],
    messageOf: (item: T) => ClaimedOutboxMessage,
    unseen: readonly string[] | undefined,
    later: T[],
  ): T[] {
    if (!unseen?.length) {
      if (this.unseenSince.size) for (const i of items) this.unseenSince.delete(messageOf(i).id);
      return items;
    }
    const notVisible = new Set(unseen);
    const now = this.r.clock.now();
    const done: T[] = [];
    for (const item of items) {
      const message = messageOf(item);
      const since = this.unseenSince.get(message.id) ?? now;
      if (!notVisible.has(message.id) || now - since >= WAL_UNSEEN_GIVE_UP_MS) {
        if (notVisible.has(message.id))
          this.r.logger.warn(
            'outbox WAL relay finished a streamed message whose row it never saw (removed since?)',
            {
              event: 'outbox.wal.row_missing',
              relayId: this.r.relayId,
              messageId: message.id,
              destination: message.destination,
              type: message.type,
              unseenMs: now - since,
            },
          );
        this.unseenSince.delete(message.id);
        done.push(item);
        continue;
      }
      this.unseenSince.set(message.id, since);
      later.push(item);
    }
    if (later.length) this.scheduleRecheck(now);
    return done;
  }

  /** Records the unseen outcomes again: soon at first, then less often (at most every second). */
  private scheduleRecheck(now: number): void {
    if (this.recheckTimer !== undefined) return;
    let oldest = now;
    for (const since of this.unseenSince.values()) if (since < oldest) oldest = since;
    const delay = Math.min(1000, Math.max(5, (now - oldest) / 2));
    this.recheckTimer = setTimeout(() => {
      this.recheckTimer = undefined;
      this.acked.push(...this.unseenAcked.splice(0));
      this.dead.push(...this.unseenDead.splice(0));
      void this.record();
    }, delay);
    this.recheckTimer.unref?.();
  }

  /**
   * The server is going away (shutting down, restarting) or cannot be reached: end the session
   * instead of retrying the record on it. A server shutting down keeps its walsender, and so its
   * shutdown, waiting until this client confirms everything streamed, which it cannot do before
   * recording. Nothing is lost: the loop opens a new session once the server is back, which streams
   * again from the confirmed position (duplicates within the unconfirmed window).
   */
  private serverGone(error: unknown): void {
    this.r.logger.warn(
      'outbox WAL relay cannot record publish outcomes: the database server is going away or unreachable; it ends the replication session and reconnects (unconfirmed messages are streamed again)',
      { event: 'outbox.wal.server_gone', relayId: this.r.relayId, error: errorText(error) },
    );
    this.end(new Error(`outbox WAL relay: database server gone (${errorText(error)})`));
    void this.session?.close().catch(() => undefined);
  }

  /** Another streamer holds the slot now: stop at once; what it streams includes our unconfirmed rest. */
  private fenced(): void {
    this.r.logger.warn(
      'outbox WAL relay lost the replication slot to another streamer; it stops and stands by (unconfirmed messages are streamed again by the new holder)',
      { event: 'outbox.wal.fenced', relayId: this.r.relayId },
    );
    this.end(new Error('outbox WAL relay: fenced, another streamer holds the slot'));
    void this.session?.close().catch(() => undefined);
  }

  private publishChunk(part: readonly ClaimedOutboxMessage[]): Promise<PublishResult[]> {
    return publishRelayChunk(this.r.broker, part, this.r.hardStop);
  }

  private outageDelayMs(): number {
    return brokerOutageDelayMs(this.r.retry, this.outageStreak);
  }

  private logOutage(delayMs: number, error: string): void {
    const now = this.r.clock.now();
    if (now - this.lastOutageLogAt < OUTAGE_LOG_INTERVAL_MS) return;
    this.lastOutageLogAt = now;
    this.r.logger.warn(
      `broker "${this.r.broker.name}" is unreachable; outbox messages wait (their attempts not counted) and are retried (next in ${delayMs} ms): ${error}`,
      {
        event: 'outbox.broker.unreachable',
        relayId: this.r.relayId,
        waiting: this.window.size,
        retryInMs: delayMs,
        error,
      },
    );
  }

  private emitPublished(acked: readonly ClaimedOutboxMessage[]): void {
    const events = this.r.events;
    if (!events.active) return;
    const now = this.r.clock.now();
    for (const m of acked) {
      const info = this.ackInfo.get(m.id);
      events.emit({
        type: 'outbox.published',
        path: 'relay',
        messageId: m.id,
        destination: m.destination,
        messageType: m.type,
        publishMs: info?.publishMs ?? 0,
        commitToPublishMs: Math.max(0, (info?.at ?? now) - m.createdAt.getTime()),
        at: info?.at ?? now,
      });
    }
    events.emit({
      type: 'outbox.batch',
      path: 'relay',
      claimed: acked.length,
      sent: acked.length,
      failed: 0,
      durationMs: 0,
      at: now,
    });
  }

  private emitFailed(message: ClaimedOutboxMessage, error: string, deadLettered: boolean): void {
    if (!this.r.events.active) return;
    this.r.events.emit({
      type: 'outbox.failed',
      path: 'relay',
      messageId: message.id,
      destination: message.destination,
      messageType: message.type,
      reason: 'broker_error',
      error,
      deadLettered,
      at: this.r.clock.now(),
    });
  }
}

function resolveWalRelayOptions(options: WalOutboxRelayOptions): Resolved {
  if (!options?.source)
    throw new InvalidOptionsError('outbox.relay.wal.source', 'is required (a WalOutboxSource)');
  if (!options.broker)
    throw new InvalidOptionsError('outbox.relay.broker', 'is required (a Broker adapter)');
  const o: Resolved = { ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS) as (keyof Resolved)[]) {
    const v = options[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
      throw new InvalidOptionsError(
        `outbox.relay.wal.${key}`,
        `must be a positive integer, got ${String(v)}`,
      );
    o[key] = v;
  }
  return o;
}
