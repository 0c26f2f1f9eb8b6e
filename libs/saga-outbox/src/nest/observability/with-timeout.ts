import { SagaOutboxError } from '../../core/errors';

/** A probe (health check, scrape-time query) did not answer within its bound. */
export class ProbeTimeoutError extends SagaOutboxError {
  constructor(
    readonly probe: string,
    readonly timeoutMs: number,
  ) {
    super(
      'PROBE_TIMEOUT',
      `${probe} did not answer within ${timeoutMs} ms; the dependency is down or overloaded (raise the timeout only if it is merely slow)`,
    );
  }
}

/**
 * `work()` bounded by `timeoutMs`: rejects with ProbeTimeoutError once the bound passes. The timer
 * is cleared as soon as either side settles, so a fast probe leaves nothing behind. The work itself
 * is not cancelled (a query keeps its pooled connection until the server answers).
 */
export async function withTimeout<T>(
  probe: string,
  timeoutMs: number,
  work: () => Promise<T>,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ProbeTimeoutError(probe, timeoutMs)), timeoutMs);
  });
  try {
    return await Promise.race([work(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
