import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type pg from 'pg';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  ramGb: number;
  os: string;
  node: string;
  postgres: string;
  /** Settings that decide commit cost; a benchmark without them cannot be compared. */
  postgresSettings: Record<string, string>;
  /** 1-minute load average when the run started: other work on the box skews every figure. */
  loadAvg1mAtStart: number;
  /** 1-minute load average sampled every 5 s through the run (absent in older results files). */
  loadAvg1m?: { min: number; mean: number; max: number; samples: number };
  /** Broker servers the run published to, by kind (absent in older results files). */
  brokers?: Record<string, string>;
}

/** Samples os.loadavg()[0] every `everyMs` until stopped; the summary goes into MachineInfo.loadAvg1m. */
export function sampleLoad(everyMs = 5000): () => {
  min: number;
  mean: number;
  max: number;
  samples: number;
} {
  const values: number[] = [os.loadavg()[0]!];
  const timer = setInterval(() => values.push(os.loadavg()[0]!), everyMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    values.push(os.loadavg()[0]!);
    const r = (v: number): number => Math.round(v * 100) / 100;
    return {
      min: r(Math.min(...values)),
      mean: r(values.reduce((a, b) => a + b, 0) / values.length),
      max: r(Math.max(...values)),
      samples: values.length,
    };
  };
}

export interface GitInfo {
  commit: string | null;
  /** Uncommitted changes in the working tree when the run started. */
  dirty: boolean | null;
}

const PG_SETTINGS = [
  'fsync',
  'synchronous_commit',
  'wal_sync_method',
  'shared_buffers',
  'max_connections',
  'full_page_writes',
];

export async function machineInfo(admin: pg.Client): Promise<MachineInfo> {
  const version = await admin.query<{ v: string }>(`SELECT current_setting('server_version') AS v`);
  const settings = await admin.query<{ name: string; setting: string; unit: string | null }>(
    `SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[]) ORDER BY name`,
    [PG_SETTINGS],
  );
  return {
    cpuModel: cpuModel(),
    cores: os.cpus().length,
    ramGb: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    postgres: version.rows[0]?.v ?? 'unknown',
    postgresSettings: Object.fromEntries(
      settings.rows.map((r) => [
        r.name,
        r.unit && r.unit !== '' ? `${r.setting} (${r.unit})` : r.setting,
      ]),
    ),
    loadAvg1mAtStart: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
  };
}

function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'));
    const model = line?.split(':')[1]?.trim();
    if (model) return model;
  } catch {
    // not Linux: fall through to what Node knows
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

export function gitInfo(cwd: string): GitInfo {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd, encoding: 'utf8' }).trim();
    const status = execFileSync('git', ['status', '--porcelain'], { cwd, encoding: 'utf8' });
    return { commit, dirty: status.trim().length > 0 };
  } catch {
    return { commit: null, dirty: null };
  }
}
