/**
 * How the runbook drill talks: each step printed as it starts, each check printed with what it
 * saw, and the first mismatch thrown as a DrillMismatch (the drill then exits 1).
 */
export class DrillMismatch extends Error {}

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s`;

export function step(scenario: string, text: string): void {
  process.stdout.write(`${elapsed()} [${scenario}] ${text}\n`);
}

/** Prints `what` as ok, or throws a DrillMismatch naming it and what was seen instead. */
export function check(scenario: string, ok: boolean, what: string, seen = ''): void {
  if (!ok)
    throw new DrillMismatch(`[${scenario}] MISMATCH: ${what}${seen ? `\n  seen: ${seen}` : ''}`);
  process.stdout.write(`${elapsed()} [${scenario}]   ok: ${what}${seen ? ` (${seen})` : ''}\n`);
}

/** A command's output, indented, for the log. */
export function show(text: string): void {
  const body = text.trimEnd();
  if (body) process.stdout.write(`${body.replace(/^/gm, '        | ')}\n`);
}
