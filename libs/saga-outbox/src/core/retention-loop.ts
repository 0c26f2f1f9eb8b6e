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
  /** True when the run ended with a VACUUM of the table (see `vacuumAfterRows`). */
  vacuumed?: boolean;
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

  constructor(
    private readonly what: { name: string; optionPrefix: string; defaultRetentionMs: number },
    private readonly deleteBatch: (olderThanMs: number, limit: number) => Promise<number | null>,
    options: RetentionTuning,
    private readonly vacuum?: () => Promise<void>,
  ) {
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

  get stats(): { deletedTotal: number; loop: LoopStats } {
    return { deletedTotal: this.deletedTotal, loop: { ...this.loop.stats } };
  }

  async runOnce(): Promise<RetentionRun> {
    let deleted = 0;
    for (let i = 0; i < this.maxBatchesPerRun && !this.controller.signal.aborted; i++) {
      const n = await this.deleteBatch(this.retentionMs, this.batchSize);
      if (n === null) return { leader: i > 0, deleted };
      deleted += n;
      this.deletedTotal += n;
      if (n < this.batchSize) break;
    }
    if (deleted)
      this.logger.debug(`${this.what.name} deleted old rows`, {
        event: `${this.what.name.replace('-', '.')}.deleted`,
        deleted,
      });
    const vacuumed =
      this.vacuum !== undefined && this.vacuumAfterRows > 0 && deleted >= this.vacuumAfterRows;
    if (vacuumed) await this.vacuum();
    return { leader: true, deleted, ...(vacuumed ? { vacuumed } : {}) };
  }
}

function positive(name: string, value: number | undefined, fallback: number, allowZero: boolean) {
  return allowZero
    ? nonNegativeNumber(name, value ?? fallback)
    : positiveNumber(name, value ?? fallback);
}
