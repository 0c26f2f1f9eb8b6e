/**
 * `npm run bench:scaling`'s pure parts: the results file it reads back, the speedups, the per-key
 * order check of the relay rounds, the bottleneck verdict, the flags, and the generated section
 * of docs/scaling.md (and that the committed doc and results agree with the renderer).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseScalingOptions } from '../../benchmarks/scaling/options';
import { checkPerKeyOrder } from '../../benchmarks/scaling/per-key-order';
import {
  GENERATED_END,
  GENERATED_START,
  renderScalingSection,
  replaceGeneratedSection,
  withSpeedups,
} from '../../benchmarks/scaling/report';
import {
  parseScalingResults,
  SCALING_SCHEMA_VERSION,
  ScalingResultsError,
  type ScalingPoint,
  type ScalingResults,
} from '../../benchmarks/scaling/results';
import { bottleneckOf } from '../../benchmarks/scaling/window-cpu';

const ROOT = path.resolve(__dirname, '..', '..');

function point(over: Partial<ScalingPoint>): ScalingPoint {
  return {
    scenario: 'relay',
    broker: 'rabbitmq',
    processes: 1,
    items: 1000,
    elapsedMs: 1000,
    firstItemMs: 50,
    perSec: 1000,
    speedup: null,
    cpu: {
      workersPct: 60,
      pgBackendsPct: 20,
      pgAllPct: 30,
      brokerPct: 40,
      machinePct: 70,
      othersPct: 10,
      workersMsPerItem: 0.6,
      pgMsPerItem: 0.3,
      pgBackendsMsPerItem: 0.2,
    },
    loadAvg1m: { start: 1.5, end: 1.7 },
    bottleneck: 'x',
    checks: { ok: true, problems: [], distinct: 1000, keys: 1000, duplicates: 0 },
    ...over,
  };
}

function results(points: ScalingPoint[]): ScalingResults {
  return {
    schemaVersion: SCALING_SCHEMA_VERSION,
    startedAt: '2026-12-07T15:00:00.000Z',
    finishedAt: '2026-12-07T15:05:00.000Z',
    quick: false,
    machine: {
      cpuModel: 'Test CPU',
      cores: 2,
      ramGb: 8,
      node: 'v20.19.0',
      postgres: '15.1',
      loadAvg1mAtStart: 1.25,
      loadAvg1mAtEnd: 2.5,
    },
    settings: {
      processCounts: [1, 2, 4],
      relayMessages: 1000,
      consumerMessages: 500,
      sagas: 100,
      poolSize: 10,
      brokers: ['rabbitmq'],
    },
    points,
    failures: [],
  };
}

describe('parseScalingResults', () => {
  it('reads back what the run writes', () => {
    const written = results([point({}), point({ processes: 2, perSec: 1800 })]);
    expect(parseScalingResults(JSON.stringify(written))).toEqual(written);
  });

  it.each([
    ['not JSON', '{', /not JSON/],
    [
      'another schema version',
      JSON.stringify({ ...results([]), schemaVersion: 99 }),
      /schemaVersion is 99/,
    ],
    [
      'an unknown scenario',
      JSON.stringify(results([point({ scenario: 'batch' as never })])),
      /points\[0\]\.scenario must be one of relay, consumer, saga/,
    ],
    [
      'a missing CPU figure',
      JSON.stringify(
        results([point({ cpu: { ...point({}).cpu, pgAllPct: undefined as unknown as number } })]),
      ),
      /points\[0\]\.cpu\.pgAllPct must be a finite number/,
    ],
    [
      'checks without ok',
      JSON.stringify(results([point({ checks: { problems: [] } as never })])),
      /points\[0\]\.checks\.ok must be a boolean/,
    ],
  ])('refuses %s, naming the field and the fix', (_what, text, message) => {
    expect(() => parseScalingResults(text)).toThrow(ScalingResultsError);
    expect(() => parseScalingResults(text)).toThrow(message);
    expect(() => parseScalingResults(text)).toThrow(/npm run bench:scaling/);
  });
});

describe('withSpeedups', () => {
  it('divides by the 1-process rate of the same scenario and broker only', () => {
    const points = withSpeedups([
      point({ processes: 1, perSec: 1000 }),
      point({ processes: 2, perSec: 1500 }),
      point({ broker: 'kafka', processes: 1, perSec: 400 }),
      point({ broker: 'kafka', processes: 4, perSec: 1000 }),
      point({ scenario: 'saga', broker: null, processes: 2, perSec: 50 }),
    ]);
    expect(points.map((p) => p.speedup)).toEqual([null, 1.5, null, 2.5, null]);
  });

  it('gives no speedup to a failed round nor against one', () => {
    const points = withSpeedups([
      point({ processes: 1, perSec: 0, error: 'boom' }),
      point({ processes: 2, perSec: 1500 }),
    ]);
    expect(points.map((p) => p.speedup)).toEqual([null, null]);
  });
});

describe('checkPerKeyOrder', () => {
  it('accepts keys interleaved in any way as long as each key ascends', () => {
    const check = checkPerKeyOrder([
      { id: '1', key: 'a', seq: 1 },
      { id: '2', key: 'b', seq: 2 },
      { id: '4', key: 'b', seq: 4 },
      { id: '3', key: 'a', seq: 3 },
    ]);
    expect(check).toEqual({
      delivered: 4,
      distinct: 4,
      duplicates: 0,
      keysOutOfOrder: 0,
      orderViolations: 0,
      keys: 2,
    });
  });

  it('counts a message that overtook an earlier one of its key, and redeliveries apart', () => {
    const check = checkPerKeyOrder([
      { id: '3', key: 'a', seq: 3 },
      { id: '1', key: 'a', seq: 1 },
      { id: '3', key: 'a', seq: 3 },
      { id: '2', key: 'b', seq: 2 },
    ]);
    expect(check.orderViolations).toBe(1);
    expect(check.keysOutOfOrder).toBe(1);
    expect(check.duplicates).toBe(1);
    expect(check.distinct).toBe(3);
  });
});

describe('bottleneckOf', () => {
  it('names the biggest CPU user when the machine is saturated', () => {
    const cpu = { ...point({}).cpu, machinePct: 97, workersPct: 50, pgAllPct: 120 };
    expect(bottleneckOf(cpu, 2)).toMatch(/^machine CPU \(97% of 2 cores\); most by PostgreSQL/);
  });

  it('says the round waited rather than computed when the machine had CPU to spare', () => {
    expect(bottleneckOf({ ...point({}).cpu, machinePct: 40 }, 2)).toMatch(/^not CPU/);
  });
});

describe('parseScalingOptions', () => {
  it('has a quick CI size', () => {
    const quick = parseScalingOptions(['--quick']);
    expect(quick.quick).toBe(true);
    expect(quick.relayMessages).toBeLessThan(parseScalingOptions([]).relayMessages);
  });

  it('sorts and de-duplicates process counts', () => {
    expect(parseScalingOptions(['--processes', '4,1,2,1']).processCounts).toEqual([1, 2, 4]);
  });

  it.each([
    [['--processes', '40'], /--processes: expected a whole number from 1 to 16, got "40"/],
    [['--brokers', 'kafka,sqs'], /--brokers: expected a comma list of kafka, rabbitmq, nats/],
    [['--sagas'], /--sagas: needs a value/],
    [['--frobnicate', '1'], /unknown flag --frobnicate/],
  ])('refuses %j', (argv, message) => {
    expect(() => parseScalingOptions(argv)).toThrow(message);
  });
});

describe('the generated section', () => {
  const doc = `# Title\n\nintro\n\n${GENERATED_START}\nold tables\n${GENERATED_END}\n\nguidance after\n`;

  it('replaces only the text between the markers', () => {
    const next = replaceGeneratedSection(doc, 'NEW');
    expect(next).toBe(
      `# Title\n\nintro\n\n${GENERATED_START}\n\nNEW\n\n${GENERATED_END}\n\nguidance after\n`,
    );
    expect(replaceGeneratedSection(next, 'NEW')).toBe(next);
  });

  it.each([
    ['no markers', '# Title\n'],
    ['the end before the start', `${GENERATED_END}\n${GENERATED_START}\n`],
    ['a doubled marker', `${GENERATED_START}\n${GENERATED_START}\n${GENERATED_END}\n`],
  ])('refuses a doc with %s', (_what, broken) => {
    expect(() => replaceGeneratedSection(broken, 'NEW')).toThrow(/generated section/);
  });

  it('renders one table per scenario with the machine, load and checks', () => {
    const text = renderScalingSection(
      results(
        withSpeedups([
          point({ processes: 1, perSec: 1000 }),
          point({ processes: 2, perSec: 1500 }),
          point({
            scenario: 'consumer',
            processes: 1,
            checks: { ok: false, problems: ['effects: 999, expected 1000'] },
          }),
        ]),
      ),
    );
    expect(text).toContain('**2 cores**');
    expect(text).toContain('load average 1.25 at the start, 2.50 at the end');
    expect(text).toContain('#### (a) Outbox relays draining one backlog');
    expect(text).toContain('#### (b) Consumers with the inbox');
    expect(text).not.toContain('#### (c)');
    expect(text).toMatch(/\| rabbitmq \| 2 \| 1,000 \| 1,500 \| 1\.50× \|/);
    expect(text).toContain('**effects: 999, expected 1000**');
    expect(text).not.toContain('Not measured');
  });

  it('lists the scenarios that could not run', () => {
    const text = renderScalingSection({
      ...results([]),
      failures: ['saga: the worker processes did not start: boom'],
    });
    expect(text).toContain(
      '**Not measured in this run:**\n\n- saga: the worker processes did not start: boom',
    );
  });

  it('is what docs/scaling.md holds for the committed results', () => {
    const resultsFile = path.join(ROOT, 'benchmarks', 'results', 'scaling.json');
    const docFile = path.join(ROOT, 'docs', 'scaling.md');
    expect(existsSync(resultsFile)).toBe(true);
    const committed = readFileSync(docFile, 'utf8');
    const rendered = replaceGeneratedSection(
      committed,
      renderScalingSection(parseScalingResults(readFileSync(resultsFile, 'utf8'))),
    );
    expect(committed).toBe(rendered);
  });
});
