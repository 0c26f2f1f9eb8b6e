/**
 * Exponential back-off without jitter: `firstMs` after the first failure, doubling with each
 * further one, never more than `maxMs`. `attempt` is the 1-based attempt that just failed. The
 * adapters' redelivery and reconnect waits; jitter is left out on purpose, as a wait holds only its
 * own message or loop.
 */
export function exponentialDelay(attempt: number, firstMs: number, maxMs: number): number {
  return Math.min(firstMs * 2 ** Math.max(attempt - 1, 0), maxMs);
}
