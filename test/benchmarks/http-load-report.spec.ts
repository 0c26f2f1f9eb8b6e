/**
 * The HTTP load run's pure parts (benchmarks/http-load): the request mix and the outcome each
 * request implies, the saga checks, the verdict, the options, and the docs section it renders and
 * writes between its markers next to the chaos section.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IDEMPOTENCY_KEY_PATTERN } from '../../apps/shared/sample-validation';
import { writeDocsSection } from '../../benchmarks/chaos/report';
import { summarise } from '../../benchmarks/harness/stats';
import {
  expectedStatusOf,
  orderRequest,
  type ExpectedSagaStatus,
  type HttpSummary,
} from '../../benchmarks/http-load/load';
import { parseHttpLoadOptions } from '../../benchmarks/http-load/options';
import {
  HTTP_LOAD_MARKERS,
  loadHttpLoadResults,
  renderHttpLoadSection,
} from '../../benchmarks/http-load/report';
import { HTTP_LOAD_FORMAT, type HttpLoadResult } from '../../benchmarks/http-load/result';
import { judge, type SagaRow } from '../../benchmarks/http-load/sagas';
import { verdictOf } from '../../benchmarks/http-load/verdict';

const T0 = Date.UTC(2026, 11, 7, 15, 0, 0);

function http(fields: Partial<HttpSummary> = {}): HttpSummary {
  return {
    sent: 100,
    ok: 100,
    non2xx: 0,
    errors: 0,
    timeouts: 0,
    statusCodes: { '202': 100 },
    latencyMs: { mean: 12, p50: 10, p90: 20, p99: 40, max: 55 },
    requestsPerSec: 50,
    durationS: 2,
    rejectedSamples: [],
    ...fields,
  };
}

const row = (key: string, status: string, startMs: number, endMs: number): SagaRow => ({
  key,
  status,
  created_ms: T0 + startMs,
  updated_ms: T0 + endMs,
});

/** Orders 0..9 of run "r1" (order 9 declined), all as expected, each shipped 50 ms after. */
function cleanRun(): {
  orders: SagaRow[];
  shipments: SagaRow[];
  accepted: Map<string, ExpectedSagaStatus>;
} {
  const orders: SagaRow[] = [];
  const shipments: SagaRow[] = [];
  const accepted = new Map<string, ExpectedSagaStatus>();
  for (let n = 0; n < 10; n++) {
    const orderId = `ord-${orderRequest('r1', n, 10).key}`;
    const expected = expectedStatusOf(orderId)!;
    accepted.set(orderId, expected);
    orders.push(row(orderId, expected, n * 100, n * 100 + 200 + n));
    if (expected === 'completed')
      shipments.push(row(orderId, 'completed', n * 100 + 220, n * 100 + 250 + n));
  }
  return { orders, shipments, accepted };
}

describe('the request mix', () => {
  it('declines every N-th order, says so in its key, and the key is a valid Idempotency-Key', () => {
    const requests = Array.from({ length: 20 }, (_, n) => orderRequest('abc123', n, 10));
    const declined = requests.filter(
      (r) => (r.body.paymentMethod as { token: string }).token !== 'tok_visa',
    );
    expect(declined.map((r) => r.key)).toEqual(['load-abc123-9-d', 'load-abc123-19-d']);
    for (const r of requests) {
      expect(r.key).toMatch(IDEMPOTENCY_KEY_PATTERN);
      const expected = declined.includes(r) ? 'compensated' : 'completed';
      expect(expectedStatusOf(`ord-${r.key}`)).toBe(expected);
    }
    expect(new Set(requests.map((r) => r.key)).size).toBe(20);
    expect(expectedStatusOf('ord-someone-else')).toBeUndefined();
  });
});

describe('judge (the saga checks)', () => {
  it('counts a clean run as all as expected, with completion times from the database clock', () => {
    const { orders, shipments, accepted } = cleanRun();
    const { orders: o, shipments: s } = judge(orders, shipments, accepted);
    expect(o).toMatchObject({
      total: 10,
      byStatus: { completed: 9, compensated: 1 },
      asExpected: 10,
      wrongOutcomeCount: 0,
      notTerminal: 0,
      missing: 0,
      unanswered: 0,
    });
    expect(o.completionMs.p50).toBe(204);
    expect(o.completionMs.max).toBe(209);
    expect(o.declinedMs.count).toBe(1);
    // 10 sagas from the first start (0 ms) to the last end (1,109 ms).
    expect(o.spanS).toBe(1.1);
    expect(o.perSec).toBeCloseTo(10 / 1.109, 1);
    expect(s).toMatchObject({ expected: 9, completed: 9, notCompleted: 0, unexpected: 0 });
    // Shipment end minus order start: 250 + n ms for the nine confirmed orders.
    expect(s.endToEndMs.p50).toBe(254);
  });

  it('finds stuck, wrong, missing, unanswered and unshipped orders', () => {
    const { orders, shipments: all, accepted } = cleanRun();
    const shipments = all.filter((s) => s.key !== orders[0]!.key && s.key !== orders[1]!.key);
    orders[0]!.status = 'running'; // stuck
    orders[1]!.status = 'compensated'; // should have been confirmed
    accepted.set('ord-load-r1-99-c', 'completed'); // answered, not in the database
    orders.push(row('ord-load-r1-10-c', 'completed', 1_000, 1_300)); // in flight at the stop
    shipments.push(row('ord-load-r1-9-d', 'completed', 0, 1)); // shipped though declined
    const { orders: o, shipments: s } = judge(orders, shipments, accepted);
    expect(o.notTerminal).toBe(1);
    expect(o.wrongOutcome).toEqual([`ord-load-r1-1-c: compensated`]);
    expect(o.missing).toBe(1);
    expect(o.unanswered).toBe(1);
    expect(s.notCompleted).toBe(1); // order 10 has no shipment
    expect(s.unexpected).toBe(1);
  });
});

describe('verdictOf', () => {
  const deadLetters = { 'order-service': 0, 'payment-service': 0, 'shipping-service': 0 };

  it('passes a clean run', () => {
    const { orders, shipments, accepted } = cleanRun();
    expect(verdictOf(http(), { ...judge(orders, shipments, accepted), deadLetters }, [])).toEqual({
      ok: true,
      failures: [],
    });
  });

  it('fails on every kind of error, naming each', () => {
    const { orders, shipments, accepted } = cleanRun();
    orders[2]!.status = 'failed';
    orders[3]!.status = 'compensating';
    const verdict = verdictOf(
      http({ non2xx: 2, errors: 3, timeouts: 1, statusCodes: { '202': 98, '500': 2 } }),
      {
        ...judge(orders, shipments, accepted),
        deadLetters: { ...deadLetters, 'payment-service': 4 },
      },
      ['payment-service: exit 1'],
    );
    expect(verdict.ok).toBe(false);
    expect(verdict.failures).toEqual([
      '2 non-2xx answers ({"202":98,"500":2})',
      '1 requests timed out',
      '2 connection errors',
      '1 order sagas not terminal when the drain time was up (stuck)',
      '1 order sagas failed',
      '1 order sagas ended other than their request implies (ord-load-r1-2-c: failed)',
      '2 shipment sagas for orders that were not confirmed',
      '4 dead-lettered outbox/inbox messages in payment-service',
      'services exited during the run: payment-service: exit 1',
    ]);
  });

  it('fails a run in which nothing was accepted', () => {
    const verdict = verdictOf(
      http({ sent: 0, ok: 0, statusCodes: {} }),
      { ...judge([], [], new Map()), deadLetters },
      [],
    );
    expect(verdict.failures).toEqual(['no order accepted (no 2xx answer)']);
  });
});

describe('parseHttpLoadOptions', () => {
  it('has a CI size and checks its numbers', () => {
    expect(parseHttpLoadOptions(['--quick'])).toMatchObject({
      broker: 'rabbitmq',
      durationS: 15,
      connections: 8,
      rate: null,
      quick: true,
    });
    expect(parseHttpLoadOptions(['--broker', 'nats', '--rate', '40'])).toMatchObject({
      broker: 'nats',
      durationS: 60,
      connections: 16,
      rate: 40,
    });
    expect(parseHttpLoadOptions(['--help'])).toBeUndefined();
    expect(() => parseHttpLoadOptions(['--broker', 'sqs'])).toThrow(/--broker must be one of/);
    expect(() => parseHttpLoadOptions(['--duration-s', '0'])).toThrow(/positive integer/);
    expect(() => parseHttpLoadOptions(['--connections', '8', '--max-requests', '4'])).toThrow(
      /--max-requests \(4\) must be at least --connections \(8\)/,
    );
  });
});

describe('the docs section', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'sage-http-load-report-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function result(fields: Partial<HttpLoadResult> = {}): HttpLoadResult {
    const { orders, shipments, accepted } = cleanRun();
    const sagas = {
      ...judge(orders, shipments, accepted),
      deadLetters: { 'order-service': 0, 'payment-service': 0, 'shipping-service': 0 },
      drainMs: 1_000,
      drained: true,
    };
    const usageOf = (pid: number) => ({ pid, cpuS: 3.5, cpuTotalS: 9, peakRssMb: 250 });
    return {
      format: HTTP_LOAD_FORMAT,
      broker: 'rabbitmq',
      startedAt: '2026-12-07T15:30:00.000Z',
      command: 'npm run load:http --',
      git: { commit: null, dirty: null },
      machine: {
        cpuModel: 'Test CPU',
        cores: 2,
        ramGb: 8,
        os: 'Linux',
        node: 'v20',
        postgres: '15',
        postgresSettings: {},
        loadAvg1mAtStart: 1,
      },
      servers: 'shared servers',
      settings: {
        durationS: 60,
        connections: 16,
        rate: null,
        maxRequests: 100_000,
        declineEvery: 10,
        drainTimeoutS: 90,
        requestTimeoutS: 10,
        logLevel: 'warn',
        quick: false,
      },
      http: http(),
      sagas,
      usage: {
        windowS: 62,
        services: {
          'order-service': usageOf(1),
          'payment-service': usageOf(2),
          'shipping-service': usageOf(3),
        },
        controller: { cpuS: 1.2, peakRssMb: 120 },
        postgres: { backendsCpuS: 7.5, backendsSeen: 30, serverCpuS: 9.5 },
        brokerServerCpuS: 2,
        oldestTransaction: null,
        machineCpuPct: 80,
        cores: 2,
        loadAvg: {
          atStart: [1, 1, 1],
          atEnd: [2, 1, 1],
          oneMinute: { min: 1, mean: 1.5, max: 2.25, samples: 60 },
        },
      },
      exitedEarly: [],
      verdict: { ok: true, failures: [] },
      logs: '/tmp/logs',
      wallMs: 90_000,
      ...fields,
    };
  }

  it('says how to run it when there are no results yet', () => {
    const section = renderHttpLoadSection([], dir, path.join(dir, 'benchmarks.md'));
    expect(section.startsWith(HTTP_LOAD_MARKERS.begin)).toBe(true);
    expect(section.endsWith(HTTP_LOAD_MARKERS.end)).toBe(true);
    expect(section).toContain('npm run load:http');
    expect(section).toContain('_No HTTP load results yet');
  });

  it('renders the newest run per broker, with its numbers, resources and load', () => {
    writeFileSync(path.join(dir, 'http-load-rabbitmq.json'), JSON.stringify(result()));
    writeFileSync(
      path.join(dir, 'http-load-old.json'),
      JSON.stringify(result({ startedAt: '2026-12-01T00:00:00.000Z' })),
    );
    writeFileSync(
      path.join(dir, 'http-load-nats.json'),
      JSON.stringify(
        result({
          broker: 'nats',
          verdict: { ok: false, failures: ['3 order sagas failed'] },
        }),
      ),
    );
    writeFileSync(path.join(dir, 'http-load-other.json'), JSON.stringify({ format: 'x' }));
    const runs = loadHttpLoadResults(dir);
    expect(runs.map((r) => [r.result.broker, r.file])).toEqual([
      ['nats', 'http-load-nats.json'],
      ['rabbitmq', 'http-load-rabbitmq.json'],
    ]);
    const section = renderHttpLoadSection(runs, dir, path.join(dir, 'docs', 'benchmarks.md'));
    expect(section).toContain(
      '| rabbitmq | [2026-12-07 15:30](../http-load-rabbitmq.json) | 60 s × 16 | 10 (1) | 50.0 | 10.0 / 40.0 |',
    );
    expect(section).toContain('| pass |');
    expect(section).toContain('| 1.5 / 2.25 |');
    expect(section).toContain(
      '| rabbitmq | shared | 62 | 3.5 / 250 | 3.5 / 250 | 3.5 / 250 | 7.5 | 9.5 | 2.0 | 1.2 | 80 | 0.0 |',
    );
    expect(section).toContain('- nats: 3 order sagas failed (reproduce: `npm run load:http --`)');
    expect(section).toContain('Machine: Test CPU, 2 cores');
  });

  it('is written between its markers, next to the chaos section, and replaced in place', () => {
    const docs = path.join(dir, 'benchmarks.md');
    writeFileSync(docs, '# Benchmarks\n\n<!-- chaos:begin x -->\nchaos\n<!-- chaos:end -->\n');
    writeDocsSection(docs, renderHttpLoadSection([], dir, docs), HTTP_LOAD_MARKERS);
    writeFileSync(path.join(dir, 'http-load-rabbitmq.json'), JSON.stringify(result()));
    writeDocsSection(
      docs,
      renderHttpLoadSection(loadHttpLoadResults(dir), dir, docs),
      HTTP_LOAD_MARKERS,
    );
    const text = readFileSync(docs, 'utf8');
    expect(
      text.startsWith('# Benchmarks\n\n<!-- chaos:begin x -->\nchaos\n<!-- chaos:end -->'),
    ).toBe(true);
    expect(text.split(HTTP_LOAD_MARKERS.begin)).toHaveLength(2);
    expect(text).not.toContain('_No HTTP load results yet');
    expect(text).toContain('| rabbitmq |');
  });

  it('shows a summary without samples as a dash', () => {
    const empty = summarise(new Float64Array());
    const r = result();
    r.sagas.shipments.endToEndMs = JSON.parse(JSON.stringify(empty)) as typeof empty;
    const section = renderHttpLoadSection([{ file: 'f.json', result: r }], dir, 'x.md');
    expect(section).toContain('| – |');
  });
});
