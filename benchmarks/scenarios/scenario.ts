import type { PgTarget } from '../harness/database';
import type { Profile, ScenarioResult } from '../harness/results';

export interface ScenarioContext {
  target: PgTarget;
  profile: Profile;
  /** Connections in the pool of the system under test; the raw ceiling gets the same number. */
  poolSize: number;
  /** Overrides the engine's maxConcurrentSagas (default: max(64, 2 × concurrency), see the scenario). */
  maxConcurrentSagas?: number;
  log: (line: string) => void;
}

export interface Scenario {
  name: string;
  description: string;
  /** Whether a full run of this profile includes the scenario (default: always). */
  enabled?: (profile: Profile) => boolean;
  run(ctx: ScenarioContext): Promise<ScenarioResult>;
}
