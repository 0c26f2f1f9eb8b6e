import { SagaOutboxError } from '../../core/errors';
import { withTimeout as boundedBy } from '../../core/with-timeout';

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
 * `work()` bounded by `timeoutMs`: rejects with ProbeTimeoutError once the bound passes (the timer
 * is cleared as soon as either side settles; the work itself is not cancelled: a query keeps its
 * pooled connection until the server answers).
 */
export function withTimeout<T>(
  probe: string,
  timeoutMs: number,
  work: () => Promise<T>,
): Promise<T> {
  return boundedBy(work(), timeoutMs, () => new ProbeTimeoutError(probe, timeoutMs));
}
