import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { count } from './scaling-tables';

/** How often the controller counts: the end of a window is known to within this. */
export const POLL_MS = 100;

/**
 * Polls `sql` (a COUNT, see scaling-tables.ts COUNT) until it reaches `want`; resolves with the
 * performance.now() of the first poll that saw any item done and of the poll that saw all. Rejects after `timeoutMs` naming what it waited for
 * and how far it got, or at once when `abort()` (a worker failed) returns a reason.
 */
export async function waitForCount(
  monitor: pg.Client,
  sql: string,
  want: number,
  what: string,
  timeoutMs: number,
  abort: () => string | undefined = () => undefined,
): Promise<{ firstAt: number; doneAt: number }> {
  const until = performance.now() + timeoutMs;
  let firstAt: number | undefined;
  for (;;) {
    const n = await count(monitor, sql);
    const at = performance.now();
    if (n > 0) firstAt ??= at;
    if (n >= want) return { firstAt: firstAt ?? at, doneAt: at };
    const reason = abort();
    if (reason) throw new Error(`${what}: stopped at ${n} of ${want}: ${reason}`);
    if (at > until) throw new Error(`${what}: ${n} of ${want} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
