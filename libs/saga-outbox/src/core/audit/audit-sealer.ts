import { SingleFlightLoop, type LoopStats } from '../loop';
import { positiveInteger, positiveNumber } from '../options';
import { systemClock, type Clock } from '../ports/clock';
import { silentLogger, type SageLogger } from '../ports/logger';

/** What the sealer needs of the audit log's storage (persistence/postgres/postgres-audit-log.ts). */
export interface AuditSealStore {
  /**
   * Seals up to `limit` committed pending entries into the chain, in one transaction; returns how
   * many, or null when another process holds the sealer lock (it is sealing right now).
   */
  sealBatch(limit: number): Promise<number | null>;
  /**
   * Retention: checks the chain, then deletes entries older than `keepAfter` behind a checkpoint.
   * Returns the checkpoint's seq, or null when nothing was old enough.
   */
  prune?(keepAfter: Date): Promise<number | null>;
}

/** AuditSealer's store and tuning (the module's `audit` option sets the tuning). */
export interface AuditSealerOptions {
  store: AuditSealStore;
  /** Pause between sealing runs. Default 1 s. */
  sealIntervalMs?: number;
  /** Entries sealed per transaction. Default 500. */
  batchSize?: number;
  /** Batches per run at most. Default 20. */
  maxBatchesPerRun?: number;
  /** Keep sealed entries this long, then prune them behind a checkpoint. Default: kept for ever. */
  retentionMs?: number;
  /** Pause between retention runs. Default 1 hour. */
  pruneIntervalMs?: number;
  clock?: Clock;
  logger?: SageLogger;
}

/**
 * The audit log's maintenance loop: seals pending entries into the hash chain (leader = whoever
 * wins the sealer lock for a batch; the others skip), and, with `retentionMs`, prunes old entries
 * behind a checkpoint now and then. Single-flight; errors are counted, logged and backed off.
 */
export class AuditSealer {
  private readonly store: AuditSealStore;
  private readonly batchSize: number;
  private readonly maxBatchesPerRun: number;
  private readonly retentionMs: number | undefined;
  private readonly pruneIntervalMs: number;
  private readonly clock: Clock;
  private readonly logger: SageLogger;
  private readonly loop: SingleFlightLoop;
  private readonly controller = new AbortController();
  private lastPruneAt: number | undefined;
  /** Entries this process sealed since it started. */
  sealedTotal = 0;

  constructor(options: AuditSealerOptions) {
    this.store = options.store;
    const intervalMs = positiveNumber('audit.sealIntervalMs', options.sealIntervalMs ?? 1000);
    this.batchSize = positiveInteger('audit.batchSize', options.batchSize ?? 500, 10_000);
    this.maxBatchesPerRun = positiveInteger(
      'audit.maxBatchesPerRun',
      options.maxBatchesPerRun ?? 20,
    );
    this.retentionMs =
      options.retentionMs === undefined
        ? undefined
        : positiveNumber('audit.retentionMs', options.retentionMs);
    this.pruneIntervalMs = positiveNumber(
      'audit.pruneIntervalMs',
      options.pruneIntervalMs ?? 3_600_000,
    );
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
    this.loop = new SingleFlightLoop({
      name: 'audit-sealer',
      intervalMs,
      tick: () => this.runOnce().then(() => undefined),
      clock: this.clock,
      logger: this.logger,
    });
  }

  start(): void {
    this.loop.start(this.controller.signal);
  }

  async stop(): Promise<void> {
    this.controller.abort();
    await this.loop.stopped();
  }

  get stats(): { sealedTotal: number; loop: LoopStats } {
    return { sealedTotal: this.sealedTotal, loop: { ...this.loop.stats } };
  }

  /** One run: seal until a short batch (or the run bound), then prune when it is due. */
  async runOnce(): Promise<{ leader: boolean; sealed: number; checkpoint?: number | null }> {
    let sealed = 0;
    let leader = true;
    for (let i = 0; i < this.maxBatchesPerRun && !this.controller.signal.aborted; i++) {
      const n = await this.store.sealBatch(this.batchSize);
      if (n === null) {
        leader = i > 0;
        break;
      }
      sealed += n;
      this.sealedTotal += n;
      if (n < this.batchSize) break;
    }
    if (sealed) this.logger.debug('audit entries sealed', { event: 'audit.sealed', sealed });
    const now = this.clock.now();
    if (
      leader &&
      this.retentionMs !== undefined &&
      this.store.prune &&
      (this.lastPruneAt === undefined || now - this.lastPruneAt >= this.pruneIntervalMs)
    ) {
      this.lastPruneAt = now;
      const checkpoint = await this.store.prune(new Date(now - this.retentionMs));
      if (checkpoint !== null)
        this.logger.info('audit log pruned behind a checkpoint', {
          event: 'audit.pruned',
          checkpoint,
        });
      return { leader, sealed, checkpoint };
    }
    return { leader, sealed };
  }
}
