/** `sage-relay` (libs/saga-outbox/src/bin/sage-relay.ts) as a child process with only the environment given (plus PATH and the like). */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const ENTRY = 'libs/saga-outbox/src/bin/sage-relay.ts';

export interface RelayProcess {
  child: ChildProcessWithoutNullStreams;
  /** Everything written to stdout and stderr so far. */
  output: () => string;
  exited: Promise<number | null>;
  /** SIGKILL if still running, then the exit. */
  kill: () => Promise<void>;
}

export function startRelayProcess(env: Record<string, string>): RelayProcess {
  const childEnv: NodeJS.ProcessEnv = { TS_NODE_TRANSPILE_ONLY: 'true' };
  // None of the caller's SAGE_* / DATABASE_URL: the relay sees exactly `env`.
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('SAGE_') && k !== 'DATABASE_URL') childEnv[k] = v;
  const child = spawn(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', '-r', 'tsconfig-paths/register', ENTRY],
    { cwd: ROOT, env: { ...childEnv, ...env }, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    output: () => output,
    exited,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
