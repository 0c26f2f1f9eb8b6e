/**
 * consumer-throughput's pure parts: the drain counter (distinct messages, redeliveries, the timed
 * window), CPU per message, and its section and history line in docs/benchmarks.md.
 */
import { cpuUsPerMessage, DrainCounter } from '../../benchmarks/harness/consumer-drain';
import {
  consumerHistoryCell,
  consumerThroughputSection,
} from '../../benchmarks/harness/report-consumers';
import type {
  ConsumerDrainMeasurement,
  ConsumerThroughputScenarioResult,
} from '../../benchmarks/harness/results';
import type { ResourceUsage } from '../../benchmarks/harness/resources';

function recordingWindow(): { calls: string[]; start(): void; stop(): void } {
  const calls: string[] = [];
  return { calls, start: () => calls.push('start'), stop: () => calls.push('stop') };
}

const RESOURCES: ResourceUsage = {
  processCpuPct: 80,
  processCpuUserMs: 700,
  processCpuSystemMs: 100,
  rssMaxMb: 120,
  heapUsedMaxMb: 60,
  pgBackendCpuPct: 50,
  pgServerCpuPct: 70,
  brokerServerCpuPct: 20,
  machineCpuPct: 90,
  pgConnectionsMax: 10,
  pgConnectionsActiveMean: 4,
  samples: 5,
};

function drain(
  perSec: number[],
  over: Partial<ConsumerDrainMeasurement> = {},
): ConsumerDrainMeasurement {
  return {
    trials: perSec.map((p) => ({ messages: 1000, elapsedMs: 1e6 / p, perSec: p, loadAvg1m: 1.5 })),
    throughputPerSec: perSec[0]!,
    resources: RESOURCES,
    nodeCpuUsPerMsg: 400,
    pgBackendCpuUsPerMsg: 250,
    pgServerCpuUsPerMsg: 350,
    duplicates: 0,
    ...over,
  };
}

function result(inboxToRaw: number): ConsumerThroughputScenarioResult {
  return {
    kind: 'consumer-throughput',
    name: 'consumer-throughput',
    description: 'desc',
    config: {
      messages: 1000,
      keys: 1000,
      payloadBytes: 300,
      repetitions: 1,
      poolSize: 10,
      kafkaPartitions: 4,
      rabbitQueue: 'quorum',
      natsStorage: 'file',
    },
    brokers: [
      {
        broker: 'nats',
        address: '127.0.0.1:4222',
        client: '@nats-io/jetstream 3',
        inbox: drain([1000 * inboxToRaw], { businessRows: 1000, duplicates: 2 }),
        raw: drain([1000]),
        adapter: drain([800]),
        ratio: {
          inboxToRaw,
          adapterToRaw: 0.8,
          inboxToAdapter: inboxToRaw / 0.8,
          pairedInboxToRaw: [inboxToRaw],
        },
      },
      { broker: 'kafka', address: '127.0.0.1:9092', client: 'kafkajs 2', error: 'join timed out' },
    ],
    skipped: [{ broker: 'rabbitmq', reason: 'SAGE_RABBITMQ_URL is not set' }],
  };
}

describe('DrainCounter', () => {
  it('times from the first message to the n-th distinct one and counts redeliveries apart', async () => {
    const window = recordingWindow();
    const counter = new DrainCounter(3, window, false);
    let done = false;
    void counter.done.then(() => (done = true));
    counter.hit('a');
    counter.hit('b');
    counter.hit('a');
    await Promise.resolve();
    expect(done).toBe(false);
    expect(window.calls).toEqual(['start']);
    counter.hit('c');
    await counter.done;
    expect(window.calls).toEqual(['start', 'stop']);
    expect(counter.duplicates).toBe(1);
    expect(counter.hits).toBe(4);
    expect(counter.t1).toBeGreaterThanOrEqual(counter.t0);
  });

  it('counts every call without ids, and leaves the end to a caller that ends it itself', async () => {
    const window = recordingWindow();
    const counter = new DrainCounter(2, window, true);
    counter.hit();
    counter.hit();
    await counter.done;
    expect(window.calls).toEqual(['start']);
    expect(Number.isNaN(counter.t1)).toBe(true);
    counter.end();
    expect(window.calls).toEqual(['start', 'stop']);
    expect(counter.t1).toBeGreaterThanOrEqual(counter.t0);
  });
});

describe('cpuUsPerMessage', () => {
  it('turns % of one core over a window into µs per message', () => {
    // 50 % of a core for 2 s = 1 s of CPU over 1,000 messages = 1,000 µs each.
    expect(cpuUsPerMessage(50, 2000, 1000)).toBe(1000);
    expect(cpuUsPerMessage(null, 2000, 1000)).toBeNull();
    expect(cpuUsPerMessage(50, 2000, 0)).toBeNull();
  });
});

describe('consumer-throughput report', () => {
  it('shows each broker with its ratio against the 0.5 target, failures and skipped brokers', () => {
    const text = consumerThroughputSection(result(0.62)).join('\n');
    expect(text).toContain('### consumer-throughput');
    expect(text).toContain('Inbox ÷ raw **0.62**');
    expect(text).toContain('target ≥ 0.5: met');
    expect(text).toContain(
      '| inbox (@IdempotentHandler + INSERT) | 620 | 620 | 400 | 250 | 350 | 1.5 |',
    );
    expect(text).toContain('Redeliveries seen: inbox 2, adapter 0');
    expect(text).toContain('Failed: join timed out.');
    expect(text).toContain('- rabbitmq: skipped (SAGE_RABBITMQ_URL is not set).');
    expect(consumerThroughputSection(result(0.3)).join('\n')).toContain('target ≥ 0.5: not met');
  });

  it('gives a history line for its own results only', () => {
    expect(consumerHistoryCell(result(0.62))).toBe(
      'nats: inbox 620 / raw 1,000 msg/s (0.62); kafka: failed',
    );
    expect(consumerHistoryCell({ ...result(0.62), kind: 'soak' } as never)).toBeNull();
  });
});
