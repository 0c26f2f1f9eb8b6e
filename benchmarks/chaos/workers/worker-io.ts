/**
 * How a chaos worker process talks to the controller (benchmarks/chaos/run.ts): its configuration
 * as one JSON argument, events as JSON lines on stdout, commands as lines on stdin, and every log
 * line (Nest's and Sage's) on stderr, which the controller appends to the worker's log file.
 */
import { createInterface } from 'node:readline';
import type { LoggerService } from '@nestjs/common';

/** One JSON line on stdout: `{"event": ..., ...}`. */
export function emit(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ event, at: Date.now(), ...fields })}\n`);
}

/** The worker's configuration: the JSON in argv[2]. */
export function workerConfig<T>(): T {
  const raw = process.argv[2];
  if (!raw) throw new Error('usage: <worker>.ts <config JSON>');
  return JSON.parse(raw) as T;
}

/** Calls `handler` with each command line the controller writes to stdin (`stop`, `exit`, ...). */
export function onCommand(handler: (command: string) => void): void {
  createInterface({ input: process.stdin }).on('line', (line) => {
    const command = line.trim();
    if (command) handler(command);
  });
}

/** Nest's logger, on stderr (stdout carries the JSON events): warnings and errors only. */
export class StderrLogger implements LoggerService {
  constructor(private readonly name: string) {}

  log(): void {}

  warn(message: unknown, ...rest: unknown[]): void {
    this.write('warn', message, rest);
  }

  error(message: unknown, ...rest: unknown[]): void {
    this.write('error', message, rest);
  }

  private write(level: string, message: unknown, rest: unknown[]): void {
    const text = typeof message === 'string' ? message : JSON.stringify(message);
    const context = rest
      .filter((r) => r !== undefined)
      .map((r) => (typeof r === 'string' ? r : JSON.stringify(r)));
    process.stderr.write(
      `${new Date().toISOString()} ${level} [${this.name}] ${text}${context.length ? ` ${context.join(' ')}` : ''}\n`,
    );
  }
}

/** Runs `main`; a failure → its stack on stderr, a `crashed` event, exit code 1. */
export function runWorker(main: () => Promise<void>): void {
  main().catch((error: unknown) => {
    process.stderr.write(`${String(error instanceof Error ? error.stack : error)}\n`);
    emit('crashed', { error: error instanceof Error ? error.message : String(error) });
    process.exit(1);
  });
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));
