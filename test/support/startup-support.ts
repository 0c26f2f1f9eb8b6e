/** Helpers for startup tests: a logger that keeps what Nest's Logger was given, a dead port. */
import { createServer } from 'node:net';
import type { LoggerService } from '@nestjs/common';

/** Every line Nest's logger was given, as the text a console would show (Sage's lines render as one). */
export class CapturingLogger implements LoggerService {
  readonly lines: { level: string; text: string }[] = [];
  log = (message: unknown): void => this.push('log', message);
  warn = (message: unknown): void => this.push('warn', message);
  error = (message: unknown, ...rest: unknown[]): void =>
    this.push('error', [message, ...rest].map(String).join(' '));
  debug = (message: unknown): void => this.push('debug', message);
  verbose = (message: unknown): void => this.push('verbose', message);

  warnings(matching?: RegExp): string[] {
    return this.lines
      .filter((l) => l.level === 'warn' && (!matching || matching.test(l.text)))
      .map((l) => l.text);
  }

  /** Everything logged, one line each: for "the password appears nowhere". */
  get all(): string {
    return this.lines.map((l) => l.text).join('\n');
  }

  private push(level: string, message: unknown): void {
    this.lines.push({ level, text: String(message) });
  }
}

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address !== 'object') throw new Error('no port');
  return address.port;
}
