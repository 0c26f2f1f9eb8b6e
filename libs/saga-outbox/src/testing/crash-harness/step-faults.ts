import { InvalidOptionsError } from '../../core/errors';
import type { StepPhase } from '../../core/ports/saga-store';

/**
 * A fault the crash harness injects into a step (or its compensation): build one with `StepFault`,
 * e.g. `StepFault.throwOnce('reserve-stock')` or `StepFault.timeout('charge-card')`.
 */
export interface StepFault {
  readonly step: string;
  /** The step's forward action (default) or its compensation. */
  readonly phase: StepPhase;
  /**
   * `throw`: the attempt fails with `error` (at its start or its end, see `at`). `timeout`: the attempt outlasts the
   * step's `timeoutMs` (a local step's `ctx.signal` aborts and the attempt fails with
   * StepTimeoutError; a remote step's command gets no reply).
   */
  readonly kind: 'throw' | 'timeout';
  /**
   * Where in the attempt a `throw` strikes: at its `start` (the step's code does not run: a refusal,
   * e.g. "out of stock") or at its `end` (the code ran, then the attempt failed: its writes through
   * `ctx.manager` roll back, effects made elsewhere stay: what a retry must not repeat).
   */
  readonly at: 'start' | 'end';
  /** The attempts (1-based) that fail, or `'every'` attempt: the phase then fails for good. */
  readonly attempts: readonly number[] | 'every';
  /**
   * What a `throw` fault throws; default a StepFaultInjectedError. Whether the attempt is retried is
   * the step's retry policy's call (`retry.retryable`), as for any error the step throws.
   */
  readonly error?: (attempt: number) => unknown;
  /** How the fault reads in reports, e.g. `"reserve-stock" throws on attempt 1`. */
  readonly description: string;
}

/** Which attempt(s) a fault strikes, and where. */
export interface StepFaultOptions {
  /** Default 1 (`throwOnce`, `timeout`). */
  attempt?: number;
  /** The step's forward action (default) or its compensation. */
  phase?: StepPhase;
  /** Where a thrown fault strikes (see StepFault.at). Default: `end` (throwOnce), `start` (failForGood). */
  at?: 'start' | 'end';
}

/** The error a `throw` fault throws when given none. */
export class StepFaultInjectedError extends Error {
  constructor(
    readonly step: string,
    readonly phase: StepPhase,
    readonly attempt: number,
  ) {
    super(
      `fault injected by the crash harness into ${phase === 'forward' ? '' : 'the compensation of '}step "${step}", attempt ${attempt}`,
    );
    this.name = 'StepFaultInjectedError';
  }
}

/** Named constructors of the faults the crash harness injects. */
export const StepFault = {
  /**
   * The step throws on one attempt (default the first; at its end unless `at: 'start'`), then runs
   * normally: with the default
   * retry policy it is retried and the saga goes on; with `error` your `retry.retryable` rejects,
   * it fails at once and the saga compensates.
   */
  throwOnce(step: string, options: StepFaultOptions & { error?: unknown } = {}): StepFault {
    const attempt = attemptOption(step, options.attempt);
    const phase = phaseOption(step, options.phase);
    const at = atOption(options.at, 'end');
    return fault(step, phase, 'throw', at, [attempt], errorFactory(options.error), {
      what: `throws${options.error === undefined ? '' : ` ${errorName(options.error)}`}`,
      when: `on attempt ${attempt}`,
    });
  },
  /**
   * The step throws on every attempt (at its start unless `at: 'end'`: its code does not run, as
   * when a step refuses, e.g. out of stock): it fails for good once its retry policy gives up (before a
   * pivot the saga then compensates; a compensation failing for good parks the saga as `failed`).
   */
  failForGood(
    step: string,
    options: Omit<StepFaultOptions, 'attempt'> & { error?: unknown } = {},
  ): StepFault {
    const phase = phaseOption(step, options.phase);
    const at = atOption(options.at, 'start');
    return fault(step, phase, 'throw', at, 'every', errorFactory(options.error), {
      what: 'fails for good',
      when: '',
    });
  },
  /**
   * The attempt (default the first) outlasts the step's `timeoutMs`: a local step's code runs with
   * `ctx.signal` aborted and the attempt fails with StepTimeoutError; a remote step's command (or
   * its compensation's) gets no reply within `timeoutMs`, so it is sent again.
   */
  timeout(step: string, options: StepFaultOptions = {}): StepFault {
    const attempt = attemptOption(step, options.attempt);
    const phase = phaseOption(step, options.phase);
    return fault(step, phase, 'timeout', 'start', [attempt], undefined, {
      what: 'times out',
      when: `on attempt ${attempt}`,
    });
  },
} as const;

/** Whether `f` strikes this attempt. */
export function faultStrikes(
  f: StepFault,
  at: { step: string; phase: StepPhase; attempt: number },
): boolean {
  if (f.step !== at.step || f.phase !== at.phase) return false;
  return f.attempts === 'every' || f.attempts.includes(at.attempt);
}

/** The fault striking this attempt, if any (the first listed wins). */
export function faultAt(
  faults: readonly StepFault[],
  at: { step: string; phase: StepPhase; attempt: number },
): StepFault | undefined {
  return faults.find((f) => faultStrikes(f, at));
}

/** What a `throw` fault throws on `attempt`. */
export function faultError(f: StepFault, attempt: number): unknown {
  return f.error ? f.error(attempt) : new StepFaultInjectedError(f.step, f.phase, attempt);
}

function fault(
  step: string,
  phase: StepPhase,
  kind: StepFault['kind'],
  at: StepFault['at'],
  attempts: StepFault['attempts'],
  error: StepFault['error'],
  words: { what: string; when: string },
): StepFault {
  const subject = phase === 'forward' ? `"${step}"` : `the compensation of "${step}"`;
  return Object.freeze({
    step,
    phase,
    kind,
    at,
    attempts,
    ...(error ? { error } : {}),
    description: [subject, words.what, words.when].filter(Boolean).join(' '),
  });
}

function errorFactory(error: unknown): ((attempt: number) => unknown) | undefined {
  return error === undefined ? undefined : () => error;
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}

function attemptOption(step: string, attempt: number | undefined): number {
  const value = attempt ?? 1;
  if (!Number.isInteger(value) || value < 1)
    throw new InvalidOptionsError(
      'StepFault attempt',
      `must be an integer >= 1 (the attempt of step "${step}" that fails), got ${String(attempt)}`,
    );
  return value;
}

function atOption(at: 'start' | 'end' | undefined, fallback: 'start' | 'end'): 'start' | 'end' {
  const value = at ?? fallback;
  if (value !== 'start' && value !== 'end')
    throw new InvalidOptionsError(
      'StepFault at',
      `must be "start" or "end", got ${JSON.stringify(at)}`,
    );
  return value;
}

function phaseOption(step: string, phase: StepPhase | undefined): StepPhase {
  if (typeof step !== 'string' || step === '')
    throw new InvalidOptionsError('StepFault step', 'must be the name of a step of the saga');
  const value = phase ?? 'forward';
  if (value !== 'forward' && value !== 'compensate')
    throw new InvalidOptionsError(
      'StepFault phase',
      `must be "forward" or "compensate", got ${JSON.stringify(phase)}`,
    );
  return value;
}
