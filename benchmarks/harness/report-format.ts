import type { ResourceUsage } from './resources';

/** Shared number formatting for the generated docs/benchmarks.md. */

export function num(v: number): string {
  return v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1);
}

/** Counts: whole numbers with thousands separators. */
export function int(v: number): string {
  return Math.round(v).toLocaleString('en-US');
}

export function ms(v: number): string {
  if (Number.isNaN(v)) return '–';
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

export function pct(v: number | null): string {
  return v === null ? 'n/a' : String(v);
}

export function mb(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}

export function ratio(v: number): string {
  return Number.isFinite(v) ? v.toFixed(2) : '–';
}

/**
 * CPU the run did not cause, in % of one core: whole-machine busy time minus this process and the
 * measured pool's backends (what is left: other processes, other databases, PostgreSQL's WAL writer).
 */
export function othersCpu(r: ResourceUsage, cores: number): number | null {
  if (r.machineCpuPct === null || r.pgBackendCpuPct === null) return null;
  return Math.max(0, Math.round(r.machineCpuPct * cores - r.processCpuPct - r.pgBackendCpuPct));
}

/** `a / b` for a subject/ceiling pair of cells. */
export function pair(a: string | number, b: string | number): string {
  return `${a} / ${b}`;
}
