import { setMaxListeners } from 'node:events';
import { InvalidOptionsError } from '../errors';
import { SingleFlightLoop, type LoopStats } from '../loop';
import type { Broker, PublishResult } from '../ports/broker';
import { systemClock, type Clock } from '../ports/clock';
import { silentLogger, type SageLogger } from '../ports/logger';
import type { OutboxFailure, OutboxStore, OutboxWakeSubscription } from '../ports/outbox-store';
import { uuidv7 } from '../uuid';
import { emitOutcomeEvents, OutboxEventEmitter, type OutboxEventListener } from './outbox-events';
import type { ClaimedOutboxMessage } from './outbox-message';
import { brokerOutageDelayMs, OUTAGE_LOG_INTERVAL_MS, publishRelayChunk } from './relay-publish';
import { failureOutcome, resolveOutboxRetryPolicy, type OutboxRetryPolicy } from './outbox-retry';
import { DEFAULT_RELAY_LEASE_MS, relayLeaseMs } from './relay-lease';
import { errorText } from '../error-text';

export interface OutboxRelayOptions {
  store: OutboxStore;
  broker: Broker;
  clock?: Clock;
  logger?: SageLogger;
  /** Identity in logs. Default: a fresh UUIDv7. */
  relayId?: string;
  /** Messages claimed per round trip. Default 500. */
  batchSize?: number;
  /** Messages per broker `publish()` call. Default 100. */
  publishBatchSize?: number;
  /** Broker `publish()` calls in flight at once, per round. Default 8. */
  maxInFlight?: number;
  /**
   * Claim-publish-mark rounds overlapping in one relay: the next batch is claimed (and marked)
   * while the previous one is at the broker. Safe for ordering: a claim never takes a key that has
   * a message in flight. Default 1: on the 2-core benchmark machine, 2 lanes cut in-memory-broker
   * throughput (18k vs 25k msg/s: overlapping claims contend) and did not measurably help Kafka;
   * try 2 when broker round trips are long and the database has cores to spare.
   */
  pipelineDepth?: number;
  /**
   * Claim lease on the database clock; it must outlast a claim's time at the broker: at least 1.5 ×
   * the broker's `publishTimeoutMs` per round of publish calls (`batchSize / publishBatchSize`
   * calls, `maxInFlight` at a time), else InvalidOptionsError at construction. Default 30000, or
   * that minimum when it is longer (Kafka's default request timeout of 30 s: 45000).
   */
  leaseMs?: number;
  /** Polling interval when idle (the fallback when no NOTIFY arrives). Default 1000. */
  pollIntervalMs?: number;
  /** How often expired claims are reaped. Default 5000. */
  reapIntervalMs?: number;
  /** LISTEN for the write-side NOTIFY hint. Default true (set false on embedded PGlite). */
  listen?: boolean;
  retry?: Partial<OutboxRetryPolicy>;
  /** Bound on graceful shutdown: after it, in-flight publishes are aborted (their rows are released). Default 10000. */
  shutdownTimeoutMs?: number;
  /** Called after every non-empty batch (metrics, tests). Must not throw. */
  onBatch?: (report: OutboxBatchReport) => void;
}

/** What one claim-publish-mark round did. */
export interface OutboxBatchReport {
  claimToken: string;
  claimed: number;
  /** Acked by the broker and recorded as sent. */
  sent: number;
  /**
   * Published (acked, failed, or abandoned at the shutdown bound) but the fenced record of it was
   * rejected: the claim was lost (lease expired, row reclaimed), and whoever holds the message now
   * publishes it again. Each is an `outbox.failed` event with reason `stale_claim`.
   */
  staleMarks: number;
  /** Failed and scheduled for retry. */
  retried: number;
  /** Failed for the last time (or non-retryable) and dead-lettered. */
  deadLettered: number;
  /** Never published (shutdown) and handed back. */
  released: number;
}

export interface OutboxRelayStats {
  batches: number;
  claimed: number;
  sent: number;
  staleMarks: number;
  retried: number;
  deadLettered: number;
  released: number;
  reaped: number;
  listening: boolean;
  loop: LoopStats;
}

interface ResolvedOptions {
  batchSize: number;
  publishBatchSize: number;
  maxInFlight: number;
  pipelineDepth: number;
  leaseMs: number;
  pollIntervalMs: number;
  reapIntervalMs: number;
  listen: boolean;
  shutdownTimeoutMs: number;
}

const DEFAULTS: ResolvedOptions = {
  batchSize: 500,
  publishBatchSize: 100,
  maxInFlight: 8,
  pipelineDepth: 1,
  leaseMs: DEFAULT_RELAY_LEASE_MS,
  pollIntervalMs: 1000,
  reapIntervalMs: 5000,
  listen: true,
  shutdownTimeoutMs: 10_000,
};

/** Claim rounds per loop tick before yielding to the loop (keeps its stats and stop checks fresh). */
const MAX_ROUNDS_PER_TICK = 1000;
/** First look-again delay after a NOTIFY whose rows were not claimable yet (see followUpNotification). */
const FIRST_FOLLOW_UP_MS = 10;
/**
 * After a failed tick (database unreachable, say) the relay tries again after 100 ms (or its poll
 * interval, if shorter), doubling up to 500 ms, never longer: so it resumes within about half a
 * second of the database coming back, whatever `pollIntervalMs` is. A cheap probe to wake a longer
 * backoff would buy nothing: while the database is down a tick fails on its first statement, which
 * costs what a probe costs (one refused connection), and once it is up the tick is the probe. The
 * log does not grow with it: the loop logs the start and end of a run of failures, not each one.
 */
const RELAY_FIRST_ERROR_BACKOFF_MS = 100;
const RELAY_MAX_ERROR_BACKOFF_MS = 500;

/**
 * The outbox relay: claims eligible messages (see claimOutboxMessages for eligibility), publishes
 * them with many broker calls in flight, and records the outcome with fenced batch updates.
 *
 * One relay per process is typical; any number may run against one database. It runs in a
 * single-flight loop woken by NOTIFY (a hint) with polling as the fallback, never holds a database
 * transaction open across a broker call, and shuts down within a bound: in-flight publishes finish
 * and are recorded, claims not yet started are released at once.
 */
export class OutboxRelay {
  readonly relayId: string;
  private readonly o: ResolvedOptions;
  private readonly retry: OutboxRetryPolicy;
  private readonly clock: Clock;
  private readonly logger: SageLogger;
  private readonly loop: SingleFlightLoop;
  private readonly events = new OutboxEventEmitter();
  private loopController = new AbortController();
  /** Aborts in-flight publishes once the shutdown bound is over. */
  private readonly hardStop = new AbortController();
  private stopping = false;
  private started = false;
  private subscription: OutboxWakeSubscription | undefined;
  private lastListenAttempt = -Infinity;
  private lastReap = -Infinity;
  /** A NOTIFY arrived since the last tick (rows committed somewhere). */
  private notified = false;
  private followUpDelayMs = FIRST_FOLLOW_UP_MS;
  private followUpTimer: NodeJS.Timeout | undefined;
  /** Batches in a row in which the broker was unreachable and nothing was acknowledged. */
  private outageStreak = 0;
  private lastOutageLogAt = Number.NEGATIVE_INFINITY;
  private readonly counters = {
    batches: 0,
    claimed: 0,
    sent: 0,
    staleMarks: 0,
    retried: 0,
    deadLettered: 0,
    released: 0,
    reaped: 0,
  };

  constructor(private readonly options: OutboxRelayOptions) {
    this.o = resolveRelayOptions(options);
    this.retry = resolveOutboxRetryPolicy(options.retry);
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
    this.relayId = options.relayId ?? uuidv7();
    // Shared by every in-flight broker call (adapters may listen per message): not a leak.
    setMaxListeners(0, this.hardStop.signal);
    this.loop = new SingleFlightLoop({
      name: 'outbox-relay',
      intervalMs: this.o.pollIntervalMs,
      errorBackoff: {
        firstMs: Math.min(this.o.pollIntervalMs, RELAY_FIRST_ERROR_BACKOFF_MS),
        maxMs: RELAY_MAX_ERROR_BACKOFF_MS,
      },
      tick: (signal) => this.tick(signal),
      clock: this.clock,
      logger: this.logger,
    });
  }

  /** Starts the loop (idempotent). */
  start(): void {
    if (this.started || this.stopping) return;
    this.started = true;
    this.loop.start(this.loopController.signal);
  }

  /** Runs the next round now (e.g. right after a commit in this process). */
  wake(): void {
    this.loop.wake();
  }

  /**
   * Graceful stop within `shutdownTimeoutMs`: no new claims; in-flight publishes finish and are
   * recorded; unstarted claims are released. After the bound, in-flight publishes are aborted and
   * their rows released (or left to lease expiry if the database is unreachable).
   */
  async stop(): Promise<void> {
    if (this.stopping) {
      await this.loop.stopped();
      return;
    }
    this.stopping = true;
    clearTimeout(this.followUpTimer);
    this.loopController.abort();
    const bound = new AbortController();
    const timer = this.clock.sleep(this.o.shutdownTimeoutMs, bound.signal).then(
      () =>
        this.hardStop.abort(
          new Error(
            `outbox relay ${this.relayId}: shutdown bound of ${this.o.shutdownTimeoutMs} ms reached`,
          ),
        ),
      () => undefined,
    );
    try {
      await this.loop.stopped();
    } finally {
      bound.abort();
      await timer;
      await this.closeSubscription();
    }
  }

  /**
   * Subscribes to the relay's outbox events (path 'relay'): claimed, published, failed, batch,
   * released, reaped. Returns the unsubscribe function. A listener that throws is ignored; it
   * never breaks the relay. Listeners run synchronously on the relay's path: keep them cheap.
   */
  onEvent(listener: OutboxEventListener): () => void {
    return this.events.on(listener);
  }

  get stats(): OutboxRelayStats {
    return {
      ...this.counters,
      listening: this.subscription !== undefined,
      loop: { ...this.loop.stats },
    };
  }

  /**
   * One claim-publish-mark round; for tests and for callers driving the relay themselves.
   * Returns the report (claimed 0 when nothing was eligible).
   */
  async runOnce(): Promise<OutboxBatchReport> {
    const claimToken = uuidv7();
    const report: OutboxBatchReport = {
      claimToken,
      claimed: 0,
      sent: 0,
      staleMarks: 0,
      retried: 0,
      deadLettered: 0,
      released: 0,
    };
    if (this.stopping && this.started) return report;
    const startedAt = this.clock.now();
    const claimed = await this.options.store.claim(claimToken, this.o.batchSize, this.o.leaseMs);
    report.claimed = claimed.length;
    if (!claimed.length) return report;
    const emitting = this.events.active;
    if (emitting)
      this.events.emit({
        type: 'outbox.claimed',
        path: 'relay',
        count: claimed.length,
        at: this.clock.now(),
      });
    /** Per acked message: broker call duration and ack time (only while someone listens). */
    const acks = new Map<string, { publishMs: number; at: number }>();

    const acked: string[] = [];
    const failures: OutboxFailure[] = [];
    /** Never sent (shutdown began first): handed back. */
    const unstarted: string[] = [];
    /** At the broker when the shutdown bound aborted the wait: fate unknown, handed back. */
    const abandoned: { id: string; error: string }[] = [];
    const chunks = chunk(claimed, this.o.publishBatchSize);
    let next = 0;
    // While the broker is unreachable, messages wait without spending attempts, backing off per batch.
    const outageDelayMs = this.outageDelayMs();
    let unreachable: string | undefined;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < chunks.length; i = next++) {
        const part = chunks[i]!;
        if (this.stopping) {
          unstarted.push(...part.map((m) => m.id));
          continue;
        }
        const sentAt = this.clock.now();
        const results = await this.publishChunk(part);
        const ackAt = this.clock.now();
        part.forEach((message, j) => {
          const result = results[j]!;
          if (result.ok) {
            acked.push(message.id);
            if (emitting) acks.set(message.id, { publishMs: ackAt - sentAt, at: ackAt });
          } else if (this.hardStop.signal.aborted)
            abandoned.push({ id: message.id, error: result.error });
          else if (result.unavailable === true && result.retryable) {
            unreachable = result.error;
            failures.push({
              id: message.id,
              error: result.error,
              delayMs: outageDelayMs,
              counted: false,
            });
          } else {
            const outcome = failureOutcome(this.retry, message.attempts, result.retryable);
            failures.push({
              id: message.id,
              error: result.error,
              delayMs: outcome.kind === 'retry' ? outcome.delayMs : null,
            });
          }
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.maxInFlight, chunks.length) }, worker));
    if (acked.length) this.outageStreak = 0;
    else if (unreachable !== undefined) this.outageStreak++;

    // Record outcomes: one statement per kind, each fenced by the claim token.
    const marked = await this.options.store.markSent(claimToken, acked);
    report.sent = marked.length;
    report.staleMarks = acked.length - marked.length;
    let recorded = new Set<string>();
    if (failures.length) {
      recorded = new Set(await this.options.store.markFailed(claimToken, failures));
      for (const f of failures) {
        if (!recorded.has(f.id)) report.staleMarks++;
        else if (f.delayMs === null) report.deadLettered++;
        else report.retried++;
      }
      this.logFailures(
        failures.filter((f) => f.counted !== false),
        claimed,
      );
      if (unreachable !== undefined)
        this.logOutage(
          failures.filter((f) => f.counted === false).length,
          outageDelayMs,
          unreachable,
        );
    }
    let released = new Set<string>();
    if (unstarted.length || abandoned.length) {
      const handBack = [...unstarted, ...abandoned.map((a) => a.id)];
      released = new Set(await this.options.store.release(claimToken, handBack));
      report.released = released.size;
      // A publish abandoned after its claim was lost may still land: as stale as a late ack.
      report.staleMarks += abandoned.filter((a) => !released.has(a.id)).length;
    }
    if (emitting) {
      emitOutcomeEvents(this.events, 'relay', {
        claimed,
        acks,
        marked,
        failed: [
          ...failures.map((f) => ({
            id: f.id,
            error: f.error,
            reason: 'broker_error' as const,
            deadLettered: f.delayMs === null,
            claimLost: !recorded.has(f.id),
          })),
          ...abandoned.map((a) => ({
            id: a.id,
            error: `${a.error} (shutdown bound of ${this.o.shutdownTimeoutMs} ms reached)`,
            reason: 'timeout' as const,
            deadLettered: false,
            claimLost: !released.has(a.id),
          })),
        ],
        released: report.released,
        startedAt,
        now: this.clock.now(),
      });
    }
    if (report.staleMarks) {
      this.logger.warn(
        'outbox relay lost claims before recording them (lease expired; another relay took over); those messages may be published twice',
        {
          event: 'outbox.relay.stale_claim',
          relayId: this.relayId,
          claimToken,
          staleMarks: report.staleMarks,
        },
      );
    }
    this.count(report);
    this.options.onBatch?.(report);
    return report;
  }

  /** Releases claims whose lease expired; returns how many. */
  async reap(): Promise<number> {
    const reaped = await this.options.store.reapExpired(this.o.batchSize);
    this.counters.reaped += reaped;
    if (reaped && this.events.active)
      this.events.emit({ type: 'outbox.reaped', count: reaped, at: this.clock.now() });
    if (reaped) {
      this.logger.warn('outbox reaper released expired claims', {
        event: 'outbox.relay.reaped',
        relayId: this.relayId,
        reaped,
      });
    }
    return reaped;
  }

  private async tick(signal: AbortSignal): Promise<void> {
    const now = this.clock.now();
    if (now - this.lastReap >= this.o.reapIntervalMs) {
      this.lastReap = now;
      await this.reap();
    }
    const notified = this.notified;
    this.notified = false;
    let claimed = 0;
    let rounds = 0;
    let drained = false;
    const round = async (): Promise<void> => {
      rounds++;
      const report = await this.runOnce();
      claimed += report.claimed;
      // Keep going while there is work: with one message per key per claim, a short batch does
      // not mean the backlog is empty (the next messages of those keys are eligible now).
      if (report.claimed === 0) drained = true;
    };
    // An idle tick costs one claim. With work, `pipelineDepth` lanes of claim → publish → mark
    // overlap: while one lane waits for the broker, another claims or marks.
    await round();
    // LISTEN once a claim went through: while the database is down, no LISTEN attempts (and no
    // warnings about them); the tick after it is back re-establishes it at once.
    await this.ensureListening();
    if (!drained) {
      const lane = async (): Promise<void> => {
        try {
          while (!drained && rounds < MAX_ROUNDS_PER_TICK && !signal.aborted) await round();
        } catch (error) {
          drained = true; // the other lanes stop after their current round
          throw error;
        }
      };
      const lanes = await Promise.allSettled(
        Array.from({ length: this.o.pipelineDepth }, () => lane()),
      );
      const failed = lanes.find((l): l is PromiseRejectedResult => l.status === 'rejected');
      if (failed) throw failed.reason;
    }
    this.followUpNotification(notified, claimed, signal);
  }

  /**
   * A NOTIFY means a transaction committed outbox rows, yet a claim can still find nothing: the
   * rows wait behind an earlier message of their key that another claimant (an optimistic sender,
   * another relay) holds, and finishing it sends no NOTIFY. Rather than wait a whole poll
   * interval, look again after a short backoff (doubling up to the poll interval) until the
   * rows become claimable.
   */
  private followUpNotification(notified: boolean, claimed: number, signal: AbortSignal): void {
    clearTimeout(this.followUpTimer);
    if (claimed > 0 || !notified || signal.aborted) {
      if (claimed > 0) this.followUpDelayMs = FIRST_FOLLOW_UP_MS;
      return;
    }
    const delay = this.followUpDelayMs;
    if (delay >= this.o.pollIntervalMs) {
      this.followUpDelayMs = FIRST_FOLLOW_UP_MS; // the regular poll takes over
      return;
    }
    this.followUpDelayMs = delay * 2;
    this.followUpTimer = setTimeout(() => {
      this.notified = true;
      this.loop.wake();
    }, delay);
    this.followUpTimer.unref?.();
  }

  private publishChunk(part: readonly ClaimedOutboxMessage[]): Promise<PublishResult[]> {
    return publishRelayChunk(this.options.broker, part, this.hardStop.signal);
  }

  private async ensureListening(): Promise<void> {
    if (!this.o.listen || this.subscription || this.stopping) return;
    const now = this.clock.now();
    // After a failure, try again no more often than every 5 polls.
    if (now - this.lastListenAttempt < this.o.pollIntervalMs * 5) return;
    this.lastListenAttempt = now;
    try {
      const sub = await this.options.store.listen(
        () => {
          this.notified = true;
          this.loop.wake();
        },
        (error) => {
          this.logger.warn('outbox LISTEN connection failed; polling until it is re-established', {
            event: 'outbox.relay.listen_error',
            relayId: this.relayId,
            error: errorText(error),
          });
          void this.closeSubscription();
        },
      );
      if (sub === null) {
        this.o.listen = false; // the database cannot deliver notifications: poll only
        return;
      }
      if (this.stopping) await sub.close();
      else {
        this.subscription = sub;
        // Rows committed between this tick's claim and the LISTEN sent no NOTIFY we heard: look
        // again now rather than after a poll interval.
        this.loop.wake();
      }
    } catch (error) {
      this.logger.warn('outbox LISTEN failed; polling only for now', {
        event: 'outbox.relay.listen_error',
        relayId: this.relayId,
        error: errorText(error),
      });
    }
  }

  private async closeSubscription(): Promise<void> {
    const sub = this.subscription;
    this.subscription = undefined;
    try {
      await sub?.close();
    } catch {
      // The connection is gone either way.
    }
  }

  private count(report: OutboxBatchReport): void {
    const c = this.counters;
    c.batches++;
    c.claimed += report.claimed;
    c.sent += report.sent;
    c.staleMarks += report.staleMarks;
    c.retried += report.retried;
    c.deadLettered += report.deadLettered;
    c.released += report.released;
  }

  /**
   * Backoff while the broker is unreachable: the retry policy's initial delay, growing by its
   * multiplier per batch that found it down, capped at OUTAGE_MAX_DELAY_MS so that delivery resumes
   * soon after the broker is back; jittered like any retry.
   */
  private outageDelayMs(): number {
    return brokerOutageDelayMs(this.retry, this.outageStreak);
  }

  /** One WARN per OUTAGE_LOG_INTERVAL_MS while the broker is unreachable (not one per message). */
  private logOutage(waiting: number, delayMs: number, error: string): void {
    const now = this.clock.now();
    if (now - this.lastOutageLogAt < OUTAGE_LOG_INTERVAL_MS) return;
    this.lastOutageLogAt = now;
    this.logger.warn(
      `broker "${this.options.broker.name}" is unreachable; outbox messages wait in the outbox, their attempts not counted, and are retried (next in ${delayMs} ms): ${error}`,
      {
        event: 'outbox.broker.unreachable',
        relayId: this.relayId,
        waiting,
        retryInMs: delayMs,
        error,
      },
    );
  }

  private logFailures(
    failures: readonly OutboxFailure[],
    claimed: readonly ClaimedOutboxMessage[],
  ): void {
    const byId = new Map(claimed.map((m) => [m.id, m]));
    for (const f of failures.slice(0, 10)) {
      const m = byId.get(f.id);
      const fields = {
        event: f.delayMs === null ? 'outbox.message.dead_lettered' : 'outbox.message.retry',
        relayId: this.relayId,
        messageId: f.id,
        destination: m?.destination,
        type: m?.type,
        key: m?.key,
        attempt: (m?.attempts ?? 0) + 1,
        retryInMs: f.delayMs,
        error: f.error,
      };
      if (f.delayMs === null) this.logger.error('outbox message dead-lettered', fields);
      else this.logger.warn('outbox message publish failed; will retry', fields);
    }
    if (failures.length > 10) {
      this.logger.warn(`outbox: ${failures.length - 10} more failed publishes in this batch`, {
        event: 'outbox.message.retry',
        relayId: this.relayId,
      });
    }
  }
}

function resolveRelayOptions(options: OutboxRelayOptions): ResolvedOptions {
  if (!options?.store) throw new InvalidOptionsError('outbox.relay.store', 'is required');
  if (!options.broker)
    throw new InvalidOptionsError('outbox.relay.broker', 'is required (a Broker adapter)');
  const o: ResolvedOptions = { ...DEFAULTS };
  for (const key of [
    'batchSize',
    'publishBatchSize',
    'maxInFlight',
    'pipelineDepth',
    'leaseMs',
    'pollIntervalMs',
    'reapIntervalMs',
    'shutdownTimeoutMs',
  ] as const) {
    const v = options[key];
    if (v === undefined) continue;
    if (
      typeof v !== 'number' ||
      !Number.isFinite(v) ||
      v <= 0 ||
      ((key === 'batchSize' ||
        key === 'publishBatchSize' ||
        key === 'maxInFlight' ||
        key === 'pipelineDepth') &&
        !Number.isInteger(v))
    ) {
      throw new InvalidOptionsError(
        `outbox.relay.${key}`,
        `must be a positive ${key.endsWith('Ms') ? 'number' : 'integer'}, got ${String(v)}`,
      );
    }
    o[key] = v;
  }
  if (options.listen !== undefined) o.listen = options.listen;
  o.leaseMs = relayLeaseMs({ ...o, leaseMs: options.leaseMs, broker: options.broker });
  return o;
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
