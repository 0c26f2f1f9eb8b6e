import fc from 'fast-check';
import { InvalidOptionsError } from '../errors';
import {
  backoffDelay,
  DEFAULT_COMPENSATION_RETRY,
  DEFAULT_STEP_RETRY,
  isRetryable,
  resolveRetryPolicy,
  type RetryPolicy,
} from './retry-policy';

const policy = (p: Partial<RetryPolicy> = {}): RetryPolicy =>
  resolveRetryPolicy(p, DEFAULT_STEP_RETRY, 'test');

describe('resolveRetryPolicy', () => {
  it('merges over the defaults, ignoring explicit undefined, and freezes the result', () => {
    const p = resolveRetryPolicy(
      { maxAttempts: 5, initialDelayMs: undefined },
      DEFAULT_STEP_RETRY,
      'w',
    );
    expect(p).toEqual({ ...DEFAULT_STEP_RETRY, maxAttempts: 5 });
    expect(Object.isFrozen(p)).toBe(true);
    expect(resolveRetryPolicy(undefined, DEFAULT_COMPENSATION_RETRY, 'w')).toEqual(
      DEFAULT_COMPENSATION_RETRY,
    );
  });

  it.each([
    ['maxAttempts', 0],
    ['maxAttempts', -1],
    ['maxAttempts', 1.5],
    ['maxAttempts', Number.NaN],
    ['maxAttempts', Number.POSITIVE_INFINITY],
    ['initialDelayMs', -1],
    ['initialDelayMs', Number.NaN],
    ['initialDelayMs', Number.POSITIVE_INFINITY],
    ['maxDelayMs', -5],
    ['multiplier', 0.5],
    ['multiplier', Number.NaN],
    ['retryable', 'yes'],
  ])('rejects %s = %p with InvalidOptionsError naming the option', (key, value) => {
    let caught: unknown;
    try {
      resolveRetryPolicy({ [key]: value } as never, DEFAULT_STEP_RETRY, 'saga "s" step "x" retry');
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(InvalidOptionsError);
    expect((caught as InvalidOptionsError).option).toBe(`saga "s" step "x" retry.${key}`);
  });

  it('accepts the edges: one attempt, zero delays, multiplier 1', () => {
    expect(
      policy({ maxAttempts: 1, initialDelayMs: 0, maxDelayMs: 0, multiplier: 1 }).maxAttempts,
    ).toBe(1);
  });
});

describe('backoffDelay (full jitter)', () => {
  it('draws uniformly from [0, min(cap, initial * multiplier^(attempt-1))]', () => {
    const p = policy({ initialDelayMs: 100, multiplier: 2, maxDelayMs: 1_000 });
    // random() -> 0 gives 0; random() -> just below 1 gives just below the ceiling.
    const top = (): number => 1 - Number.EPSILON;
    expect(backoffDelay(p, 1, () => 0)).toBe(0);
    expect(backoffDelay(p, 1, top)).toBe(99);
    expect(backoffDelay(p, 2, top)).toBe(199);
    expect(backoffDelay(p, 3, top)).toBe(399);
    expect(backoffDelay(p, 4, top)).toBe(799);
    expect(backoffDelay(p, 5, top)).toBe(999); // capped
    expect(backoffDelay(p, 60, top)).toBe(999); // no overflow past the cap
    expect(backoffDelay(p, 3, () => 0.5)).toBe(200);
  });

  it('is 0 with initialDelayMs 0 whatever the attempt (never NaN, even when the growth overflows)', () => {
    const p = policy({ initialDelayMs: 0 });
    expect(backoffDelay(p, 1, () => 0.999)).toBe(0);
    expect(backoffDelay(p, 30, () => 0.999)).toBe(0);
    // 2^1100 is Infinity, and 0 * Infinity is NaN: a long after-pivot retry run must not sleep NaN.
    expect(backoffDelay(p, 1_100, () => 0.5)).toBe(0);
    expect(backoffDelay(policy({ initialDelayMs: 1, maxDelayMs: 50 }), 1_100, () => 0.5)).toBe(25);
  });

  it('stays within bounds for any policy, attempt and random draw (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.double({ min: 1, max: 10, noNaN: true }),
        fc.integer({ min: 1, max: 2_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (initialDelayMs, maxDelayMs, multiplier, attempt, r) => {
          const p = policy({ initialDelayMs, maxDelayMs, multiplier });
          const d = backoffDelay(p, attempt, () => r);
          const ceiling =
            initialDelayMs === 0
              ? 0
              : Math.min(maxDelayMs, initialDelayMs * multiplier ** (attempt - 1));
          expect(Number.isInteger(d)).toBe(true);
          expect(d).toBeGreaterThanOrEqual(0);
          expect(d).toBeLessThanOrEqual(ceiling);
          expect(d).toBeLessThanOrEqual(maxDelayMs);
        },
      ),
      { numRuns: 500, seed: 20240601 },
    );
  });
});

describe('isRetryable', () => {
  it('retries everything without a predicate', () => {
    expect(isRetryable(policy(), new Error('x'))).toBe(true);
    expect(isRetryable(policy(), 'not even an error')).toBe(true);
  });

  it('asks the predicate, and treats a throwing predicate as "do not retry"', () => {
    class Fatal extends Error {}
    const p = policy({ retryable: (e) => !(e instanceof Fatal) });
    expect(isRetryable(p, new Error('transient'))).toBe(true);
    expect(isRetryable(p, new Fatal('no'))).toBe(false);
    const throwing = policy({
      retryable: () => {
        throw new Error('predicate bug');
      },
    });
    expect(isRetryable(throwing, new Error('x'))).toBe(false);
  });
});
