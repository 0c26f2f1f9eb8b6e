import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { processCpuTicks } from './resources';
import { round } from './stats';

/** USER_HZ (see resources.ts). */
const TICK_US = 10_000;
const POSTGRES = new Set(['postgres']);

/** CPU time one drain cost, per message (µs); PostgreSQL figures are null off Linux. */
export interface CpuPerMessage {
  /** This Node process (process.cpuUsage: user + system). */
  nodeUs: number;
  /**
   * The PostgreSQL processes serving the measured side: backends and walsenders whose
   * application_name starts with one of the side's names, seen at any sample during the drain.
   */
  pgOwnUs: number | null;
  /** Every PostgreSQL process of the server (WAL writer, checkpointer, other people's work too). */
  pgServerUs: number | null;
}

/**
 * CPU of one timed window, attributed to a side: Node by `process.cpuUsage`, PostgreSQL by the
 * `/proc/<pid>/stat` ticks of the server's processes, split into the side's own connections
 * (found by application_name prefix, sampled every 100 ms so a replication connection opened and
 * closed inside the window is caught) and the whole server.
 */
export class CpuMeter {
  private cpu0: NodeJS.CpuUsage | undefined;
  private ticks0: Map<number, number> | null = null;
  private readonly pids = new Set<number>();
  private halt = false;
  private sampling: Promise<void> = Promise.resolve();
  private startedAt = 0;

  constructor(
    private readonly monitor: pg.Client,
    private readonly applicationPrefixes: readonly string[],
  ) {}

  start(): void {
    this.halt = false;
    this.startedAt = performance.now();
    this.ticks0 = processCpuTicks(POSTGRES);
    this.cpu0 = process.cpuUsage();
    this.sampling = this.sample();
  }

  /** Stops the window: CPU per message over `messages`, and the window's length (ms). */
  async stop(messages: number): Promise<CpuPerMessage & { windowMs: number }> {
    const cpu = process.cpuUsage(this.cpu0);
    const ticks1 = processCpuTicks(POSTGRES);
    const windowMs = performance.now() - this.startedAt;
    this.halt = true;
    await this.sampling;
    const perMsg = (us: number): number => round(us / Math.max(1, messages), 1);
    let own: number | null = null;
    let server: number | null = null;
    if (this.ticks0 && ticks1) {
      own = 0;
      server = 0;
      for (const [pid, end] of ticks1) {
        const used = end - (this.ticks0.get(pid) ?? 0);
        server += used;
        if (this.pids.has(pid)) own += used;
      }
    }
    return {
      nodeUs: perMsg(cpu.user + cpu.system),
      pgOwnUs: own === null ? null : perMsg(own * TICK_US),
      pgServerUs: server === null ? null : perMsg(server * TICK_US),
      windowMs,
    };
  }

  private async sample(): Promise<void> {
    while (!this.halt) {
      await this.collect();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await this.collect();
  }

  private async collect(): Promise<void> {
    if (!this.applicationPrefixes.length) return;
    const { rows } = await this.monitor.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE application_name LIKE ANY($1::text[])`,
      [this.applicationPrefixes.map((p) => `${p}%`)],
    );
    for (const r of rows) this.pids.add(r.pid);
  }
}

/** Means of several drains' per-message CPU (nulls stay null if any is null). */
export function meanCpu(values: readonly CpuPerMessage[]): CpuPerMessage {
  const mean = (xs: readonly (number | null)[]): number | null =>
    !xs.length || xs.some((x) => x === null)
      ? null
      : round(xs.reduce<number>((a, x) => a + x!, 0) / xs.length, 1);
  return {
    nodeUs: mean(values.map((v) => v.nodeUs)) ?? 0,
    pgOwnUs: mean(values.map((v) => v.pgOwnUs)),
    pgServerUs: mean(values.map((v) => v.pgServerUs)),
  };
}
