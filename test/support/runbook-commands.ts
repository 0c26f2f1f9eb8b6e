/**
 * The shell commands a runbook (docs/runbooks/*.md) tells an operator to run: every line of its
 * fenced code blocks and every inline code span that starts with a command, with the section it
 * sits in. test/docs/runbook-commands.spec.ts checks them against the CLI and the Helm chart;
 * benchmarks/runbooks runs the `sage` ones for real.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const RUNBOOKS_DIR = join(__dirname, '..', '..', 'docs', 'runbooks');

export interface RunbookCommand {
  /** File name inside docs/runbooks, e.g. `relay-down.md`. */
  readonly file: string;
  readonly line: number;
  /** The `## ` heading above it (`Confirm`, `What to do`, …); '' before the first. */
  readonly section: string;
  /** The command as written, without its trailing `# comment` and `&`; pipes kept. */
  readonly text: string;
  /** The first command of the line (before any ` | `), as words. */
  readonly words: readonly string[];
  /** Program name: `sage`, `kubectl`, `helm`, `curl`, … */
  readonly program: string;
}

const PROGRAMS = /^(sage|kubectl|helm|curl)\s/;

/** Every command of one runbook, in document order. */
export function runbookCommands(file: string): RunbookCommand[] {
  const markdown = readFileSync(join(RUNBOOKS_DIR, file), 'utf8');
  const out: RunbookCommand[] = [];
  let section = '';
  let fenced = false;
  markdown.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line.startsWith('```')) {
      fenced = !fenced;
      return;
    }
    if (!fenced && line.startsWith('## ')) section = line.slice(3).trim();
    const candidates = fenced
      ? [stripComment(line)]
      : [...line.matchAll(/`([^`]+)`/g)].map((m) => m[1]!.trim());
    for (const candidate of candidates) {
      const text = candidate.replace(/\s*&$/, '').trim();
      if (!PROGRAMS.test(text)) continue;
      const words = shellWords(text.split(' | ')[0]!);
      out.push({ file, line: index + 1, section, text, words, program: words[0]! });
    }
  });
  return out;
}

/** The runbooks' file names (README.md included: it holds the command summary). */
export function runbookFiles(): string[] {
  return readdirSync(RUNBOOKS_DIR)
    .filter((f) => f.endsWith('.md'))
    .sort();
}

/** The commands of `file` under `section` whose program is `program`. */
export function commandsIn(file: string, section: string, program = 'sage'): RunbookCommand[] {
  const found = runbookCommands(file).filter((c) => c.section === section && c.program === program);
  if (!found.length) throw new Error(`${file} has no "${program}" command under "## ${section}"`);
  return found;
}

/** `cmd   # note` → `cmd` (a `#` that starts a word outside quotes). */
function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i).trim();
  }
  return line.trim();
}

/** Words as a POSIX shell splits them (single and double quotes; no expansions needed here). */
export function shellWords(text: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  let angle = false; // `<participant consumer>`: one placeholder
  for (const c of text) {
    if (angle) {
      word += c;
      if (c === '>') angle = false;
    } else if (c === '<') {
      angle = true;
      word = (word ?? '') + c;
    } else if (quote) {
      if (c === quote) quote = undefined;
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= '';
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else word = (word ?? '') + c;
  }
  if (word !== undefined) words.push(word);
  return words;
}
