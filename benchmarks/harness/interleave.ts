import { combineWindows, runClosedLoop, type LoopWindow, type Operation } from './closed-loop';
import { countsDelta, snapshotCounts, totalOf } from './query-counter';
import type { ResourceMonitor } from './resources';
import type { Measurement } from './results';
import { round } from './stats';

export interface MeasuredSystem {
  op: Operation;
  monitor: ResourceMonitor;
}

export interface InterleaveOptions {
  concurrency: number;
  /** Measured time per system, split evenly over the slices. */
  durationMs: number;
  slices: number;
  /** Warm-up before each system's first slice. */
  warmupMs: number;
  /** Warm-up before every later slice (pools and JIT are warm by then; this only refills the loop). */
  sliceWarmupMs: number;
}

type Measured = Omit<Measurement, 'notes'>;

/**
 * Measures the subject and its ceiling in alternating slices, A B B A A B ..., so that whatever
 * else the machine is doing (other processes, checkpoints, table growth) falls on both sides alike
 * instead of on whichever happened to run second. Per side, the slices are combined exactly:
 * throughput over the summed windows, percentiles over every sample.
 */
export async function measureInterleaved(
  subject: MeasuredSystem,
  ceiling: MeasuredSystem,
  options: InterleaveOptions,
): Promise<{ subject: Measured; ceiling: Measured }> {
  const sliceMs = Math.max(1, Math.round(options.durationMs / options.slices));
  const sides = [
    { system: subject, windows: [] as LoopWindow[], statements: 0, warmedUp: false },
    { system: ceiling, windows: [] as LoopWindow[], statements: 0, warmedUp: false },
  ];
  for (let slice = 0; slice < options.slices; slice++) {
    const order = slice % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) {
      let before = snapshotCounts();
      let after = before;
      const window = await runClosedLoop(side.system.op, {
        concurrency: options.concurrency,
        warmupMs: side.warmedUp ? options.sliceWarmupMs : options.warmupMs,
        durationMs: sliceMs,
        onWindowStart: () => {
          before = snapshotCounts();
          side.system.monitor.start();
        },
        onWindowEnd: () => {
          after = snapshotCounts();
          side.system.monitor.stop();
        },
      });
      side.warmedUp = true;
      side.windows.push(window);
      side.statements += totalOf(countsDelta(before, after));
    }
  }
  const result = async (side: (typeof sides)[number]): Promise<Measured> => {
    const loop = combineWindows(options.concurrency, side.windows);
    return {
      ...loop,
      resources: await side.system.monitor.usage(),
      statementsPerOp: loop.completed ? round(side.statements / loop.completed, 2) : 0,
    };
  };
  return { subject: await result(sides[0]!), ceiling: await result(sides[1]!) };
}
