/** One failed attempt of a startup step, as `onRetry` and `giveUp` see it. */
export interface StartupAttemptFailure {
  readonly error: unknown;
  /** 1-based number of the attempt that failed. */
  readonly attempt: number;
  /** Attempts in all: the first plus `retries`. */
  readonly attempts: number;
  /** The wait before the next attempt (0 when there is none). */
  readonly delayMs: number;
  /** `isPermanent` said no retry can fix it. */
  readonly permanent: boolean;
}

export interface StartupRetryOptions {
  /** Attempts after the first one fails (the module's `retryAttempts`). */
  retries: number;
  /** Wait between attempts, in ms (the module's `retryDelay`). */
  delayMs: number;
  /** Failures no retry can fix (a wrong password, an unknown database): given up at once. */
  isPermanent?: (error: unknown) => boolean;
  /** After each failed attempt that is retried: one log line. */
  onRetry?: (failure: StartupAttemptFailure) => void;
  /** The error thrown once the attempts are spent or the failure is permanent. */
  giveUp: (failure: StartupAttemptFailure) => Error;
  /** Default: a timer. */
  sleep?: (ms: number) => Promise<void>;
}

const timerSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs a startup step (connecting to PostgreSQL, reaching the broker) up to `retries + 1` times,
 * `delayMs` apart, as `@nestjs/typeorm` does with `retryAttempts` / `retryDelay`: what startup
 * needs should not fail the app because it came up a few seconds later than the app.
 */
export async function retryAtStartup<T>(
  work: (attempt: number) => Promise<T>,
  options: StartupRetryOptions,
): Promise<T> {
  const attempts = options.retries + 1;
  const sleep = options.sleep ?? timerSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await work(attempt);
    } catch (error) {
      const permanent = options.isPermanent?.(error) ?? false;
      const last = permanent || attempt >= attempts;
      const failure = { error, attempt, attempts, delayMs: last ? 0 : options.delayMs, permanent };
      if (last) throw options.giveUp(failure);
      options.onRetry?.(failure);
      await sleep(options.delayMs);
    }
  }
}
