/**
 * Runs a runbook's command line exactly as written (pipes and all) in bash, with `sage` the real
 * CLI (libs/saga-outbox/src/bin/sage.ts under ts-node, as `npm run sage` runs it) and the
 * runbook's placeholders (`<messageId>`, …) replaced by the values the drill names.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import type { RunbookCommand } from '../../test/support/runbook-commands';

const ROOT = join(__dirname, '..', '..');
const SAGE = `sage() { node -r ts-node/register/transpile-only -r tsconfig-paths/register ${ROOT}/libs/saga-outbox/src/bin/sage.ts "$@"; }`;

export interface ShellRun {
  /** The line as run (placeholders replaced). */
  line: string;
  code: number;
  stdout: string;
  stderr: string;
}

/** `command` with each `<placeholder>` (and a trailing `...` repeat mark) replaced from `values`. */
export function fillIn(command: RunbookCommand, values: Record<string, string> = {}): string {
  return command.text
    .replace(/(<[^>]+>)(?:\s+\1\.\.\.)?/g, (all, name: string) => {
      const value = values[name.slice(1, -1)];
      if (value === undefined)
        throw new Error(
          `${command.file}:${command.line}: no value for ${name} in "${command.text}"`,
        );
      return value;
    })
    .replace(/\s*&$/, '');
}

export function runLine(line: string, env: NodeJS.ProcessEnv): Promise<ShellRun> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['-o', 'pipefail', '-c', `${SAGE}\n${line}`],
      {
        cwd: ROOT,
        env: { ...process.env, TS_NODE_TRANSPILE_ONLY: 'true', ...env },
        maxBuffer: 16 << 20,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ line, code, stdout, stderr });
      },
    );
  });
}
