/**
 * The scaling workers' side of the controller protocol (the chaos workers' JSON lines, see
 * benchmarks/chaos/workers/worker-io.ts): configuration as one JSON argument; commands as JSON
 * lines on stdin, `{"cmd": "prepare" | "go" | "stop" | "exit", "round": n, ...}`; each command
 * answered by an event named after it (`prepare` → `prepared`, `go` → `going`, `stop` →
 * `stopped`) carrying the same round, or by `failed` with the error. Commands run one at a time, in
 * the order received, so a `stop` never overtakes its `go`.
 */
import type { SageLogger } from '@sage/saga-outbox';
import type { PgTarget } from '../../harness/database';
import { emit, onCommand, runWorker, workerConfig } from '../../chaos/workers/worker-io';

export { emit, runWorker, workerConfig };

export interface WorkerCommand {
  cmd: 'prepare' | 'go' | 'stop' | 'exit';
  round: number;
  [param: string]: unknown;
}

export const ANSWER: Record<WorkerCommand['cmd'], string> = {
  prepare: 'prepared',
  go: 'going',
  stop: 'stopped',
  exit: 'exiting',
};

export type WorkerHandlers = {
  [K in WorkerCommand['cmd']]: (command: WorkerCommand) => Promise<Record<string, unknown> | void>;
};

/** Serves commands until `exit` (answered, then the process exits 0). */
export function serveCommands(handlers: WorkerHandlers): void {
  let queue: Promise<void> = Promise.resolve();
  onCommand((line) => {
    queue = queue.then(async () => {
      let command: WorkerCommand;
      try {
        command = JSON.parse(line) as WorkerCommand;
      } catch {
        emit('failed', { round: -1, error: `not a JSON command: ${line.slice(0, 80)}` });
        return;
      }
      try {
        const fields = (await handlers[command.cmd](command)) ?? {};
        emit(ANSWER[command.cmd], { round: command.round, ...fields });
        if (command.cmd === 'exit') process.exit(0);
      } catch (error) {
        process.stderr.write(`${String(error instanceof Error ? error.stack : error)}\n`);
        emit('failed', {
          round: command.round,
          error: error instanceof Error ? error.message : String(error),
        });
      }
    });
  });
}

/** Sage's logger on stderr (stdout carries the events): warnings and errors only. */
export function stderrSageLogger(name: string): SageLogger {
  const write = (level: string, message: string, fields?: Record<string, unknown>): void => {
    process.stderr.write(
      `${new Date().toISOString()} ${level} [${name}] ${message}${fields ? ` ${JSON.stringify(fields)}` : ''}\n`,
    );
  };
  return {
    debug: () => undefined,
    info: () => undefined,
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}

/** What every scaling worker is started with (argv[2]). */
export interface ScalingWorkerConfig {
  /** Worker name: relay id, saga owner id, log prefix. */
  name: string;
  /** The bench database (benchmarks/harness/database.ts PgTarget). */
  target: PgTarget;
  /** The worker's DataSource pool size. */
  poolSize: number;
  /** application_name of its connections. */
  applicationName: string;
}
