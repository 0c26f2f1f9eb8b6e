/**
 * `npm run chaos -- --relay-mode wal`'s pure parts: the option, the relays' environment (one slot
 * per broker run), the WAL relay's duplicate bound, and results kept per broker and relay mode.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FaultRecord, FaultType } from '../../benchmarks/chaos/faults';
import { parseOptions, type ChaosOptions } from '../../benchmarks/chaos/options';
import {
  relayModeEnv,
  walDuplicateBound,
  walSlotName,
  WAL_MAX_WINDOW,
} from '../../benchmarks/chaos/relay-mode';
import { loadChaosResults, resultFileBase } from '../../benchmarks/chaos/report';
import { RESULT_FORMAT } from '../../benchmarks/chaos/scenario';

function options(...argv: string[]): ChaosOptions {
  const parsed = parseOptions(argv);
  if (parsed === 'help') throw new Error('unexpected help');
  return parsed;
}

function fault(n: number, type: FaultType): FaultRecord {
  return { n, type, target: 'x', startedAt: n, endedAt: n + 1 };
}

describe('--relay-mode', () => {
  it('defaults to the polling relay and accepts wal', () => {
    expect(options().relayMode).toBe('polling');
    expect(options('--relay-mode', 'wal').relayMode).toBe('wal');
    expect(options('--relay-mode', 'polling').relayMode).toBe('polling');
  });

  it('rejects another mode, naming the option and the choices', () => {
    expect(() => options('--relay-mode', 'cdc')).toThrow(
      '--relay-mode must be polling or wal, got cdc',
    );
  });
});

describe('relayModeEnv', () => {
  it('leaves the polling relays as they are', () => {
    expect(relayModeEnv('polling', 'kafka')).toEqual({});
  });

  it('starts WAL relays on a slot of their own broker run', () => {
    expect(relayModeEnv('wal', 'rabbitmq')).toEqual({
      SAGE_RELAY_MODE: 'wal',
      SAGE_RELAY_WAL_SLOT: 'sage_outbox_chaos_rabbitmq',
      SAGE_RELAY_WAL_MAX_WINDOW: String(WAL_MAX_WINDOW),
    });
    const slots = (['kafka', 'rabbitmq', 'nats'] as const).map(walSlotName);
    expect(new Set(slots).size).toBe(3);
    for (const slot of slots) expect(slot).toMatch(/^[a-z_][a-z0-9_]{0,62}$/);
  });
});

describe('walDuplicateBound', () => {
  const records = [
    fault(1, 'relay-kill'),
    fault(2, 'broker-restart'),
    fault(3, 'relay-kill'),
    fault(4, 'pg-kill'),
    fault(5, 'pg-restart'),
    fault(6, 'producer-kill'),
  ];

  it('allows maxWindow plus one transaction per fault that can cut a stream or a publish short', () => {
    const b = walDuplicateBound(records, 4, 0);
    expect(b).toEqual({
      perFault: WAL_MAX_WINDOW + 4,
      faults: 5,
      crashRewind: 0,
      bound: 5 * (WAL_MAX_WINDOW + 4),
      observed: 0,
      ok: true,
    });
  });

  it('fails above the bound, and with no fault allows no duplicate at all', () => {
    expect(walDuplicateBound(records, 4, 5 * 104, 0, 100).ok).toBe(true);
    expect(walDuplicateBound(records, 4, 5 * 104 + 1, 0, 100).ok).toBe(false);
    expect(walDuplicateBound([], 4, 1).ok).toBe(false);
    expect(walDuplicateBound([fault(1, 'consumer-kill')], 4, 0).ok).toBe(true);
  });

  it("adds what a PostgreSQL crash may replay from the slot's checkpointed position", () => {
    const b = walDuplicateBound(records, 4, 5 * 104 + 300, 300, 100);
    expect(b.bound).toBe(5 * 104 + 300);
    expect(b.ok).toBe(true);
    expect(walDuplicateBound(records, 4, 5 * 104 + 301, 300, 100).ok).toBe(false);
  });
});

describe('chaos results per broker and relay mode', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'sage-chaos-mode-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const write = (file: string, result: Record<string, unknown>): void =>
    writeFileSync(path.join(dir, file), JSON.stringify({ format: RESULT_FORMAT, ...result }));

  it('names WAL runs apart from polling runs', () => {
    expect(resultFileBase('nats')).toBe('chaos-nats');
    expect(resultFileBase('nats', 'polling')).toBe('chaos-nats');
    expect(resultFileBase('nats', 'wal')).toBe('chaos-nats-wal');
  });

  it('keeps the newest run of each broker and mode (results without a mode are polling)', () => {
    write('chaos-rabbitmq.json', { broker: 'rabbitmq', startedAt: '2026-12-07T10:00:00Z' });
    write('chaos-rabbitmq-wal.json', {
      broker: 'rabbitmq',
      relayMode: 'wal',
      startedAt: '2026-12-07T11:00:00Z',
    });
    write('chaos-rabbitmq-wal-old.json', {
      broker: 'rabbitmq',
      relayMode: 'wal',
      startedAt: '2026-12-07T09:00:00Z',
    });
    write('chaos-kafka.json', {
      broker: 'kafka',
      relayMode: 'polling',
      startedAt: '2026-12-07T08:00:00Z',
    });
    expect(loadChaosResults(dir).map((r) => r.file)).toEqual([
      'chaos-kafka.json',
      'chaos-rabbitmq.json',
      'chaos-rabbitmq-wal.json',
    ]);
  });
});
