import type { CliIo } from './io';
import type { SageConnection } from './connection';
import { UsageError } from './cli-errors';

export interface OptionSpec {
  type: 'string' | 'boolean';
  /** Placeholder in usage lines, e.g. `S` for `--status S`. */
  value?: string;
  description: string;
  /** May be given more than once (values collected in order). */
  multiple?: boolean;
}

export type OptionValues = Record<string, string | boolean | string[] | undefined>;

export interface CommandContext {
  /** Positionals after the command words. */
  readonly args: readonly string[];
  readonly options: OptionValues;
  readonly json: boolean;
  readonly io: CliIo;
  /** Opens the database connection on first use (closed by the runner). */
  db(): Promise<SageConnection>;
}

export interface CommandSpec {
  /** Command words, e.g. ['outbox', 'dead-letters', 'replay']. */
  readonly path: readonly string[];
  readonly summary: string;
  /** Positional arguments as shown in usage, e.g. `<id>` or `[<id>...]`. */
  readonly arguments?: string;
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Extra help text: what it does, examples. */
  readonly details: string;
  /** Exit code (0 when omitted). */
  run(ctx: CommandContext): Promise<number | void>;
}

// --- option readers: every bad value is a UsageError naming the option -------------------------

export function stringOption(ctx: CommandContext, name: string): string | undefined {
  const value = ctx.options[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim() === '')
    throw new UsageError(`--${name} needs a non-empty value`);
  return value.trim();
}

export function intOption(
  ctx: CommandContext,
  name: string,
  fallback: number,
  range: { min: number; max: number },
): number {
  const raw = stringOption(ctx, name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < range.min || n > range.max)
    throw new UsageError(
      `--${name} must be an integer between ${range.min} and ${range.max}, got "${raw}"`,
    );
  return n;
}

export function dateOption(ctx: CommandContext, name: string): Date | undefined {
  const raw = stringOption(ctx, name);
  if (raw === undefined) return undefined;
  const date = new Date(raw);
  if (Number.isNaN(date.getTime()))
    throw new UsageError(
      `--${name} must be an ISO 8601 date or timestamp (e.g. 2026-11-27T09:00:00Z), got "${raw}"`,
    );
  return date;
}

export function choiceOption<T extends string>(
  ctx: CommandContext,
  name: string,
  choices: readonly T[],
): T | undefined {
  const raw = stringOption(ctx, name);
  if (raw === undefined) return undefined;
  if (!(choices as readonly string[]).includes(raw))
    throw new UsageError(`--${name} must be one of ${choices.join(', ')}; got "${raw}"`);
  return raw as T;
}

export function flag(ctx: CommandContext, name: string): boolean {
  return ctx.options[name] === true;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Sage's ids (saga and outbox message) are UUIDs: anything else is a typo, not "not found". */
export function uuidArgument(value: string, what: string): string {
  if (!UUID.test(value)) throw new UsageError(`${what} must be a UUID, got "${value}"`);
  return value.toLowerCase();
}

/** Exactly `count` positionals, named for the message. */
export function expectArgs(ctx: CommandContext, names: readonly string[]): string[] {
  if (ctx.args.length !== names.length)
    throw new UsageError(
      ctx.args.length < names.length
        ? `missing ${names.slice(ctx.args.length).join(' ')}`
        : `unexpected argument "${ctx.args[names.length]}"`,
    );
  return [...ctx.args];
}
