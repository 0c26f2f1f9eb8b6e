import { SingleFlightLoop, type LoopStats } from './loop';
import { systemClock, type Clock } from './ports/clock';
import { silentLogger, type SageLogger } from './ports/logger';
import { nonNegativeNumber, positiveNumber } from './options';

/** Tuning shared by the outbox and inbox retention tasks. */
export interface RetentionTuning {
  /** How long rows are kept before deletion. */
  retentionMs?: number;
  /** Rows deleted per statement (bounds lock time and WAL bursts). Default 1000. */
  batchSize?: number;
  /** Pause between maintenance runs. Default 30 s. */
  intervalMs?: number;
  /** Batches per run at most, so one run never monopolises the table. Default 100. */
  maxBatchesPerRun?: number;
  /**
   * After a run that deleted at least this many rows, the leader vacuums the table (when the store
   * can), so its size follows the live rows rather than autovacuum's schedule. 0 disables it.
   * Default 10000.
   */
  vacuumAfterRows?: number;
  clock?: Clock;
  logger?: SageLogger;
}

export interface RetentionRun {
  /** False when another process held the maintenance lock (it is the leader right now). */
  leader: boolean;
  deleted: number;
  /** Rows each extra sweep removed in this run (dead-letter TTL, archive purge), by sweep name. */
  swept?: Record<string, number>;
  /** True when the run ended with a VACUUM of the table (see `vacuumAfterRows`). */
  vacuumed?: boolean;
}

/** A batch: rows removed, or null when another process holds the maintenance lock. */
export type RetentionBatch = (olderThanMs: number, limit: number) => Promise<number | null>;

/**
 * A further deletion the leader runs after the main one in each run, in the same bounded batches
 * and under the same lock: dead letters past their TTL, archived rows past their keep time.
 */
export interface RetentionSweep {
  /** Stats and metrics key, e.g. `deadLetters`. */
  readonly name: string;
  /** Age past which rows go (validated by the caller, naming its option). */
  readonly olderThanMs: number;
  readonly batch: RetentionBatch;
}

/**
 * Leader-only deletion of old rows in bounded batches: `deleteBatch` returns how many rows it
 * deleted, or null when another process holds the maintenance lock (that process is the leader for
 * now). A run goes on until a short batch, the run bound, or losing leadership; runs repeat in a
 * single-flight loop.
 */
export class RetentionLoop {
  readonly retentionMs: number;
  private readonly batchSize: number;
  private readonly maxBatchesPerRun: number;
  private readonly vacuumAfterRows: number;
  private readonly loop: SingleFlightLoop;
  private readonly controller = new AbortController();
  private readonly logger: SageLogger;
  deletedTotal = 0;
  /** Rows removed by each extra sweep since start, by sweep name. */
  readonly sweptTotal: Record<string, number> = {};

  constructor(
    private readonly what: { name: string; optionPrefix: string; defaultRetentionMs: number },
    private readonly deleteBatch: RetentionBatch,
    options: RetentionTuning,
    private readonly vacuum?: () => Promise<void>,
    private readonly sweeps: readonly RetentionSweep[] = [],
  ) {
    for (const sweep of sweeps) this.sweptTotal[sweep.name] = 0;
    const check = (key: string, value: number | undefined, fallback: number, allowZero = false) =>
      positive(`${what.optionPrefix}.${key}`, value, fallback, allowZero);
    this.retentionMs = check('retentionMs', options.retentionMs, what.defaultRetentionMs, true);
    this.batchSize = check('batchSize', options.batchSize, 1000);
    this.maxBatchesPerRun = check('maxBatchesPerRun', options.maxBatchesPerRun, 100);
    const intervalMs = check('intervalMs', options.intervalMs, 30_000);
    this.vacuumAfterRows = check('vacuumAfterRows', options.vacuumAfterRows, 10_000, true);
    this.logger = options.logger ?? silentLogger;
    // Maintenance: the default error backoff (the interval doubling up to a minute) is right here.
    this.loop = new SingleFlightLoop({
      name: what.name,
      intervalMs,
      tick: () => this.runOnce().then(() => undefined),
      clock: options.clock ?? systemClock,
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

  get stats(): {
    deletedTotal: number;
    sweptTotal: Record<string, number>;
    loop: LoopStats;
  } {
    return {
      deletedTotal: this.deletedTotal,
      sweptTotal: { ...this.sweptTotal },
      loop: { ...this.loop.stats },
    };
  }

  async runOnce(): Promise<RetentionRun> {
    const main = await this.drain(this.deleteBatch, this.retentionMs);
    const deleted = main.removed;
    this.deletedTotal += deleted;
    if (!main.leader) return { leader: false, deleted };
    let removed = deleted;
    const swept: Record<string, number> = {};
    for (const sweep of this.sweeps) {
      const n = (await this.drain(sweep.batch, sweep.olderThanMs)).removed;
      swept[sweep.name] = n;
      this.sweptTotal[sweep.name] = (this.sweptTotal[sweep.name] ?? 0) + n;
      removed += n;
    }
    if (removed)
      this.logger.debug(`${this.what.name} deleted old rows`, {
        event: `${this.what.name.replace('-', '.')}.deleted`,
        deleted,
        ...swept,
      });
    const vacuumed =
      this.vacuum !== undefined && this.vacuumAfterRows > 0 && removed >= this.vacuumAfterRows;
    if (vacuumed) await this.vacuum();
    return {
      leader: true,
      deleted,
      ...(this.sweeps.length ? { swept } : {}),
      ...(vacuumed ? { vacuumed } : {}),
    };
  }

  /**
   * Batches until a short one, the run bound, or losing the lock. `leader` is false only when the
   * very first batch found another process holding it.
   */
  private async drain(
    batch: RetentionBatch,
    olderThanMs: number,
  ): Promise<{ leader: boolean; removed: number }> {
    let removed = 0;
    for (let i = 0; i < this.maxBatchesPerRun && !this.controller.signal.aborted; i++) {
      const n = await batch(olderThanMs, this.batchSize);
      if (n === null) return { leader: i > 0, removed };
      removed += n;
      if (n < this.batchSize) break;
    }
    return { leader: true, removed };
  }
}

function positive(name: string, value: number | undefined, fallback: number, allowZero: boolean) {
  return allowZero
    ? nonNegativeNumber(name, value ?? fallback)
    : positiveNumber(name, value ?? fallback);
}
