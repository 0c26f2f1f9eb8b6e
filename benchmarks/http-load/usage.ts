/**
 * What the run cost, read from /proc by this controller (the services pay nothing for it): CPU
 * seconds and peak RSS of each service process, CPU of the PostgreSQL backends serving the run's
 * databases, of every postgres process and of the broker servers (both shared with whatever else
 * runs on the machine), the machine's busy share, and os.loadavg() through the window. The window
 * runs from the first request to the end of the drain. Linux only: elsewhere the /proc figures are
 * null.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { BROKER_COMMS, machineTicks, pidCpuTicks, processCpuTicks } from '../harness/resources';
import { round } from '../harness/stats';
import type { ServiceName } from './stack';

/** USER_HZ: 100 on every mainstream Linux build (sysconf(_SC_CLK_TCK)). */
const TICK_S = 0.01;
const SAMPLE_EVERY_MS = 1_000;

export interface ProcessUsage {
  pid: number;
  /** CPU (user + system) in the window, seconds. */
  cpuS: number | null;
  /** CPU since the process started (ts-node's compile and the migrations included), seconds. */
  cpuTotalS: number | null;
  /** Peak resident set size over the process's life (VmHWM), MB. */
  peakRssMb: number | null;
}

/** An open transaction, and how old it was when sampled. */
export interface OldestTransaction {
  database: string | null;
  applicationName: string;
  /** `active`, `idle in transaction`, ... */
  state: string | null;
  /** The start of its current or last statement (parameterised: no values). */
  query: string | null;
  ageS: number;
}

export interface RunUsage {
  windowS: number;
  services: Record<ServiceName, ProcessUsage>;
  /** This controller (autocannon and the checks). */
  controller: { cpuS: number; peakRssMb: number };
  postgres: {
    /** Backends connected to the run's databases (sampled every second), CPU in the window. */
    backendsCpuS: number | null;
    backendsSeen: number;
    /** Every postgres process on the machine (other databases' work too). */
    serverCpuS: number | null;
  };
  /** Broker server processes on the machine (java, beam.smp, nats-server; shared). */
  brokerServerCpuS: number | null;
  /**
   * The oldest transaction seen open on the PostgreSQL server during the window (sampled every
   * second, any database): a long one holds back the cluster-wide xmin, below which alone the
   * outbox relays publish, so it stalls every relay on the server while it lasts.
   */
  oldestTransaction: OldestTransaction | null;
  /** Whole machine busy time over the window, % of all cores. */
  machineCpuPct: number | null;
  cores: number;
  loadAvg: {
    atStart: number[];
    atEnd: number[];
    /** 1-minute load average sampled every second through the window. */
    oneMinute: { min: number; mean: number; max: number; samples: number };
  };
}

/** VmHWM of `pid` in MB (the kernel's own peak RSS), or null. */
function peakRssMb(pid: number): number | null {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('VmHWM:'));
    return line ? round(Number(line.replace(/\D+/g, '')) / 1024, 1) : null;
  } catch {
    return null;
  }
}

const ticksToS = (ticks: number | null): number | null =>
  ticks === null ? null : round(ticks * TICK_S, 2);

/**
 * CPU ticks of a set of processes over the window, sampled: per pid the ticks when first seen (0
 * for one that started inside the window) and the latest, so a process that comes and goes (a
 * pooled backend, a restarted broker) still counts up to its last sample.
 */
class TickTracker {
  private readonly seen = new Map<number, [number, number]>();
  private known = true;

  update(ticks: ReadonlyMap<number, number> | null, atStart: boolean): void {
    if (!ticks) {
      this.known = false;
      return;
    }
    for (const [pid, t] of ticks) {
      const entry = this.seen.get(pid);
      if (entry) entry[1] = t;
      else this.seen.set(pid, [atStart ? t : 0, t]);
    }
  }

  get processes(): number {
    return this.seen.size;
  }

  seconds(): number | null {
    if (!this.known) return null;
    let ticks = 0;
    for (const [first, last] of this.seen.values()) ticks += Math.max(0, last - first);
    return ticksToS(ticks);
  }
}

/** Samples from `start()` to `stop()`; `stop()` must run before the services are stopped. */
export class UsageWindow {
  private readonly startedAt = performance.now();
  private readonly cpuAtStart = process.cpuUsage();
  private readonly serviceTicks = new Map<ServiceName, number | null>();
  private readonly machineAtStart = machineTicks();
  private readonly loadAtStart = os.loadavg();
  private readonly loads: number[] = [os.loadavg()[0] ?? 0];
  private readonly backends = new TickTracker();
  private readonly postgres = new TickTracker();
  private readonly brokers = new TickTracker();
  private readonly monitor: pg.Client;
  private halted = false;
  private sampling: Promise<void> = Promise.resolve();

  private oldest: OldestTransaction | null = null;

  private constructor(
    server: pg.ClientConfig,
    private readonly pids: ReadonlyMap<ServiceName, number>,
    private readonly databases: readonly string[],
  ) {
    for (const [name, pid] of pids) this.serviceTicks.set(name, pidCpuTicks(pid));
    this.monitor = new pg.Client({ ...server, application_name: 'sage-http-load-monitor' });
  }

  /** `server`: the PostgreSQL the run's `databases` are on. */
  static async start(
    server: pg.ClientConfig,
    pids: ReadonlyMap<ServiceName, number>,
    databases: readonly string[],
  ): Promise<UsageWindow> {
    const w = new UsageWindow(server, pids, databases);
    await w.monitor.connect();
    await w.sample(true);
    w.sampling = w.loop();
    return w;
  }

  async stop(): Promise<RunUsage> {
    this.halted = true;
    await this.sampling;
    await this.sample(false);
    await this.monitor.end();
    const windowS = (performance.now() - this.startedAt) / 1000;
    const cpu = process.cpuUsage(this.cpuAtStart);
    const machineEnd = machineTicks();
    const services = {} as Record<ServiceName, ProcessUsage>;
    for (const [name, pid] of this.pids) {
      const end = pidCpuTicks(pid);
      const start = this.serviceTicks.get(name) ?? null;
      services[name] = {
        pid,
        cpuS: end === null || start === null ? null : ticksToS(end - start),
        cpuTotalS: ticksToS(end),
        peakRssMb: peakRssMb(pid),
      };
    }
    const loads = this.loads;
    return {
      windowS: round(windowS, 1),
      services,
      controller: {
        cpuS: round((cpu.user + cpu.system) / 1e6, 2),
        peakRssMb: peakRssMb(process.pid) ?? round(process.memoryUsage().rss / 1024 / 1024, 1),
      },
      postgres: {
        backendsCpuS: this.backends.seconds(),
        backendsSeen: this.backends.processes,
        serverCpuS: this.postgres.seconds(),
      },
      brokerServerCpuS: this.brokers.seconds(),
      oldestTransaction: this.oldest,
      machineCpuPct:
        this.machineAtStart && machineEnd && machineEnd.total > this.machineAtStart.total
          ? round(
              ((machineEnd.busy - this.machineAtStart.busy) /
                (machineEnd.total - this.machineAtStart.total)) *
                100,
              1,
            )
          : null,
      cores: os.cpus().length,
      loadAvg: {
        atStart: this.loadAtStart.map((v) => round(v, 2)),
        atEnd: os.loadavg().map((v) => round(v, 2)),
        oneMinute: {
          min: round(Math.min(...loads), 2),
          mean: round(loads.reduce((a, b) => a + b, 0) / loads.length, 2),
          max: round(Math.max(...loads), 2),
          samples: loads.length,
        },
      },
    };
  }

  // Single-flight: the next sample is scheduled after the previous one settles.
  private async loop(): Promise<void> {
    while (!this.halted) {
      await sleep(SAMPLE_EVERY_MS);
      this.loads.push(os.loadavg()[0] ?? 0);
      await this.sample(false).catch(() => undefined);
    }
  }

  /** Every postgres and broker process's ticks, and which postgres pids serve the run's databases. */
  private async sample(atStart: boolean): Promise<void> {
    const postgres = processCpuTicks(new Set(['postgres']));
    this.postgres.update(postgres, atStart);
    this.brokers.update(processCpuTicks(BROKER_COMMS), atStart);
    const { rows } = await this.monitor.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity
       WHERE datname = ANY($1::text[]) AND backend_type = 'client backend'`,
      [this.databases],
    );
    this.backends.update(
      postgres &&
        new Map(
          rows.flatMap(({ pid }) => {
            const t = postgres.get(pid);
            return t === undefined ? [] : [[pid, t] as const];
          }),
        ),
      atStart,
    );
    // The oldest open transaction on the server (any database): what holds the xmin back.
    const oldest = await this.monitor.query<OldestTransaction>(
      `SELECT datname AS database, application_name AS "applicationName", state,
              left(query, 160) AS query,
              round(extract(epoch FROM clock_timestamp() - xact_start)::numeric, 1)::float8 AS "ageS"
       FROM pg_stat_activity
       WHERE xact_start IS NOT NULL AND (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL)
         AND pid <> pg_backend_pid()
       ORDER BY xact_start LIMIT 1`,
    );
    const row = oldest.rows[0];
    if (row && row.ageS > (this.oldest?.ageS ?? 0)) this.oldest = row;
  }
}
