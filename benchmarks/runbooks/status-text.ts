/** Reads the OUTBOX / INBOX figures the runbooks point at out of `sage status`'s text output. */
export interface StatusFigures {
  pending: number;
  due: number;
  claimed: number;
  leaseExpired: number;
  outboxDeadLetters: number;
  /** Seconds; 0 when "-". */
  oldestPendingSeconds: number;
}

const UNITS: Record<string, number> = { d: 86_400, h: 3600, m: 60, s: 1 };

/** `1m05s` → 65 (the format of formatDuration in the CLI). */
export function durationSeconds(text: string): number {
  let total = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)([dhms])/g)) total += Number(n) * UNITS[unit!]!;
  return total;
}

export function statusFigures(text: string): StatusFigures {
  const read = (re: RegExp): RegExpMatchArray => {
    const m = text.match(re);
    if (!m) throw new Error(`"sage status" printed no line matching ${re}:\n${text}`);
    return m;
  };
  const pending = read(/^\s*pending:\s+(\d+)\s+\(due (\d+),/m);
  const claimed = read(/^\s*claimed:\s+(\d+)\s+\(lease expired (\d+)\)/m);
  const dead = read(/^\s*dead letters:\s+(\d+)/m);
  const oldest = read(/^\s*oldest pending:\s+(\S+)/m);
  return {
    pending: Number(pending[1]),
    due: Number(pending[2]),
    claimed: Number(claimed[1]),
    leaseExpired: Number(claimed[2]),
    outboxDeadLetters: Number(dead[1]),
    oldestPendingSeconds: oldest[1] === '-' ? 0 : durationSeconds(oldest[1]!),
  };
}
