import os from 'node:os';
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { round } from '../harness/stats';
import type { Fleet } from './fleet';
import type { ScalingChecks, ScalingPoint, ScalingScenario } from './results';
import { bottleneckOf, startCpuWindow } from './window-cpu';
import { waitForCount } from './wait-count';

export interface RoundSpec {
  scenario: ScalingScenario;
  broker: string | null;
  processes: number;
  items: number;
  /** The COUNT that reaches `items` when the round is done (scaling-tables.ts COUNT). */
  doneSql: string;
  /** The checks after the window, given each worker's `stop` answer. */
  check: (stopped: Record<string, unknown>[]) => Promise<ScalingChecks>;
}

/** Generous: a round on a busy 2-core box can be 10× slower than on an idle one. */
export const roundTimeoutMs = (items: number): number => Math.max(120_000, items * 20);

/**
 * One measured round on the first `spec.processes` workers of `fleet` (already prepared, the
 * backlog already in place): CPU window and clock start, `go`, wait for the done count, window
 * ends, `stop`, checks. A failure anywhere is returned as the round's error (the run goes on).
 */
export async function measureRound(
  fleet: Fleet,
  monitor: pg.Client,
  spec: RoundSpec,
): Promise<ScalingPoint> {
  const n = spec.processes;
  const base = {
    scenario: spec.scenario,
    broker: spec.broker,
    processes: n,
    items: spec.items,
    speedup: null,
  };
  const window = await startCpuWindow(monitor, fleet.pids(n));
  const t0 = performance.now();
  try {
    await fleet.command(n, 'go');
    const { firstAt, doneAt } = await waitForCount(
      monitor,
      spec.doneSql,
      spec.items,
      `${spec.scenario} ${spec.broker ?? ''} ×${n}`,
      roundTimeoutMs(spec.items),
      () => fleet.problem(),
    );
    const { cpu, loadAvg1m } = await window.stop(spec.items);
    const stopped = await fleet.command(n, 'stop');
    const elapsedMs = doneAt - t0;
    return {
      ...base,
      elapsedMs: round(elapsedMs, 1),
      firstItemMs: round(firstAt - t0, 1),
      perSec: round(spec.items / (elapsedMs / 1000), 1),
      cpu,
      loadAvg1m,
      bottleneck: bottleneckOf(cpu, os.cpus().length),
      checks: await spec.check(stopped),
    };
  } catch (error) {
    const { cpu, loadAvg1m } = await window.stop(0);
    await fleet.command(n, 'stop').catch(() => undefined);
    return {
      ...base,
      elapsedMs: 0,
      firstItemMs: 0,
      perSec: 0,
      cpu,
      loadAvg1m,
      bottleneck: 'n/a (round failed)',
      checks: { ok: false, problems: ['the round did not finish'] },
      error:
        error instanceof Error ? error.message.split('\n').slice(0, 3).join(' | ') : String(error),
    };
  }
}

/** Builds ScalingChecks from named expectations: each `[label, actual, expected]`. */
export function expectCounts(
  counts: Record<string, number>,
  expectations: readonly [label: string, actual: number, expected: number][],
): ScalingChecks {
  const problems = expectations
    .filter(([, actual, expected]) => actual !== expected)
    .map(([label, actual, expected]) => `${label}: ${actual}, expected ${expected}`);
  return { ok: problems.length === 0, problems, ...counts };
}
