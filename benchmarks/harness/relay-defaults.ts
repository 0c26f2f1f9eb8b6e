/**
 * OutboxRelay's defaults, spelled out because the raw side of every outbox scenario must use the
 * same (claim size, publish window, lease, polling interval).
 */
export const BATCH_SIZE = 500;
export const PUBLISH_BATCH_SIZE = 100;
export const MAX_IN_FLIGHT = 8;
export const LEASE_MS = 30_000;
export const POLL_INTERVAL_MS = 1000;
/** publish() calls a relay has in flight at most: a claim of 500 is 5 calls of 100. */
export const CALLS_IN_FLIGHT = Math.min(MAX_IN_FLIGHT, Math.ceil(BATCH_SIZE / PUBLISH_BATCH_SIZE));
