/**
 * The shape of benchmarks/results/scaling.json (`npm run bench:scaling`), and the one place that
 * reads it back: docs/scaling.md's generated tables are rendered from a parsed file, never from
 * numbers typed by hand.
 */
export const SCALING_SCHEMA_VERSION = 1;

export type ScalingScenario = 'relay' | 'consumer' | 'saga';
export const SCALING_SCENARIOS: readonly ScalingScenario[] = ['relay', 'consumer', 'saga'];

/** CPU over one measured window, in % of ONE core (200 = two cores busy), from /proc. */
export interface WindowCpu {
  /** The N worker processes together. */
  workersPct: number;
  /** Backends connected to the bench database (the workers' pools). */
  pgBackendsPct: number;
  /** Every postgres process (WAL writer, checkpointer, other databases' backends too). */
  pgAllPct: number;
  /** Broker servers on this machine (java, beam.smp, nats-server). */
  brokerPct: number;
  /** The whole machine, % of ALL cores (100 = every core busy). */
  machinePct: number;
  /**
   * The rest of the machine's busy time, % of one core: processes this run did not start (other
   * benchmarks, tests, builds). Large means the figures measure contention.
   */
  othersPct: number;
  /** Worker CPU per item (message / saga), in ms. */
  workersMsPerItem: number;
  /**
   * PostgreSQL CPU per item, in ms: every postgres process, so also other databases' backends
   * when the server is shared (an upper bound).
   */
  pgMsPerItem: number;
  /** The bench database's backends' CPU per item, in ms (a lower bound: no WAL writer, checkpointer). */
  pgBackendsMsPerItem: number;
}

/** What the run checked after the window: every figure is a count, `ok` says whether all held. */
export interface ScalingChecks {
  ok: boolean;
  /** One line per check that failed (empty when ok). */
  problems: string[];
  [count: string]: number | boolean | string[];
}

export interface ScalingPoint {
  scenario: ScalingScenario;
  /** null for sagas (no broker involved). */
  broker: string | null;
  processes: number;
  /** Messages (relay, consumer) or sagas (saga) the window processed. */
  items: number;
  /** From the start command to the last item done. */
  elapsedMs: number;
  /** From the start command to the first item seen done (process warm-up, group join, first claim). */
  firstItemMs: number;
  perSec: number;
  /** perSec / perSec of 1 process of the same scenario and broker in this run (null for 1). */
  speedup: number | null;
  cpu: WindowCpu;
  /** 1-minute load average at the start and end of the window. */
  loadAvg1m: { start: number; end: number };
  /** Which resource ran out first, in words, from the CPU figures (see bottleneckOf). */
  bottleneck: string;
  checks: ScalingChecks;
  error?: string;
}

export interface ScalingResults {
  schemaVersion: number;
  startedAt: string;
  finishedAt: string;
  quick: boolean;
  machine: {
    cpuModel: string;
    cores: number;
    ramGb: number;
    node: string;
    postgres: string;
    loadAvg1mAtStart: number;
    loadAvg1mAtEnd: number;
  };
  settings: {
    processCounts: number[];
    relayMessages: number;
    consumerMessages: number;
    sagas: number;
    poolSize: number;
    brokers: string[];
  };
  points: ScalingPoint[];
  /** Scenarios that could not run at all (their worker processes did not start), in words. */
  failures: string[];
}

/** Thrown when scaling.json is not what this version of the harness writes. */
export class ScalingResultsError extends Error {
  constructor(problem: string) {
    super(
      `benchmarks/results/scaling.json is not a scaling results file: ${problem}. ` +
        'Run `npm run bench:scaling` to write a fresh one.',
    );
    this.name = 'ScalingResultsError';
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function num(where: string, v: unknown, nullable = false): void {
  if (nullable && v === null) return;
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new ScalingResultsError(`${where} must be a finite number, got ${JSON.stringify(v)}`);
}

/** Parses and checks the JSON text of a results file (throws ScalingResultsError naming the field). */
export function parseScalingResults(text: string): ScalingResults {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new ScalingResultsError(`not JSON (${(error as Error).message})`);
  }
  if (!isRecord(data)) throw new ScalingResultsError('the top level must be an object');
  if (data.schemaVersion !== SCALING_SCHEMA_VERSION)
    throw new ScalingResultsError(
      `schemaVersion is ${JSON.stringify(data.schemaVersion)}, expected ${SCALING_SCHEMA_VERSION}`,
    );
  if (!isRecord(data.machine)) throw new ScalingResultsError('machine is missing');
  num('machine.cores', data.machine.cores);
  if (!isRecord(data.settings)) throw new ScalingResultsError('settings is missing');
  if (!Array.isArray(data.points)) throw new ScalingResultsError('points must be an array');
  if (!Array.isArray(data.failures) || data.failures.some((f) => typeof f !== 'string'))
    throw new ScalingResultsError('failures must be an array of strings');
  data.points.forEach((p: unknown, i) => {
    const at = `points[${i}]`;
    if (!isRecord(p)) throw new ScalingResultsError(`${at} must be an object`);
    if (!SCALING_SCENARIOS.includes(p.scenario as ScalingScenario))
      throw new ScalingResultsError(
        `${at}.scenario must be one of ${SCALING_SCENARIOS.join(', ')}, got ${JSON.stringify(p.scenario)}`,
      );
    if (p.broker !== null && typeof p.broker !== 'string')
      throw new ScalingResultsError(`${at}.broker must be a string or null`);
    num(`${at}.processes`, p.processes);
    num(`${at}.items`, p.items);
    num(`${at}.elapsedMs`, p.elapsedMs);
    num(`${at}.firstItemMs`, p.firstItemMs);
    num(`${at}.perSec`, p.perSec);
    num(`${at}.speedup`, p.speedup, true);
    if (!isRecord(p.cpu)) throw new ScalingResultsError(`${at}.cpu is missing`);
    for (const k of [
      'workersPct',
      'pgBackendsPct',
      'pgAllPct',
      'brokerPct',
      'machinePct',
      'othersPct',
      'workersMsPerItem',
      'pgMsPerItem',
      'pgBackendsMsPerItem',
    ])
      num(`${at}.cpu.${k}`, p.cpu[k]);
    if (!isRecord(p.loadAvg1m)) throw new ScalingResultsError(`${at}.loadAvg1m is missing`);
    if (!isRecord(p.checks) || typeof p.checks.ok !== 'boolean')
      throw new ScalingResultsError(`${at}.checks.ok must be a boolean`);
  });
  return data as unknown as ScalingResults;
}
