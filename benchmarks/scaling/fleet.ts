/**
 * The worker processes of one scenario, seen from the controller: started once (the largest
 * process count), each a separate Node process as `npm run sage-relay` starts one (ts-node,
 * transpile-only; benchmarks/chaos/processes.ts), then driven round by round — `prepare`, `go`,
 * `stop` sent to the first N only — so a round with 1, 2 or 4 processes pays no process start-up.
 */
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { childEnv, spawnTs, type ChildHandle } from '../chaos/processes';
import type { PgTarget } from '../harness/database';
import type { WorkerCommand } from './workers/worker-protocol';
import { ANSWER } from './workers/worker-protocol';

/** One log file per worker (stdout events and stderr warnings), kept out of the repository. */
export const LOG_DIR = path.join(os.tmpdir(), 'sage-bench-scaling');

export type WorkerKind = 'relay' | 'consumer' | 'saga';

const ENTRY: Record<WorkerKind, string> = {
  relay: 'benchmarks/scaling/workers/relay-worker.ts',
  consumer: 'benchmarks/scaling/workers/consumer-worker.ts',
  saga: 'benchmarks/scaling/workers/saga-worker.ts',
};

/** application_name of every worker connection: the CPU window finds their backends by database. */
export const WORKER_APP = 'sage-bench-scaling-worker';

/** ts-node start-up of the library on a busy 2-core machine can take minutes. */
const START_TIMEOUT_MS = 300_000;
const COMMAND_TIMEOUT_MS = 60_000;

export class Fleet {
  private round = 0;

  private constructor(
    readonly kind: WorkerKind,
    private readonly workers: ChildHandle[],
  ) {}

  /** Starts `count` workers at once and waits until every one is ready. */
  static async start(
    kind: WorkerKind,
    count: number,
    target: PgTarget,
    poolSize: number,
  ): Promise<Fleet> {
    mkdirSync(LOG_DIR, { recursive: true });
    const workers = Array.from({ length: count }, (_, i) => {
      const name = `${kind}-${i + 1}`;
      const config = { name, target, poolSize, applicationName: WORKER_APP };
      return spawnTs(
        name,
        ENTRY[kind],
        [JSON.stringify(config)],
        childEnv({}),
        path.join(LOG_DIR, `${name}.log`),
      );
    });
    const fleet = new Fleet(kind, workers);
    try {
      await Promise.all(workers.map((w) => w.waitForEvent('ready', START_TIMEOUT_MS)));
    } catch (error) {
      await fleet.close();
      throw error;
    }
    return fleet;
  }

  /** Pids of the first `n` workers (their CPU is read from /proc). */
  pids(n: number): number[] {
    return this.workers.slice(0, n).map((w) => w.pid);
  }

  /**
   * Sends `cmd` to the first `n` workers and resolves with their answers (in worker order);
   * rejects with the worker's error when one fails, exits or does not answer in time.
   */
  async command(
    n: number,
    cmd: WorkerCommand['cmd'],
    params: Record<string, unknown> = {},
  ): Promise<Record<string, unknown>[]> {
    const round = ++this.round;
    const targets = this.workers.slice(0, n);
    const line = JSON.stringify({ cmd, round, ...params });
    for (const w of targets) w.send(line);
    const answer = ANSWER[cmd];
    await Promise.all(
      targets.map((w) =>
        w.waitFor(
          () => w.last(answer)?.round === round || w.last('failed')?.round === round,
          `"${answer}" for round ${round}`,
          COMMAND_TIMEOUT_MS,
        ),
      ),
    );
    return targets.map((w) => {
      const failed = w.last('failed');
      if (failed?.round === round)
        throw new Error(`${w.name}: ${cmd} failed: ${String(failed.error)}`);
      const { event: _e, at: _a, round: _r, ...fields } = w.last(answer)!;
      return fields;
    });
  }

  /** A worker that exited, with its last output; undefined while all of them run. */
  problem(): string | undefined {
    const dead = this.workers.find((w) => !w.alive);
    return dead ? `${dead.name} exited:\n${dead.recentOutput()}` : undefined;
  }

  /** Asks every worker to exit, then SIGKILLs whatever is still running after 10 s. */
  async close(): Promise<void> {
    await Promise.all(
      this.workers.map(async (w) => {
        if (!w.alive) return;
        w.send(JSON.stringify({ cmd: 'exit', round: -1 }));
        const timer = setTimeout(() => void w.kill('SIGKILL'), 10_000);
        await w.exited;
        clearTimeout(timer);
      }),
    );
  }
}
