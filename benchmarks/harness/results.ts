import type { ClosedLoopResult } from './closed-loop';
import type { GitInfo, MachineInfo } from './machine';
import type { StatementCounts } from './query-counter';
import type { ResourceUsage } from './resources';
import type { LatencySummary } from './stats';
import type {
  OutboxBacklogScalingScenarioResult,
  OutboxWalRelayScenarioResult,
  RelayModesProfile,
} from './results-relay-modes';

/** Bumped when the JSON shape changes incompatibly; the docs generator skips other versions. */
export const RESULTS_FORMAT = 1;

export type ProfileName = 'quick' | 'default' | 'soak';

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
  /** The outbox scenarios' sizes (absent in results files written before they existed). */
  outbox?: OutboxProfile;
  /** The real-broker scenarios' sizes (absent in results files written before they existed). */
  brokers?: BrokerProfile;
  /** data-protection-cost's sizes (absent in results files written before it existed). */
  protection?: ProtectionProfile;
  /** contract-validation-cost's sizes (absent in results files written before it existed). */
  contracts?: ContractsProfile;
  /** consumer-throughput's sizes (absent in results files written before it existed). */
  consumers?: ConsumerProfile;
  /** The relay-mode scenarios' sizes (absent in results files written before they existed). */
  relayModes?: RelayModesProfile;
}

/** consumer-throughput: messages pre-loaded per broker, drains per variant (alternating order). */
export interface ConsumerProfile {
  messages: number;
  repetitions: number;
}

/** contract-validation-cost: contract validation off vs on, interleaved in the same run. */
export interface ContractsProfile {
  /** Outbox part: messages published per trial, trials per side (alternating off, on, on, off). */
  outboxMessages: number;
  outboxRepetitions: number;
  /** Consume part: messages delivered through the inbox per trial, trials per side. */
  consumeMessages: number;
  consumeRepetitions: number;
  /** Per-message part: checkOutgoing / checkIncoming calls timed, one at a time. */
  checkMessages: number;
}

/** data-protection-cost: encryption off vs on, interleaved in the same run. */
export interface ProtectionProfile {
  /** Saga part: closed-loop concurrency points, measured time per side per point. */
  sagaConcurrency: number[];
  sagaDurationMs: number;
  /** Outbox part: messages written (then drained) per trial, trials per side (alternating). */
  outboxMessages: number;
  outboxRepetitions: number;
  /** Consume part: openMessage calls timed, one at a time. */
  openMessages: number;
}

export interface BrokerProfile {
  /** outbox-broker-throughput: messages per drain, drain pairs per point, worker counts. */
  drainMessages: number;
  drainRepetitions: number;
  workerCounts: number[];
  /** Also drain with the raw relay loop (claim → raw publish → mark), once per point. */
  rawRelayDrains: boolean;
  /** outbox-commit-to-ack: every broker at `perBrokerRate`; `matrixBroker` also at `matrixRates`. */
  perBrokerRate: number;
  matrixBroker: BrokerKindName;
  matrixRates: number[];
  /** Measured time per variant and point, in `latencySlices` alternating slices, each after a warm-up. */
  latencyDurationMs: number;
  latencySlices: number;
  latencyWarmupMs: number;
  /** soak: length, offered rate, sampling interval (0 duration: no soak). */
  soakDurationMs: number;
  soakRatePerSec: number;
  soakSampleEveryMs: number;
}

export interface OutboxProfile {
  /** outbox-relay-throughput: messages pre-loaded per drain. */
  drainMessages: number;
  /** Drains per system and relay count, alternating relay / raw (1 → R r; 2 → R r r R; ...). */
  drainRepetitions: number;
  /** Relay counts (in-process, a pool each) to measure. */
  relayCounts: number[];
  /** outbox-commit-to-publish: open-loop commit rate, messages (= transactions) per second. */
  latencyRatePerSec: number;
  /** Measured time per system and wake-up mode, split into `latencySlices` alternating slices. */
  latencyDurationMs: number;
  latencySlices: number;
  /** Commits discarded at the start of every slice. */
  latencyWarmupMs: number;
  /** outbox-retention: sustained rate in messages per second, and messages per transaction. */
  retentionRatePerSec: number;
  retentionMessagesPerTx: number;
  /** Length of each of the two runs (retention on, retention off). */
  retentionDurationMs: number;
  /** OutboxRetention retentionMs and intervalMs for the runs with retention. */
  retentionMs: number;
  retentionIntervalMs: number;
  /** The third run adds a plain VACUUM of the outbox table this often (autovacuum comparison). */
  retentionVacuumEveryMs: number;
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

/** The closed-loop saga scenarios (`kind` is absent in results files written before the outbox ones). */
export interface ClosedLoopScenarioResult {
  kind?: 'closed-loop';
  name: string;
  description: string;
  labels: { unit: string; subject: string; ceiling: string };
  config: Record<string, number | string | boolean>;
  calibration: Calibration;
  points: PointResult[];
}

// ---------------------------------------------------------------------------------------------
// outbox-relay-throughput
// ---------------------------------------------------------------------------------------------

/** One drain: N pre-loaded messages until the last one is recorded sent. */
export interface DrainTrial {
  messages: number;
  elapsedMs: number;
  perSec: number;
  /** Claim rounds that claimed something, and their mean size. */
  batches: number;
  meanBatch: number;
  /** CPU of the rest of the machine during this drain (% of one core): other people's work. */
  otherCpuPct?: number | null;
}

/** One system (the relay, or the raw claim + mark loop) at one relay count, over its drains. */
export interface DrainMeasurement {
  trials: DrainTrial[];
  /** Messages over summed drain time. */
  throughputPerSec: number;
  meanBatch: number;
  /** Statements per claim round (claim + mark, plus whatever else the system sends). */
  statementsPerBatch: number;
  /** Claim rounds that came back empty (another relay held every head of key, or the end). */
  emptyClaims: number;
  /** Claim / mark-sent statement time as the caller saw it (one sample per round). */
  claimMs: LatencySummary;
  markMs: LatencySummary;
  resources: ResourceUsage;
  notes: Record<string, number | string>;
}

export interface DrainPoint {
  relays: number;
  subject: DrainMeasurement;
  ceiling: DrainMeasurement;
  ratio: {
    /**
     * Median over the drain pairs (relay drain i ÷ raw drain i, run back to back): robust to a
     * burst of other load hitting one drain.
     */
    throughput: number;
    /** Summed messages over summed time, relay ÷ raw (absent in older results files). */
    throughputTotals?: number;
    paired?: number[];
  };
}

export interface OutboxThroughputScenarioResult {
  kind: 'outbox-relay-throughput';
  name: string;
  description: string;
  labels: { subject: string; ceiling: string };
  config: Record<string, number | string | boolean>;
  points: DrainPoint[];
}

// ---------------------------------------------------------------------------------------------
// outbox-commit-to-publish
// ---------------------------------------------------------------------------------------------

/** One system (producer + relay + broker, or its raw twin) in one wake-up mode, over its slices. */
export interface PublishLatencyMeasurement {
  /** Measured time, summed over the slices. */
  windowMs: number;
  /** Transactions committed inside the windows (one message each). */
  committed: number;
  achievedRatePerSec: number;
  /** Commit-return → broker-receive, over the messages committed inside the windows. */
  latencyMs: LatencySummary;
  /** Messages committed in the windows that never arrived (within the drain timeout). */
  missing: number;
  /** Arrived before the producer saw its commit return (clamped to 0 in the latency). */
  negative: number;
  /** The producer's own BEGIN..COMMIT time (scheduled start → commit return). */
  commitMs: LatencySummary;
  /** How far the open-loop producer fell behind its schedule at worst. */
  producerLagMaxMs: number;
  /** Claim rounds with rows, and their mean size. */
  batches: number;
  meanBatch: number;
  errors: number;
  firstError: string | null;
  resources: ResourceUsage;
  /** Per slice, in the order run: how much one slice differs from the next, and why. */
  slices?: LatencySlice[];
  notes: Record<string, number | string>;
}

export interface LatencySlice {
  achievedRatePerSec: number;
  p50: number;
  p99: number;
  /** CPU of the rest of the machine during the slice (% of one core). */
  otherCpuPct: number | null;
}

export interface PublishLatencyPoint {
  mode: 'notify' | 'polling';
  pollIntervalMs: number;
  subject: PublishLatencyMeasurement;
  ceiling: PublishLatencyMeasurement;
  /** subject ÷ ceiling. */
  ratio: { p50: number; p95: number; p99: number; rate: number };
}

export interface OutboxLatencyScenarioResult {
  kind: 'outbox-commit-to-publish';
  name: string;
  description: string;
  labels: { subject: string; ceiling: string };
  config: Record<string, number | string | boolean>;
  points: PublishLatencyPoint[];
}

// ---------------------------------------------------------------------------------------------
// outbox-retention
// ---------------------------------------------------------------------------------------------

/** The outbox table once a second. */
export interface TableSample {
  /** Since the load started. */
  atMs: number;
  rows: number;
  /** pg_total_relation_size: heap + indexes + TOAST. */
  totalBytes: number;
  heapBytes: number;
  deadTuples: number;
  autovacuums: number;
}

export interface RetentionRun {
  variant: 'retention' | 'retention+vacuum' | 'none';
  retention: boolean;
  /** Interval of the extra plain VACUUM, or null when only autovacuum ran. */
  vacuumEveryMs: number | null;
  windowMs: number;
  committedMessages: number;
  achievedRatePerSec: number;
  sent: number;
  deleted: number;
  samples: TableSample[];
  maxRows: number;
  maxTotalBytes: number;
  finalRows: number;
  finalTotalBytes: number;
  /** Least-squares growth of pg_total_relation_size over the second half of the run. */
  secondHalfGrowthBytesPerSec: number;
  /** Autovacuum runs on the table during the load. */
  autovacuums: number;
  /** The extra VACUUMs (variant retention+vacuum): how many, and how long each took. */
  vacuums: number;
  vacuumMs: LatencySummary;
  /** One sample per `deleteSentBatch` statement (retention runs only). */
  deleteBatchMs: LatencySummary;
  deleteStatements: number;
  /** Commit → broker receive while the load ran. */
  publishLatencyMs: LatencySummary;
  producerLagMaxMs: number;
  /** Pending + claimed rows when the load stopped: the relay's backlog. */
  backlogAtEnd: number;
  errors: number;
  firstError: string | null;
  resources: ResourceUsage;
}

export interface OutboxRetentionScenarioResult {
  kind: 'outbox-retention';
  name: string;
  description: string;
  config: Record<string, number | string | boolean>;
  /** In the order they ran: retention, retention + VACUUM, no retention. */
  runs: RetentionRun[];
}

// ---------------------------------------------------------------------------------------------
// outbox-broker-throughput (real brokers)
// ---------------------------------------------------------------------------------------------

export interface BrokerDrainTrial {
  messages: number;
  elapsedMs: number;
  perSec: number;
  /** CPU of the rest of the machine during this drain (% of one core). */
  otherCpuPct: number | null;
}

/** One side (relays → Sage adapter, or the raw client) at one worker count, over its drains. */
export interface BrokerDrainMeasurement {
  trials: BrokerDrainTrial[];
  /** Messages over summed drain time. */
  throughputPerSec: number;
  resources: ResourceUsage;
  notes: Record<string, number | string>;
}

export interface BrokerDrainPoint {
  /** Relay workers (each its own DataSource and Broker), or raw publishers (each its own client). */
  workers: number;
  subject: BrokerDrainMeasurement;
  ceiling: BrokerDrainMeasurement;
  /**
   * The relay's structure without Sage: node-postgres claim → raw client publish (same window) →
   * mark-sent, in a loop per worker (one drain per point; absent when not measured). Tells the cost
   * of claim → publish → mark running in series apart from the cost of Sage's code.
   */
  rawRelay?: BrokerDrainMeasurement;
  /** Median over drain pairs (relay drain i ÷ raw drain i), and summed totals. */
  ratio: { throughput: number; throughputTotals: number; paired: number[] };
}

export interface BrokerThroughputRun {
  broker: BrokerKindName;
  address: string;
  client: string;
  points: BrokerDrainPoint[];
  /** Set when the broker could not be measured (unreachable, setup failed). */
  error?: string;
}

export type BrokerKindName = 'kafka' | 'rabbitmq' | 'nats';

export interface OutboxBrokerThroughputScenarioResult {
  kind: 'outbox-broker-throughput';
  name: string;
  description: string;
  labels: { subject: string; ceiling: string };
  config: Record<string, number | string | boolean>;
  brokers: BrokerThroughputRun[];
  skipped: { broker: BrokerKindName; reason: string }[];
}

// ---------------------------------------------------------------------------------------------
// broker-tuning (real brokers, one relay, adapter settings side by side)
// ---------------------------------------------------------------------------------------------

export interface BrokerTuningTrial extends BrokerDrainTrial {
  /** os.loadavg()[0] when the drain started: the machine is shared, read the figures with it. */
  loadAvg1m: number;
}

export interface BrokerTuningSetting {
  /** Short name, e.g. `linger 5 ms`. */
  label: string;
  /** The adapter options on top of the bench ones (`{}`: the adapter defaults, the baseline). */
  options: Record<string, unknown>;
  trials: BrokerTuningTrial[];
  /** Messages over summed drain time. */
  throughputPerSec: number;
  /** Median over rounds of (this setting ÷ the baseline of the same round). */
  ratio: number;
  failedPublishes: number;
}

export interface BrokerTuningRun {
  broker: BrokerKindName;
  address: string;
  client: string;
  settings: BrokerTuningSetting[];
  error?: string;
}

export interface BrokerTuningScenarioResult {
  kind: 'broker-tuning';
  name: string;
  description: string;
  config: Record<string, number | string | boolean>;
  brokers: BrokerTuningRun[];
  skipped: { broker: BrokerKindName; reason: string }[];
}

// ---------------------------------------------------------------------------------------------
// outbox-commit-to-ack (real brokers, open loop)
// ---------------------------------------------------------------------------------------------

/**
 * relay: OutboxPublisher → OutboxRelay woken by NOTIFY → Sage adapter;
 * optimistic: the same with `outbox.optimistic` publishing right after commit (relay as fallback);
 * raw: node-postgres commit → node-postgres claim loop woken by the same NOTIFY → raw client → mark;
 * wal: OutboxPublisher → the WAL-streaming relay (`outbox.relay.mode: 'wal'`) → Sage adapter;
 * direct: the raw client publishing each message itself, no database (the broker's own latency).
 */
export type AckVariant = 'relay' | 'optimistic' | 'raw' | 'wal' | 'direct';

export interface AckLatencyMeasurement {
  windowMs: number;
  committed: number;
  achievedRatePerSec: number;
  /** Commit returned → broker acknowledged, over the messages committed inside the windows. */
  latencyMs: LatencySummary & { p999: number };
  missing: number;
  producerLagMaxMs: number;
  errors: number;
  firstError: string | null;
  resources: ResourceUsage;
  notes: Record<string, number | string>;
}

export interface AckLatencyPoint {
  broker: BrokerKindName;
  offeredRatePerSec: number;
  variants: Partial<Record<AckVariant, AckLatencyMeasurement>>;
  /** relay, optimistic and wal ÷ raw, on p50 / p99 / achieved rate. */
  ratio: Partial<
    Record<'relay' | 'optimistic' | 'wal', { p50: number; p99: number; rate: number }>
  >;
}

export interface OutboxCommitToAckScenarioResult {
  kind: 'outbox-commit-to-ack';
  name: string;
  description: string;
  labels: Partial<Record<AckVariant, string>>;
  config: Record<string, number | string | boolean>;
  points: AckLatencyPoint[];
  /** Variants asked for but not run, and why (e.g. the optimistic sender is not built yet). */
  notRun: { variant: AckVariant; reason: string }[];
  skipped: { broker: BrokerKindName; reason: string }[];
}

// ---------------------------------------------------------------------------------------------
// soak (profile soak only)
// ---------------------------------------------------------------------------------------------

export interface SoakSample {
  /** Since the load started. */
  atMs: number;
  rssMb: number;
  heapUsedMb: number;
  /** Commit → ack of the messages acknowledged in this interval. */
  p50: number;
  p99: number;
  acked: number;
  /** Pending + claimed rows (the relay's backlog). */
  backlog: number;
  pgConnections: number;
  processCpuPct: number;
  loadAvg1m: number;
}

export interface SoakScenarioResult {
  kind: 'soak';
  name: string;
  description: string;
  config: Record<string, number | string | boolean>;
  samples: SoakSample[];
  latencyMs: LatencySummary & { p999: number };
  committed: number;
  missing: number;
  errors: number;
  firstError: string | null;
  /** Least-squares RSS growth over the second half (MB per minute): a leak shows here. */
  rssGrowthMbPerMin: number;
  resources: ResourceUsage;
}

// ---------------------------------------------------------------------------------------------
// peer (another outbox library on the same workload)
// ---------------------------------------------------------------------------------------------

export interface PeerScenarioResult {
  kind: 'peer';
  name: string;
  description: string;
  peer: { name: string; version: string; listener: string };
  broker: BrokerKindName;
  config: Record<string, number | string | boolean>;
  /** peer = its polling listener; peerReplication = its logical-replication listener (if run). */
  drain?: {
    sage: BrokerDrainMeasurement;
    peer: BrokerDrainMeasurement;
    peerReplication?: BrokerDrainMeasurement;
  };
  latency?: {
    offeredRatePerSec: number;
    sage: AckLatencyMeasurement;
    peer: AckLatencyMeasurement;
    peerReplication?: AckLatencyMeasurement;
  };
  error?: string;
}

// ---------------------------------------------------------------------------------------------
// saga-remote-2step
// ---------------------------------------------------------------------------------------------

/** One broker: a closed-loop point per concurrency, Sage beside its raw round trip. */
export interface SagaRemoteRun {
  broker: BrokerKindName;
  address: string;
  client: string;
  points: PointResult[];
  /**
   * Median ms of each leg of the round trip (start → command acked → delivered → reply acked →
   * delivered → completed) per concurrency, Sage and raw; `sagas` = sagas with every instant.
   */
  legs?: { concurrency: number; sage: Record<string, number>; raw: Record<string, number> }[];
  /** Statements per saga (by leading keyword, this side's application_name only), sagas one at a time. */
  calibration?: Calibration;
  /** Why the broker was not measured (setup or a point failed). */
  error?: string;
}

export interface SagaRemoteScenarioResult {
  kind: 'saga-remote';
  name: string;
  description: string;
  labels: { unit: string; subject: string; ceiling: string };
  config: Record<string, number | string | boolean>;
  brokers: SagaRemoteRun[];
  skipped: { broker: BrokerKindName; reason: string }[];
}

// ---------------------------------------------------------------------------------------------
// data-protection-cost
// ---------------------------------------------------------------------------------------------

/** One side (encryption off or on) of the outbox part, over its trials. */
export interface ProtectionOutboxMeasurement {
  /** Messages over summed time: publish() in transactions; relay drain to the in-memory broker; both. */
  writePerSec: number;
  drainPerSec: number;
  endToEndPerSec: number;
  trials: { writeMs: number; drainMs: number }[];
  /** Mean stored payload size (JSON text), bytes. */
  storedPayloadBytes: number;
  errors: number;
  firstError: string | null;
}

export interface DataProtectionScenarioResult {
  kind: 'data-protection';
  name: string;
  description: string;
  config: Record<string, number | string | boolean>;
  /** The 3-step local saga: subject = encryption on, ceiling = off (ratio on ÷ off). */
  saga: { calibration: Calibration; points: PointResult[] };
  outbox: {
    off: ProtectionOutboxMeasurement;
    on: ProtectionOutboxMeasurement;
    /** on ÷ off. */
    ratio: { write: number; drain: number; endToEnd: number };
  };
  /** CPU cost per message with warm keys: sealMessage and openMessage, one at a time (µs). */
  consume: { messages: number; sealUs: LatencySummary; openUs: LatencySummary };
}

// ---------------------------------------------------------------------------------------------
// contract-validation-cost
// ---------------------------------------------------------------------------------------------

/** One side (contracts off or on) of a throughput part, over its trials. */
export interface ContractsThroughput {
  /** Messages over summed trial time. */
  perSec: number;
  trialsMs: number[];
  errors: number;
  firstError: string | null;
}

/** Contracts off vs on for one part. */
export interface ContractsComparison {
  off: ContractsThroughput;
  on: ContractsThroughput;
  /** on ÷ off, messages over summed trial time. */
  ratio: number;
  /** on ÷ off per repetition (off and on back to back), and their median. */
  pairRatios: number[];
  pairMedianRatio: number;
  /** The checks' mean CPU (the per-message part) × the off side's rate: % of one core. */
  validationCpuPct: number;
}

export interface ContractValidationScenarioResult {
  kind: 'contract-validation';
  name: string;
  description: string;
  config: Record<string, number | string | boolean>;
  /** OutboxPublisher.publish in transactions on PostgreSQL, without / with `contracts`. */
  outbox: ContractsComparison;
  /** Deliveries through the inbox (@IdempotentHandler), without / with `contracts.consumes`. */
  consume: ContractsComparison;
  /** The checks alone, one message at a time (µs); `refused` counts checks that failed (expected 0). */
  check: {
    messages: number;
    payloadBytes: number;
    outgoingUs: LatencySummary;
    incomingUs: LatencySummary;
    incomingUpcastUs: LatencySummary;
    refused: number;
  };
}

export type ScenarioResult =
  | ConsumerThroughputScenarioResult
  | ContractValidationScenarioResult
  | DataProtectionScenarioResult
  | ClosedLoopScenarioResult
  | SagaRemoteScenarioResult
  | PeerScenarioResult
  | OutboxBrokerThroughputScenarioResult
  | BrokerTuningScenarioResult
  | OutboxCommitToAckScenarioResult
  | SoakScenarioResult
  | OutboxThroughputScenarioResult
  | OutboxLatencyScenarioResult
  | OutboxRetentionScenarioResult
  | OutboxWalRelayScenarioResult
  | OutboxBacklogScalingScenarioResult;

// ---------------------------------------------------------------------------------------------
// consumer-throughput (real brokers)
// ---------------------------------------------------------------------------------------------

/** One consumer side of one broker over its drains of the pre-loaded backlog. */
export interface ConsumerDrainMeasurement {
  /** Each drain: messages, first to last message handled (ms), messages/s, 1-min load average at its start. */
  trials: { messages: number; elapsedMs: number; perSec: number; loadAvg1m: number }[];
  /** Messages over summed drain time. */
  throughputPerSec: number;
  /** Over the drain windows (first to last message). */
  resources: ResourceUsage;
  /** CPU time per message (µs): this Node process; the PostgreSQL backends of its pool; every PostgreSQL process. */
  nodeCpuUsPerMsg: number;
  pgBackendCpuUsPerMsg: number | null;
  pgServerCpuUsPerMsg: number | null;
  /** Messages handled more than once (redeliveries), business rows written (inbox side only). */
  duplicates: number;
  businessRows?: number;
}

export interface ConsumerThroughputRun {
  broker: BrokerKindName;
  address: string;
  client: string;
  /** The adapter's subscriber through the inbox (@IdempotentHandler, one business INSERT per message). */
  inbox?: ConsumerDrainMeasurement;
  /** The same client library consuming, no Sage, no database. */
  raw?: ConsumerDrainMeasurement;
  /** The adapter's subscriber, handler with no database. */
  adapter?: ConsumerDrainMeasurement;
  /** Over summed drain time; `pairedInboxToRaw`: per repetition. */
  ratio?: {
    inboxToRaw: number;
    adapterToRaw: number;
    inboxToAdapter: number;
    pairedInboxToRaw: number[];
  };
  error?: string;
}

export interface ConsumerThroughputScenarioResult {
  kind: 'consumer-throughput';
  name: string;
  description: string;
  config: Record<string, number | string | boolean>;
  brokers: ConsumerThroughputRun[];
  skipped: { broker: BrokerKindName; reason: string }[];
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
