/**
 * Human output: aligned tables, short durations, one-line cells, control characters escaped
 * (terminal-text.ts). JSON output is JSON.stringify's, with the few characters it leaves raw
 * escaped too.
 */
import { escapeJsonText, escapeTerminalText } from './terminal-text';

/** `4s`, `3m12s`, `2h05m`, `3d04h`: precise enough to read at a glance, never wider than 6 chars. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d${pad(Math.floor((s % 86_400) / 3600))}h`;
}

/** Seconds from `from` to `to` (both on the database clock when they come from rows). */
export function secondsBetween(from: Date, to: Date): number {
  return (to.getTime() - from.getTime()) / 1000;
}

/** `12 ago` / `in 12` relative to `now`, or `-` for null. */
export function relative(date: Date | null, now: Date): string {
  if (!date) return '-';
  const d = secondsBetween(date, now);
  return d >= 0 ? `${formatDuration(d)} ago` : `in ${formatDuration(-d)}`;
}

export function isoOrDash(date: Date | null): string {
  return date ? date.toISOString() : '-';
}

const pad = (n: number): string => String(n).padStart(2, '0');

/** One line, at most `max` characters (an ellipsis marks the cut); `-` for null / empty. */
export function cell(value: string | number | null | undefined, max = 60): string {
  if (value === null || value === undefined || value === '') return '-';
  const text = escapeTerminalText(String(value).replace(/\s+/g, ' ').trim());
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * A left-aligned table with a header row; numeric columns (`right`) aligned right. Every cell is
 * escaped: a value can never break the table or the terminal.
 */
export function table(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  options: { indent?: string; right?: readonly number[] } = {},
): string {
  const indent = options.indent ?? '';
  const right = new Set(options.right ?? []);
  const safe = rows.map((r) => r.map((c) => escapeTerminalText(c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...safe.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    indent +
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...safe.map(line)].join('\n') + '\n';
}

/** `key: value` lines with the keys aligned; each value escaped onto its one line. */
export function fields(entries: readonly (readonly [string, string])[], indent = ''): string {
  const width = Math.max(...entries.map(([k]) => k.length));
  return (
    entries
      .map(([k, v]) => `${indent}${`${k}:`.padEnd(width + 1)} ${escapeTerminalText(v)}`)
      .join('\n') + '\n'
  );
}

/**
 * JSON for --json: two-space indented, Dates as ISO strings, one trailing newline; DEL, C1 and
 * bidi controls written as `\uXXXX` (the same strings once parsed).
 */
export function json(value: unknown): string {
  return escapeJsonText(JSON.stringify(value, null, 2)) + '\n';
}
