/**
 * The chaos run's child processes, seen from the controller: Node processes started the way
 * `npm run sage-relay` starts the standalone relay (ts-node, transpile-only, tsconfig paths), their
 * stdout and stderr appended to one log file each, JSON-line events parsed from stdout, and a
 * registry so that whatever happens every child is gone when the run ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

export const ROOT = path.resolve(__dirname, '..', '..');

export interface ChildEvent {
  event: string;
  at: number;
  [field: string]: unknown;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

const live = new Set<ChildHandle>();

/** SIGKILLs every child still running (the run's last cleanup, also on errors and Ctrl-C). */
export async function killAllChildren(): Promise<void> {
  await Promise.all([...live].map((c) => c.kill('SIGKILL')));
}

/**
 * The environment of a child: ours without PostgreSQL's and Sage's variables (a caller's
 * `eval "$(scripts/services.sh env)"` points at the shared servers), plus `extra`.
 */
export function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(PG|SAGE_|DATABASE_URL$|HEALTH_PORT$|PORT$)/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export class ChildHandle {
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  private exitInfo: ExitInfo | undefined;
  private readonly latest = new Map<string, ChildEvent>();
  private readonly waiters = new Set<() => void>();
  private readonly log: WriteStream;
  private tail: string[] = [];

  constructor(
    readonly name: string,
    private readonly child: ChildProcess,
    logFile: string,
  ) {
    if (child.pid === undefined) throw new Error(`could not start ${name}`);
    this.pid = child.pid;
    this.log = createWriteStream(logFile, { flags: 'a' });
    this.log.write(`--- ${new Date().toISOString()} ${name} started (pid ${this.pid})\n`);
    const onLine = (line: string): void => {
      this.log.write(`${line}\n`);
      this.tail.push(line);
      if (this.tail.length > 40) this.tail = this.tail.slice(-20);
      if (line.startsWith('{"event"')) {
        try {
          const event = JSON.parse(line) as ChildEvent;
          this.latest.set(event.event, event);
        } catch {
          // a log line that merely looks like an event
        }
      }
      for (const w of this.waiters) w();
    };
    createInterface({ input: child.stdout! }).on('line', onLine);
    createInterface({ input: child.stderr! }).on('line', onLine);
    child.stdin!.on('error', () => undefined); // writing to a killed child must not crash us
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal, at: Date.now() };
        this.log.write(
          `--- ${new Date().toISOString()} ${name} exited (code ${code}, signal ${signal})\n`,
        );
        this.log.end();
        live.delete(this);
        for (const w of this.waiters) w();
        resolve(this.exitInfo);
      });
    });
    live.add(this);
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  /** The last event of this type the child printed. */
  last(event: string): ChildEvent | undefined {
    return this.latest.get(event);
  }

  /** The child's last output lines, for error messages. */
  recentOutput(): string {
    return this.tail.slice(-15).join('\n');
  }

  /** Resolves once `test()` holds (checked on every output line); rejects on exit or timeout. */
  waitFor(test: () => boolean, what: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (test()) return settle(resolve);
        if (!this.alive)
          return settle(() =>
            reject(
              new Error(`${this.name} exited while waiting for ${what}:\n${this.recentOutput()}`),
            ),
          );
      };
      const timer = setTimeout(
        () =>
          settle(() =>
            reject(
              new Error(`${this.name}: no ${what} within ${timeoutMs} ms:\n${this.recentOutput()}`),
            ),
          ),
        timeoutMs,
      );
      const settle = (done: () => void): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        done();
      };
      this.waiters.add(check);
      check();
    });
  }

  waitForEvent(event: string, timeoutMs: number): Promise<void> {
    return this.waitFor(() => this.latest.has(event), `"${event}" event`, timeoutMs);
  }

  /** Whether any output line so far (since the last check) contained `text`. */
  waitForText(text: string, timeoutMs: number): Promise<void> {
    let seen = this.tail.some((l) => l.includes(text));
    return this.waitFor(
      () => (seen ||= this.tail.some((l) => l.includes(text))),
      `"${text}"`,
      timeoutMs,
    );
  }

  send(line: string): void {
    if (this.alive) this.child.stdin!.write(`${line}\n`);
  }

  /** Sends `signal` if still running and resolves once the process is gone. */
  async kill(signal: NodeJS.Signals): Promise<ExitInfo> {
    if (this.alive) this.child.kill(signal);
    return this.exited;
  }
}

/** Starts a TypeScript entry point of the repository in its own Node process. */
export function spawnTs(
  name: string,
  entry: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  logFile: string,
): ChildHandle {
  const child = spawn(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', '-r', 'tsconfig-paths/register', entry, ...args],
    {
      cwd: ROOT,
      env: {
        ...env,
        TS_NODE_TRANSPILE_ONLY: 'true',
        TS_NODE_PROJECT: path.join(ROOT, 'tsconfig.json'),
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  return new ChildHandle(name, child, logFile);
}

/**
 * One replica (a relay, a service A or B process) kept running the way an orchestrator keeps a
 * pod running: started and awaited until ready, restarted when it dies on its own (counted: an
 * unexpected exit is a finding), and left down when the fault injector killed it on purpose until
 * it is started again.
 */
export class Supervised {
  handle: ChildHandle | undefined;
  starts = 0;
  unexpectedExits = 0;
  /** Every incarnation so far, the current one last (their last events stay readable). */
  readonly incarnations: ChildHandle[] = [];
  private state: 'starting' | 'running' | 'down' | 'stopped' = 'down';

  constructor(
    readonly name: string,
    private readonly spawnOne: (incarnation: number) => ChildHandle,
    private readonly ready: (handle: ChildHandle) => Promise<void>,
    private readonly log: (line: string) => void,
  ) {}

  get running(): boolean {
    return this.state === 'running';
  }

  /**
   * Starts a new incarnation and resolves once it is ready. One that dies (or hangs) before it is
   * ready is replaced, a second apart, for at most `timeoutMs` (the database may be restarting).
   */
  async start(timeoutMs = 120_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    this.state = 'starting';
    for (;;) {
      const handle = this.spawnOne(this.incarnations.length + 1);
      this.handle = handle;
      this.incarnations.push(handle);
      this.starts++;
      void handle.exited.then((exit) => this.onExit(handle, exit));
      try {
        await this.ready(handle);
        if ((this.state as string) === 'stopped') return;
        this.state = 'running';
        return;
      } catch (error) {
        await handle.kill('SIGKILL');
        if ((this.state as string) === 'stopped') return;
        if (Date.now() >= until) throw error;
        this.log(
          `${this.name}: not ready, starting another: ${String(error instanceof Error ? error.message : error).split('\n')[0]}`,
        );
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
  }

  /** kill -9; stays down until start(). */
  async kill(): Promise<void> {
    this.state = 'down';
    await this.handle?.kill('SIGKILL');
  }

  /** Stops for good: `graceful` (a command, SIGTERM, ...) within `timeoutMs`, else kill -9. */
  async stop(graceful: (handle: ChildHandle) => void, timeoutMs: number): Promise<void> {
    this.state = 'stopped';
    const handle = this.handle;
    if (!handle?.alive) return;
    graceful(handle);
    const timer = setTimeout(() => void handle.kill('SIGKILL'), timeoutMs);
    await handle.exited;
    clearTimeout(timer);
  }

  private onExit(handle: ChildHandle, exit: ExitInfo): void {
    if (handle !== this.handle || this.state !== 'running') return;
    this.unexpectedExits++;
    this.log(
      `${this.name} exited on its own (code ${exit.code}, signal ${exit.signal}); restarting it:\n${handle.recentOutput()}`,
    );
    this.start().catch((error: unknown) =>
      this.log(`${this.name}: could not be restarted: ${String(error)}`),
    );
  }
}
