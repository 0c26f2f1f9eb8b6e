import { ConsoleLogger, type LoggerService } from '@nestjs/common';

const KEPT_LINES = 200;

/**
 * The workers' Nest logger. A killed worker logs its lost connections at length; that is the
 * harness working, not news, so lines are kept (the last 200 of the run) for the failure report
 * rather than printed. With `print`, they are printed as well.
 */
export class HarnessLog implements LoggerService {
  private lines: string[] = [];
  private readonly console = new ConsoleLogger();

  constructor(private readonly print: boolean) {}

  /** Starts a new run's log. */
  reset(): void {
    this.lines = [];
  }

  /** A line of the harness's own, between the workers' (`--- worker 1 killed: ... ---`). */
  mark(text: string): void {
    this.push(`--- ${text} ---`);
  }

  /** The run's last lines, oldest first. */
  tail(count: number): string[] {
    return this.lines.slice(-count);
  }

  log(message: unknown, ...rest: unknown[]): void {
    this.keep('log', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.keep('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.keep('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.keep('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.keep('verbose', message, rest);
  }

  private keep(
    level: 'log' | 'error' | 'warn' | 'debug' | 'verbose',
    message: unknown,
    rest: unknown[],
  ): void {
    if (this.print) this.console[level](message, ...rest);
    const last = rest.at(-1);
    const context = typeof last === 'string' ? last : '';
    // Nest's module-loading lines say nothing about the saga: Sage's lines and every warning do.
    if (!context.startsWith('Sage') && (level === 'log' || level === 'verbose')) return;
    this.push(`${level.toUpperCase()} ${context ? `[${context}] ` : ''}${text(message)}`);
  }

  private push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > KEPT_LINES) this.lines.splice(0, this.lines.length - KEPT_LINES);
  }
}

function text(message: unknown): string {
  if (typeof message === 'string') return message;
  if (message instanceof Error) return `${message.name}: ${message.message}`;
  // SageLogLine and other structured lines print as their one-line form.
  const line = message as { toString?: () => string } | null;
  if (line && typeof line.toString === 'function' && line.toString !== Object.prototype.toString)
    return line.toString();
  try {
    return JSON.stringify(message);
  } catch {
    return String(message);
  }
}
