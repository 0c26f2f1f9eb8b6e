/**
 * The relay-mode scenarios' pure parts: the "Issue 17 targets" rows computed from one run's results,
 * the sections and history cells of outbox-wal-relay-throughput and outbox-backlog-scaling, and the
 * mean of per-message CPU figures.
 */
import { meanCpu } from '../../benchmarks/harness/cpu-meter';
import {
  backlogScalingSection,
  issue17Targets,
  issue17TargetsSection,
  relayModesHistoryCell,
  walRelayThroughputSection,
} from '../../benchmarks/harness/report-relay-modes';
import type {
  AckLatencyMeasurement,
  ClosedLoopScenarioResult,
  ConsumerThroughputScenarioResult,
  OutboxCommitToAckScenarioResult,
  ScenarioResult,
} from '../../benchmarks/harness/results';
import type {
  ModeDrain,
  OutboxBacklogScalingScenarioResult,
  OutboxWalRelayScenarioResult,
} from '../../benchmarks/harness/results-relay-modes';
import type { ResourceUsage } from '../../benchmarks/harness/resources';

const RESOURCES: ResourceUsage = {
  processCpuPct: 80,
  processCpuUserMs: 700,
  processCpuSystemMs: 100,
  rssMaxMb: 120,
  heapUsedMaxMb: 60,
  pgBackendCpuPct: 50,
  pgServerCpuPct: 70,
  machineCpuPct: 90,
  pgConnectionsMax: 10,
  pgConnectionsActiveMean: 4,
  samples: 5,
};

function mode(perSec: number): ModeDrain {
  return {
    trials: [{ messages: 1000, elapsedMs: 1e6 / perSec, perSec, loadAvg1m: 1.5 }],
    throughputPerSec: perSec,
    cpuPerMsg: { nodeUs: 100, pgOwnUs: 20, pgServerUs: 30 },
  };
}

function wal(walPerSec: number, rawPerSec: number): OutboxWalRelayScenarioResult {
  return {
    kind: 'outbox-wal-relay-throughput',
    name: 'outbox-wal-relay-throughput',
    description: 'desc',
    labels: { polling: 'p', wal: 'w', raw: 'r' },
    config: { messages: 1000 },
    brokers: [
      {
        broker: 'kafka',
        address: 'a',
        client: 'c',
        modes: { polling: mode(walPerSec / 2), wal: mode(walPerSec), raw: mode(rawPerSec) },
        ratio: {
          walToRaw: walPerSec / rawPerSec,
          pollingToRaw: walPerSec / 2 / rawPerSec,
          walToPolling: 2,
        },
      },
      { broker: 'nats', address: 'a', client: 'c', modes: {}, error: 'server gone' },
    ],
    skipped: [],
  };
}

function ackM(p99: number, missing = 0, achieved = 1000): AckLatencyMeasurement {
  return {
    windowMs: 1000,
    committed: 1000,
    achievedRatePerSec: achieved,
    latencyMs: {
      count: 1000,
      mean: p99 / 2,
      p50: p99 / 3,
      p95: p99 / 1.5,
      p99,
      p999: p99,
      max: p99,
    },
    missing,
    producerLagMaxMs: 0,
    errors: 0,
    firstError: null,
    resources: RESOURCES,
    notes: {},
  } as AckLatencyMeasurement;
}

function ack(): OutboxCommitToAckScenarioResult {
  return {
    kind: 'outbox-commit-to-ack',
    name: 'outbox-commit-to-ack',
    description: 'desc',
    labels: {},
    config: { perBrokerRate: 1000 },
    points: [
      {
        broker: 'rabbitmq',
        offeredRatePerSec: 1000,
        variants: { relay: ackM(20, 0, 300), wal: ackM(12), optimistic: ackM(4, 3), raw: ackM(10) },
        ratio: {},
      },
      {
        broker: 'rabbitmq',
        offeredRatePerSec: 5000,
        variants: { relay: ackM(500) },
        ratio: {},
      },
    ],
    notRun: [{ variant: 'relay', reason: 'kafka: Connection error: connect ECONNREFUSED' }],
    skipped: [],
  };
}

function backlog(): OutboxBacklogScalingScenarioResult {
  const point = (relays: number, n: number, perSec: number) => ({
    relays,
    backlog: n,
    trialsPerSec: [perSec],
    perSec,
    ratioToBaseline: perSec / 1000,
    loadAvg1m: 1,
  });
  return {
    kind: 'outbox-backlog-scaling',
    name: 'outbox-backlog-scaling',
    description: 'desc',
    config: { backlogLarge: 100_000, backlogSmall: 1_000 },
    baselinePerSec: 1000,
    points: [
      point(1, 1_000, 1000),
      point(1, 100_000, 950),
      point(2, 100_000, 1200),
      {
        ...point(4, 100_000, 800),
        relayStats: { batches: 12, claimed: 100_000, staleMarks: 3, loopErrors: 0 },
      },
    ],
  };
}

function consumers(inboxToRaw: number): ConsumerThroughputScenarioResult {
  return {
    kind: 'consumer-throughput',
    name: 'consumer-throughput',
    description: 'desc',
    config: {},
    brokers: [
      {
        broker: 'rabbitmq',
        address: 'a',
        client: 'c',
        ratio: { inboxToRaw, adapterToRaw: 1, inboxToAdapter: inboxToRaw, pairedInboxToRaw: [] },
      },
    ],
    skipped: [],
  };
}

function saga(ratios: number[]): ClosedLoopScenarioResult {
  return {
    kind: 'closed-loop',
    name: 'saga-local-3step',
    points: ratios.map((r, i) => ({ concurrency: 2 ** i, ratio: { throughput: r } })),
  } as unknown as ClosedLoopScenarioResult;
}

describe('issue17Targets', () => {
  it('marks every target met or not from the results, and says what was not measured', () => {
    const scenarios: ScenarioResult[] = [
      wal(800, 1000),
      ack(),
      backlog(),
      consumers(0.4),
      saga([0.95, 0.91]),
    ];
    const rows = issue17Targets(scenarios);
    const by = (part: string) => rows.filter((r) => r.target.includes(part));

    expect(by('WAL relay → kafka')[0]).toMatchObject({ met: true });
    expect(by('WAL relay → kafka')[0]!.measured).toContain('0.80');
    expect(by('WAL relay → nats')[0]).toMatchObject({ met: null });
    expect(by('WAL relay → nats')[0]!.measured).toContain('server gone');

    // Only the 1,000 msg/s point counts; a message never acked fails the target.
    const rabbit = (part: string) => by(part).filter((r) => r.target.includes('rabbitmq'));
    expect(rabbit('optimistic sending')).toHaveLength(1);
    expect(rabbit('optimistic sending')[0]).toMatchObject({ met: false });
    expect(rabbit('optimistic sending')[0]!.measured).toContain(', 3 never acked)');
    expect(rabbit(', WAL relay,')[0]).toMatchObject({
      met: false,
      measured: '12.0 ms (p50 4.00 ms)',
    });
    // The rate the machine reached is shown when it fell short of the offered one.
    expect(rabbit('polling relay + NOTIFY')[0]).toMatchObject({
      met: true,
      measured: '20.0 ms (p50 6.67 ms, 300 msg/s achieved)',
    });

    // The broker whose run failed is listed for every variant, with why.
    expect(by('commit → kafka ack').map((r) => [r.met, r.measured])).toEqual([
      [null, 'not measured: kafka: Connection error: connect ECONNREFUSED'],
      [null, 'not measured: kafka: Connection error: connect ECONNREFUSED'],
      [null, 'not measured: kafka: Connection error: connect ECONNREFUSED'],
    ]);

    const large = by('100,000-message backlog');
    expect(large.map((r) => [r.target.slice(0, 10), r.met])).toEqual([
      ['1 relay(s)', true],
      ['2 relay(s)', true],
      ['4 relay(s)', false],
    ]);

    expect(by('consumer with inbox (rabbitmq)')[0]).toMatchObject({ met: false });
    expect(by('local 3-step saga')[0]).toMatchObject({ met: true, measured: 'c=1 0.95, c=2 0.91' });
  });

  it('lists each target as not measured when its scenario is absent', () => {
    const rows = issue17Targets([]);
    expect(rows.length).toBeGreaterThanOrEqual(7);
    expect(rows.every((r) => r.met === null && r.measured.startsWith('not measured'))).toBe(true);
    const section = issue17TargetsSection([]).join('\n');
    expect(section).toContain('### Issue 17 targets');
    expect(section).toContain('0 of 0 measured targets met');
  });

  it('a saga ratio below the target at any concurrency fails it', () => {
    const [row] = issue17Targets([saga([0.95, 0.85])]).filter((r) => r.target.includes('saga'));
    expect(row!.met).toBe(false);
  });
});

describe('relay-mode sections', () => {
  it('renders the WAL relay beside the polling relay and the raw client, with ratios to raw', () => {
    const text = walRelayThroughputSection(wal(800, 1000)).join('\n');
    expect(text).toContain('| kafka | WAL relay | 800 | 0.80 |');
    expect(text).toContain('| kafka | polling relay | 400 | 0.40 |');
    expect(text).toContain('| kafka | raw client | 1,000 |  |');
    expect(text).toContain('| nats | failed: server gone |');
    expect(relayModesHistoryCell(wal(800, 1000))).toContain(
      'kafka WAL 800 / polling 400 / raw 1,000 msg/s',
    );
  });

  it('renders backlog points as ratios to one relay on the small backlog', () => {
    const text = backlogScalingSection(backlog()).join('\n');
    expect(text).toContain('| 4 | 100,000 | 800 | 0.80 | 800 | 1 | 12 | 100,000 | 3 | 0 |');
    expect(text).toContain('| 2 | 100,000 | 1,200 | 1.20 | 1,200 | 1 | – | – | – | – |');
    expect(relayModesHistoryCell(backlog())).toBe(
      '1×1,000 1.00, 1×100,000 0.95, 2×100,000 1.20, 4×100,000 0.80',
    );
    expect(relayModesHistoryCell(consumers(1))).toBeNull();
  });
});

describe('meanCpu', () => {
  it('averages per-message CPU, keeping null when any drain had no PostgreSQL figure', () => {
    expect(
      meanCpu([
        { nodeUs: 100, pgOwnUs: 10, pgServerUs: 20 },
        { nodeUs: 200, pgOwnUs: 30, pgServerUs: null },
      ]),
    ).toEqual({ nodeUs: 150, pgOwnUs: 20, pgServerUs: null });
  });
});
