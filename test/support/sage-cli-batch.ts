/**
 * Test helper: runs several `sage` invocations in ONE child process, one after another, each
 * through the same `runCli` main.ts calls, with its own connection, stdout, stderr and exit code.
 * Starting ts-node costs seconds per process; this lets an integration test check dozens of
 * commands against a real database for the price of one start.
 *
 *   node -r ts-node/register/transpile-only -r tsconfig-paths/register test/support/sage-cli-batch.ts '[["status","--json"]]'
 *
 * Prints a JSON array of { argv, code, stdout, stderr } on stdout.
 */
import 'reflect-metadata';
import { runCli } from '../../libs/saga-outbox/src/cli/cli';

export interface CliRun {
  argv: string[];
  code: number;
  stdout: string;
  stderr: string;
}

async function main(): Promise<void> {
  const calls = JSON.parse(process.argv[2] ?? '[]') as string[][];
  const results: CliRun[] = [];
  for (const argv of calls) {
    let stdout = '';
    let stderr = '';
    const code = await runCli(argv, {
      env: process.env,
      out: (t) => void (stdout += t),
      err: (t) => void (stderr += t),
    });
    results.push({ argv, code, stdout, stderr });
  }
  process.stdout.write(JSON.stringify(results));
}

void main();
