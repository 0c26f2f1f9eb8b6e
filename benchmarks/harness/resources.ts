import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Client } from 'pg';
import { round } from './stats';

export interface ResourceUsage {
  /** Benchmark process CPU (user + system) over the windows, in % of one core. */
  processCpuPct: number;
  processCpuUserMs: number;
  processCpuSystemMs: number;
  /** Peak resident set size of the benchmark process during the windows. */
  rssMaxMb: number;
  heapUsedMaxMb: number;
  /** The backends serving the measured pool, % of one core; null off Linux. */
  pgBackendCpuPct: number | null;
  /**
   * Every PostgreSQL process (WAL writer, checkpointer, and backends of OTHER databases too), % of
   * one core; null off Linux.
   */
  pgServerCpuPct: number | null;
  /**
   * The broker servers on this machine (processes named java — Kafka —, beam.smp — RabbitMQ —,
   * nats-server), % of one core; null off Linux. Part of "other processes", but work the run
   * caused when it publishes (absent in older results files).
   */
  brokerServerCpuPct?: number | null;
  /** Whole machine busy time (/proc/stat), % of ALL cores: shows work this run did not cause. */
  machineCpuPct: number | null;
  /** Connections to the bench database under the measured application_name. */
  pgConnectionsMax: number;
  /** Mean number of those connections running a statement (state = 'active') when sampled. */
  pgConnectionsActiveMean: number;
  samples: number;
}

const SAMPLE_EVERY_MS = 200;
const MB = 1024 * 1024;
/** USER_HZ; 100 on every mainstream Linux build (sysconf(_SC_CLK_TCK)). */
const CLOCK_TICKS_PER_SEC = 100;

interface WindowStart {
  cpu: NodeJS.CpuUsage;
  wall: number;
  pgTicks: Map<number, number> | null;
  brokerTicks: number | null;
  machine: { busy: number; total: number } | null;
  backendPids: Promise<number[]>;
  /** Set to stop this window's sampling loop. */
  halt: { requested: boolean };
  sampling: Promise<void>;
}

/**
 * Samples what one measured system costs over one or more windows (start/stop pairs, summed):
 * process CPU (process.cpuUsage), RSS, PostgreSQL CPU and whole-machine CPU (from /proc), and the
 * connections the system holds (pg_stat_activity, on a separate monitoring connection so it never
 * takes a slot of the measured pool). `start`/`stop` are synchronous so they can run from timers.
 */
export class ResourceMonitor {
  private current: WindowStart | undefined;
  private readonly finished: Promise<void>[] = [];
  private cpuUserUs = 0;
  private cpuSystemUs = 0;
  private wallMs = 0;
  private pgAllTicks: number | null = 0;
  private pgOurTicks: number | null = 0;
  private brokerTicks: number | null = 0;
  private machineBusy = 0;
  private machineTotal = 0;
  private machineKnown = true;
  private rssMax = 0;
  private heapMax = 0;
  private connMax = 0;
  private activeSum = 0;
  private samples = 0;

  constructor(
    private readonly monitor: Client,
    private readonly applicationName: string,
  ) {}

  start(): void {
    if (this.current) throw new Error('ResourceMonitor.start() twice');
    const halt = { requested: false };
    this.current = {
      cpu: process.cpuUsage(),
      wall: performance.now(),
      pgTicks: postgresCpuTicks(),
      brokerTicks: sumTicks(processCpuTicks(BROKER_COMMS)),
      machine: machineTicks(),
      backendPids: this.backendPids(),
      halt,
      sampling: this.sampleLoop(halt),
    };
  }

  stop(): void {
    const w = this.current;
    if (!w) throw new Error('ResourceMonitor.stop() before start()');
    this.current = undefined;
    const cpu = process.cpuUsage(w.cpu);
    const wallMs = performance.now() - w.wall;
    const pgTicksEnd = postgresCpuTicks();
    const brokerTicksEnd = sumTicks(processCpuTicks(BROKER_COMMS));
    const machineEnd = machineTicks();
    w.halt.requested = true;
    this.finished.push(
      (async () => {
        await w.sampling;
        const backends = new Set([...(await w.backendPids), ...(await this.backendPids())]);
        this.cpuUserUs += cpu.user;
        this.cpuSystemUs += cpu.system;
        this.wallMs += wallMs;
        if (w.pgTicks && pgTicksEnd && this.pgAllTicks !== null && this.pgOurTicks !== null) {
          for (const [pid, end] of pgTicksEnd) {
            // A pid first seen at the end started inside the window: all its ticks are ours.
            const used = end - (w.pgTicks.get(pid) ?? 0);
            this.pgAllTicks += used;
            if (backends.has(pid)) this.pgOurTicks += used;
          }
        } else {
          this.pgAllTicks = this.pgOurTicks = null;
        }
        if (w.brokerTicks !== null && brokerTicksEnd !== null && this.brokerTicks !== null)
          this.brokerTicks += Math.max(0, brokerTicksEnd - w.brokerTicks);
        else this.brokerTicks = null;
        if (w.machine && machineEnd) {
          this.machineBusy += machineEnd.busy - w.machine.busy;
          this.machineTotal += machineEnd.total - w.machine.total;
        } else this.machineKnown = false;
      })(),
    );
  }

  /** Totals over every window so far. */
  async usage(): Promise<ResourceUsage> {
    await Promise.all(this.finished);
    const wall = this.wallMs || 1;
    const pctOfCore = (ticks: number | null): number | null =>
      ticks === null ? null : round(((ticks * (1000 / CLOCK_TICKS_PER_SEC)) / wall) * 100, 1);
    return {
      processCpuPct: round(((this.cpuUserUs + this.cpuSystemUs) / 1000 / wall) * 100, 1),
      processCpuUserMs: round(this.cpuUserUs / 1000, 0),
      processCpuSystemMs: round(this.cpuSystemUs / 1000, 0),
      rssMaxMb: round(this.rssMax / MB, 1),
      heapUsedMaxMb: round(this.heapMax / MB, 1),
      pgBackendCpuPct: pctOfCore(this.pgOurTicks),
      pgServerCpuPct: pctOfCore(this.pgAllTicks),
      brokerServerCpuPct: pctOfCore(this.brokerTicks),
      machineCpuPct:
        this.machineKnown && this.machineTotal > 0
          ? round((this.machineBusy / this.machineTotal) * 100, 1)
          : null,
      pgConnectionsMax: this.connMax,
      pgConnectionsActiveMean: this.samples ? round(this.activeSum / this.samples, 2) : 0,
      samples: this.samples,
    };
  }

  private async backendPids(): Promise<number[]> {
    const { rows } = await this.monitor.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
      [this.applicationName],
    );
    return rows.map((r) => r.pid);
  }

  // Single-flight: one sample at a time, the next one scheduled after it settles.
  private async sampleLoop(halt: { requested: boolean }): Promise<void> {
    while (!halt.requested) {
      const mem = process.memoryUsage();
      this.rssMax = Math.max(this.rssMax, mem.rss);
      this.heapMax = Math.max(this.heapMax, mem.heapUsed);
      const { rows } = await this.monitor.query<{ total: number; active: number }>(
        `SELECT count(*)::int AS total, count(*) FILTER (WHERE state = 'active')::int AS active
         FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = $1`,
        [this.applicationName],
      );
      const row = rows[0] ?? { total: 0, active: 0 };
      this.connMax = Math.max(this.connMax, row.total);
      this.activeSum += row.active;
      this.samples++;
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_EVERY_MS));
    }
  }
}

/** Busy and total jiffies of all cores from the first line of /proc/stat (busy excludes idle and iowait). */
export function machineTicks(): { busy: number; total: number } | null {
  try {
    const fields = readFileSync('/proc/stat', 'utf8')
      .split('\n')[0]!
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already inside user/nice)
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

export const BROKER_COMMS = new Set(['java', 'beam.smp', 'nats-server']);

function sumTicks(ticks: Map<number, number> | null): number | null {
  if (!ticks) return null;
  let sum = 0;
  for (const v of ticks.values()) sum += v;
  return sum;
}

/** utime + stime (in clock ticks) of every process named `postgres`, or null when /proc is unavailable. */
function postgresCpuTicks(): Map<number, number> | null {
  return processCpuTicks(new Set(['postgres']));
}

/** utime + stime (in clock ticks) per pid of the processes whose comm is in `names`. */
/** utime + stime (fields 14 and 15, 1-based) of a `/proc/<pid>/stat` line, after the "(comm) ". */
function statTicks(stat: string): number {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
}

/** utime + stime of `pid` in clock ticks; null once it is gone or off Linux. */
export function pidCpuTicks(pid: number): number | null {
  try {
    return statTicks(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

export function processCpuTicks(names: ReadonlySet<string>): Map<number, number> | null {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return null;
  }
  const ticks = new Map<number, number>();
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const open = stat.indexOf('(');
    const close = stat.lastIndexOf(')');
    if (!names.has(stat.slice(open + 1, close))) continue;
    ticks.set(Number(entry), statTicks(stat));
  }
  return ticks;
}
