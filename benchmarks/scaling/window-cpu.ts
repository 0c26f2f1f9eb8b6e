/**
 * CPU of one measured window, read from /proc by the controller (so the worker processes pay
 * nothing for it): the worker processes by pid, the PostgreSQL backends serving the bench
 * database, every postgres process, the broker servers, and the machine. Linux only; elsewhere
 * every figure is 0 and the report says the bottleneck is unknown.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { BROKER_COMMS, machineTicks, pidCpuTicks, processCpuTicks } from '../harness/resources';
import { round } from '../harness/stats';
import type { WindowCpu } from './results';

/** USER_HZ: 100 on every mainstream Linux build. */
const TICK_MS = 10;

/** utime + stime of `pid` in clock ticks (0 once it is gone). */
const pidTicks = (pid: number): number => pidCpuTicks(pid) ?? 0;

const sum = (m: Map<number, number> | null): number =>
  m ? [...m.values()].reduce((a, b) => a + b, 0) : 0;

interface Snapshot {
  at: number;
  workers: Map<number, number>;
  postgres: Map<number, number>;
  broker: number;
  machine: { busy: number; total: number } | null;
  load: number;
}

/** Backend pids connected to the database `monitor` is connected to (the monitor's own excluded). */
async function benchBackends(monitor: pg.Client): Promise<number[]> {
  const { rows } = await monitor.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
  );
  return rows.map((r) => r.pid);
}

/** Starts a window now; `stop(items)` ends it and returns the CPU figures. */
export async function startCpuWindow(
  monitor: pg.Client,
  workerPids: readonly number[],
): Promise<{
  stop: (items: number) => Promise<{ cpu: WindowCpu; loadAvg1m: { start: number; end: number } }>;
}> {
  const snap = (): Snapshot => ({
    at: performance.now(),
    workers: new Map(workerPids.map((pid) => [pid, pidTicks(pid)])),
    postgres: processCpuTicks(new Set(['postgres'])) ?? new Map(),
    broker: sum(processCpuTicks(BROKER_COMMS)),
    machine: machineTicks(),
    load: os.loadavg()[0] ?? 0,
  });
  const backendsAtStart = await benchBackends(monitor);
  const start = snap();
  return {
    async stop(items) {
      const end = snap();
      const backends = new Set([...backendsAtStart, ...(await benchBackends(monitor))]);
      const wallMs = Math.max(1, end.at - start.at);
      const pct = (ticks: number): number => round(((ticks * TICK_MS) / wallMs) * 100, 1);
      let workers = 0;
      for (const [pid, t] of end.workers) workers += Math.max(0, t - (start.workers.get(pid) ?? 0));
      let pgAll = 0;
      let pgOurs = 0;
      for (const [pid, t] of end.postgres) {
        const used = Math.max(0, t - (start.postgres.get(pid) ?? 0));
        pgAll += used;
        if (backends.has(pid)) pgOurs += used;
      }
      const machinePct =
        start.machine && end.machine && end.machine.total > start.machine.total
          ? round(
              ((end.machine.busy - start.machine.busy) /
                (end.machine.total - start.machine.total)) *
                100,
              1,
            )
          : 0;
      const machineAsCores = (machinePct / 100) * os.cpus().length * 100;
      const perItem = (ticks: number): number =>
        items > 0 ? round((ticks * TICK_MS) / items, 3) : 0;
      return {
        cpu: {
          workersPct: pct(workers),
          pgBackendsPct: pct(pgOurs),
          pgAllPct: pct(pgAll),
          brokerPct: pct(Math.max(0, end.broker - start.broker)),
          machinePct,
          othersPct: round(
            Math.max(
              0,
              machineAsCores -
                pct(workers) -
                pct(pgAll) -
                pct(Math.max(0, end.broker - start.broker)),
            ),
            1,
          ),
          workersMsPerItem: perItem(workers),
          pgMsPerItem: perItem(pgAll),
          pgBackendsMsPerItem: perItem(pgOurs),
        },
        loadAvg1m: { start: round(start.load, 2), end: round(end.load, 2) },
      };
    },
  };
}

/**
 * Which resource ran out first, from one window's CPU: when the machine is (nearly) saturated,
 * the biggest consumer among Node workers, PostgreSQL and the broker; otherwise nothing CPU-bound
 * (the window waited on round trips, fsync or the broker's acknowledgements).
 */
export function bottleneckOf(cpu: WindowCpu, cores: number): string {
  if (cpu.machinePct === 0 && cpu.workersPct === 0) return 'unknown (no /proc)';
  const shares: [string, number][] = [
    ['Node workers', cpu.workersPct],
    ['PostgreSQL', cpu.pgAllPct],
    ['broker', cpu.brokerPct],
    ['other processes (not this run)', cpu.othersPct],
  ];
  shares.sort((a, b) => b[1] - a[1]);
  const [top, topPct] = shares[0]!;
  const coresUsed = round(topPct / 100, 2);
  if (cpu.machinePct >= 85)
    return `machine CPU (${cpu.machinePct}% of ${cores} cores); most by ${top} (${coresUsed} cores)`;
  return `not CPU (machine ${cpu.machinePct}%): waits (round trips, fsync, acks); most CPU ${top}`;
}
