import type { OrderServiceConfig } from '../order-service.module';

/** Lease of the demo's workers: short, so worker B takes over a killed worker's saga quickly. */
export const DEMO_WORKER_LEASE_MS = 1500;

/** What both demo workers (demo.ts's B and crash-worker.ts's A) configure alike. */
export const DEMO_ORDER_SERVICE: Pick<OrderServiceConfig, 'payment' | 'outbox'> = {
  payment: { replyTimeoutMs: 10_000, maxAttempts: 3 },
  // PGlite's socket does not carry NOTIFY: the relay polls.
  outbox: { relay: { pollIntervalMs: 25 } },
};
