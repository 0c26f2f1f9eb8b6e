import type { CpuPerMessage } from './cpu-meter';
import type { BrokerKindName } from './results';

/**
 * Results of the relay-mode scenarios (issue 17): outbox-wal-relay-throughput (WAL-streaming relay
 * vs polling relay vs the raw client, per broker) and outbox-backlog-scaling (relay rate on a large
 * backlog vs a small one, 1 / 2 / 4 relays).
 */

/** Sizes of the relay-mode scenarios (absent in results files written before they existed). */
export interface RelayModesProfile {
  /** outbox-wal-relay-throughput: messages per drain, drains per mode (alternating order). */
  drainMessages: number;
  drainRepetitions: number;
  /** outbox-backlog-scaling: the large and the small backlog, relay counts, small drains per point. */
  backlogLarge: number;
  backlogSmall: number;
  backlogRelayCounts: number[];
  backlogSmallRepetitions: number;
}

export type DrainMode = 'polling' | 'wal' | 'raw';

/** One mode's drains of one broker. */
export interface ModeDrain {
  /** Each drain: messages, start → last message recorded sent (raw: acked), messages/s. */
  trials: { messages: number; elapsedMs: number; perSec: number; loadAvg1m: number }[];
  /** Messages over summed drain time. */
  throughputPerSec: number;
  /** Mean over the drains, µs per message. */
  cpuPerMsg: CpuPerMessage;
}

export interface WalRelayRun {
  broker: BrokerKindName;
  address: string;
  client: string;
  modes: Partial<Record<DrainMode, ModeDrain>>;
  /** Over summed drain time. */
  ratio?: { walToRaw: number; pollingToRaw: number; walToPolling: number };
  error?: string;
}

export interface OutboxWalRelayScenarioResult {
  kind: 'outbox-wal-relay-throughput';
  name: string;
  description: string;
  labels: Record<DrainMode, string>;
  config: Record<string, number | string | boolean>;
  brokers: WalRelayRun[];
  /** Why the WAL relay was not measured (e.g. wal_level is not logical). */
  walNotRun?: string;
  skipped: { broker: BrokerKindName; reason: string }[];
}

/** One relay count on one backlog size. */
export interface BacklogPoint {
  relays: number;
  backlog: number;
  /** Messages/s of each drain (backlog over start → last batch recorded sent). */
  trialsPerSec: number[];
  /** Median of the drains. */
  perSec: number;
  /** perSec ÷ the 1-relay small-backlog rate. */
  ratioToBaseline: number;
  loadAvg1m: number;
  /**
   * The relays' own counters summed over the drains (batches, claimed, staleMarks, released,
   * reaped, loopErrors): where a slow point spent its claims.
   */
  relayStats?: Record<string, number>;
}

export interface OutboxBacklogScalingScenarioResult {
  kind: 'outbox-backlog-scaling';
  name: string;
  description: string;
  config: Record<string, number | string | boolean>;
  /** The 1-relay small-backlog rate every point is divided by. */
  baselinePerSec: number;
  points: BacklogPoint[];
}
