import type { ClosedLoopResult } from './closed-loop';
import type { GitInfo, MachineInfo } from './machine';
import type { StatementCounts } from './query-counter';
import type { ResourceUsage } from './resources';

/** Bumped when the JSON shape changes incompatibly; the docs generator skips other versions. */
export const RESULTS_FORMAT = 1;

export type ProfileName = 'quick' | 'default';

export interface Profile {
  name: ProfileName;
  /** Warm-up before each system's first slice at a concurrency point. */
  warmupMs: number;
  /** Measured time per system per concurrency point, split into `slices` alternating slices. */
  durationMs: number;
  slices: number;
  /** Warm-up before each later slice. */
  sliceWarmupMs: number;
  concurrency: number[];
  /** Sagas run one at a time to count statements per saga. */
  calibrationSagas: number;
}

/** One system (the engine, or its raw ceiling) at one concurrency. */
export interface Measurement extends ClosedLoopResult {
  resources: ResourceUsage;
  /** Statements per completed operation over the window (background loops included). */
  statementsPerOp: number;
  /** Anything else the system reported (e.g. sagas resumed by recovery, logged errors). */
  notes: Record<string, number | string>;
}

export interface PointResult {
  concurrency: number;
  subject: Measurement;
  ceiling: Measurement;
  /** subject / ceiling: < 1 for throughput means the framework is slower; > 1 for latency likewise. */
  ratio: { throughput: number; p50: number; p95: number; p99: number };
}

export interface Calibration {
  operations: number;
  /** Statements (round trips) per operation by leading keyword; BEGIN..COMMIT pairs are transactions. */
  subject: StatementCounts;
  ceiling: StatementCounts;
}

export interface ScenarioResult {
  name: string;
  description: string;
  labels: { unit: string; subject: string; ceiling: string };
  config: Record<string, number | string | boolean>;
  calibration: Calibration;
  points: PointResult[];
}

export interface RunResult {
  format: typeof RESULTS_FORMAT;
  startedAt: string;
  finishedAt: string;
  profile: Profile;
  git: GitInfo;
  machine: MachineInfo;
  scenarios: ScenarioResult[];
}
