/** What one HTTP load run writes to `benchmarks/results/http-load-<broker>.json`. */
import type { GitInfo, MachineInfo } from '../harness/machine';
import type { HttpSummary } from './load';
import type { LoadBroker } from './options';
import type { SagaOutcomes } from './sagas';
import type { RunUsage } from './usage';

export const HTTP_LOAD_FORMAT = 'sage-http-load/1';

export interface HttpLoadSettings {
  durationS: number;
  connections: number;
  /** Requests/s asked for over all connections; null: closed loop (as fast as answers come). */
  rate: number | null;
  maxRequests: number;
  declineEvery: number;
  drainTimeoutS: number;
  requestTimeoutS: number;
  /** The services' LOG_LEVEL. */
  logLevel: string;
  quick: boolean;
}

export interface Verdict {
  ok: boolean;
  failures: string[];
}

export interface HttpLoadResult {
  format: typeof HTTP_LOAD_FORMAT;
  broker: LoadBroker;
  startedAt: string;
  /** How to run it again. */
  command: string;
  git: GitInfo;
  machine: MachineInfo;
  /** The environment's (shared) servers or the run's private ones, and where. */
  servers: string;
  settings: HttpLoadSettings;
  http: HttpSummary;
  sagas: SagaOutcomes;
  usage: RunUsage;
  /** Services that exited on their own before the end (must be none). */
  exitedEarly: string[];
  verdict: Verdict;
  /** Where each service's output went. */
  logs: string;
  wallMs: number;
}
