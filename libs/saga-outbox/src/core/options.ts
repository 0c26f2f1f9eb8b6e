import { InvalidOptionsError } from './errors';
import { STORABLE_TEXT_FIX, storableTextProblem } from './text-checks';

/**
 * The option checks Sage repeats at its boundaries (module options, decorator metadata), once.
 * Each throws InvalidOptionsError naming the option and what it got; `undefined` passes the
 * `optional…` checks (the default applies).
 */

/**
 * Where a checked value comes from, as the error names it: an option path (`postgres.poolSize`),
 * or an option and the field in it (`{ option: '@IdempotentHandler', field: 'A.b: maxAttempts' }`,
 * read "A.b: maxAttempts must be …").
 */
export type OptionPath = string | { readonly option: string; readonly field: string };

export function invalidOption(at: OptionPath, problem: string): InvalidOptionsError {
  return typeof at === 'string'
    ? new InvalidOptionsError(at, problem)
    : new InvalidOptionsError(at.option, `${at.field} ${problem}`);
}

/** Undefined, or an integer from 1 (to `max`, when given). */
export function optionalPositiveInteger(at: OptionPath, value: unknown, max?: number): void {
  if (value === undefined) return;
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < 1 ||
    (max !== undefined && value > max)
  )
    throw invalidOption(
      at,
      `must be an integer >= 1${max === undefined ? '' : ` and <= ${max}`}, got ${shown(value)}`,
    );
}

/** Undefined, or a finite number above 0. */
export function optionalPositiveNumber(at: OptionPath, value: unknown): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
    throw invalidOption(at, `must be a positive number, got ${shown(value)}`);
}

export interface NameLimits {
  /** Longest accepted name. */
  maxLength?: number;
}

/**
 * A name (destination, consumer, type…): a string that is not blank, within `limits`, and that
 * PostgreSQL can store as given (no NUL, no unpaired UTF-16 surrogate: see core/text-checks.ts).
 */
export function requiredName(at: OptionPath, value: unknown, limits: NameLimits = {}): string {
  const { maxLength } = limits;
  if (
    typeof value !== 'string' ||
    value.trim() === '' ||
    (maxLength !== undefined && value.length > maxLength)
  ) {
    throw invalidOption(
      at,
      `must be a non-empty string${maxLength === undefined ? '' : ` of at most ${maxLength} characters`}, got ${shown(value)}`,
    );
  }
  assertStorableText(at, value);
  return value;
}

/**
 * Text that reaches PostgreSQL (a name, a key): InvalidOptionsError naming the option when it holds
 * what PostgreSQL cannot store as given (NUL, an unpaired UTF-16 surrogate).
 */
export function assertStorableText(at: OptionPath, value: string): string {
  const problem = storableTextProblem(value);
  if (problem) throw invalidOption(at, `${problem}, got ${shown(value)}: ${STORABLE_TEXT_FIX}`);
  return value;
}

/** Undefined, or a name as requiredName checks it. */
export function optionalName(at: OptionPath, value: unknown, limits: NameLimits = {}): void {
  if (value !== undefined) requiredName(at, value, limits);
}

/** `fallback` when `value` is undefined, `value` when it is one of `choices`; else InvalidOptionsError listing them. */
export function choiceOption<T extends string>(
  at: OptionPath,
  value: unknown,
  choices: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (choices.includes(value as T)) return value as T;
  throw invalidOption(
    at,
    `must be one of ${choices.map((c) => JSON.stringify(c)).join(', ')}, got ${shown(value)}`,
  );
}

/** A finite number above 0, returned; InvalidOptionsError otherwise. */
export function positiveNumber(at: OptionPath, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
    throw invalidOption(at, `must be a positive number, got ${shown(value)}`);
  return value;
}

/** A finite number >= 0, returned; InvalidOptionsError otherwise. */
export function nonNegativeNumber(at: OptionPath, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0)
    throw invalidOption(at, `must be a number >= 0, got ${shown(value)}`);
  return value;
}

/** An integer from 1 (to `max`, when given), returned; InvalidOptionsError otherwise. */
export function positiveInteger(at: OptionPath, value: number, max?: number): number {
  optionalPositiveInteger(at, value, max);
  if (value === undefined) throw invalidOption(at, 'is required');
  return value;
}

export interface IntegerOptionRule {
  /** The value when the option is not set. */
  fallback: number;
  min: number;
  max?: number;
  /** Why the bounds are what they are, added to the error message. */
  why?: string;
}

/**
 * An optional integer option: the fallback when it is undefined, the value when it is an integer
 * within the bounds, else InvalidOptionsError naming the option, the bounds and the value.
 */
export function integerOption(
  at: OptionPath,
  value: number | undefined,
  rule: IntegerOptionRule,
): number {
  if (value === undefined) return rule.fallback;
  const { min, max } = rule;
  if (Number.isInteger(value) && value >= min && (max === undefined || value <= max)) return value;
  const bounds = `>= ${min}${max === undefined ? '' : ` and <= ${max}`}`;
  throw invalidOption(
    at,
    `must be an integer ${bounds}${rule.why ? ` (${rule.why})` : ''}, got ${shown(value)}`,
  );
}

/** A rejected value as an error shows it: strings and objects as JSON, anything else as text. */
function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value !== 'object' || value === null) return String(value);
  try {
    return JSON.stringify(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
