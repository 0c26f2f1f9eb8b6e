import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { TableSample } from './results';
import { round } from './stats';

/**
 * Samples a table's row count (exact: `count(*)`), `pg_total_relation_size` (heap + indexes +
 * TOAST), heap size, dead tuples and autovacuum count, on its own connection, single-flight, about
 * once per `everyMs`.
 */
export class TableSampler {
  readonly samples: TableSample[] = [];
  private halt = false;
  private running: Promise<void> | undefined;
  private origin = 0;

  constructor(
    private readonly client: pg.Client,
    /** Already quoted, e.g. `"sage"."outbox_message"`. */
    private readonly table: string,
    private readonly everyMs = 1000,
  ) {}

  start(): void {
    this.origin = performance.now();
    this.halt = false;
    this.running = this.loop();
  }

  async stop(): Promise<TableSample> {
    this.halt = true;
    await this.running;
    return this.sample();
  }

  async sample(): Promise<TableSample> {
    const at = performance.now() - this.origin;
    const { rows } = await this.client.query<{
      rows: number;
      total: string;
      heap: string;
      dead: string | null;
      autovacuums: string | null;
    }>(
      `SELECT (SELECT count(*) FROM ${this.table})::int AS rows,
              pg_total_relation_size($1::regclass)::text AS total,
              pg_relation_size($1::regclass)::text AS heap,
              s.n_dead_tup::text AS dead,
              s.autovacuum_count::text AS autovacuums
       FROM pg_stat_user_tables s WHERE s.relid = $1::regclass`,
      [this.table],
    );
    const r = rows[0];
    const sample: TableSample = {
      atMs: round(at, 0),
      rows: r?.rows ?? 0,
      totalBytes: Number(r?.total ?? 0),
      heapBytes: Number(r?.heap ?? 0),
      deadTuples: Number(r?.dead ?? 0),
      autovacuums: Number(r?.autovacuums ?? 0),
    };
    this.samples.push(sample);
    return sample;
  }

  private async loop(): Promise<void> {
    while (!this.halt) {
      const t0 = performance.now();
      await this.sample();
      await sleep(Math.max(0, this.everyMs - (performance.now() - t0)));
    }
  }
}

/** Least-squares slope of `y` over `x` (per unit of x); 0 with fewer than two points. */
export function slope(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
