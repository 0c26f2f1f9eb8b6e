import { errorText } from '../error-text';
import type { Broker, BrokerMessage, PublishResult } from '../ports/broker';
import { toBrokerMessage, type ClaimedOutboxMessage } from './outbox-message';
import type { OutboxRetryPolicy } from './outbox-retry';

/** Cap on the backoff while the broker is unreachable: delivery resumes at most this long after it is back. */
export const OUTAGE_MAX_DELAY_MS = 10_000;
/** At most one "broker unreachable" WARN per this interval. */
export const OUTAGE_LOG_INTERVAL_MS = 60_000;

/**
 * One broker call for a relay's chunk (the polling relay and the WAL relay): a result per message,
 * in `part`'s order. A message the broker returned nothing for is a retryable failure; a thrown call
 * fails every message with its reason, `unavailable` when the broker said it is unreachable (its
 * attempts are then not counted).
 */
export async function publishRelayChunk(
  broker: Broker,
  part: readonly ClaimedOutboxMessage[],
  signal: AbortSignal,
): Promise<PublishResult[]> {
  const batch: BrokerMessage[] = part.map(toBrokerMessage);
  try {
    const results = await broker.publish(batch, signal);
    const byId = new Map(results.map((r) => [r.id, r]));
    return part.map(
      (m) =>
        byId.get(m.id) ?? {
          id: m.id,
          ok: false,
          error: `broker "${broker.name}" returned no result for this message`,
          retryable: true,
        },
    );
  } catch (error) {
    const e = error as { code?: unknown; unavailable?: unknown; retryable?: unknown } | null;
    const reason = `broker "${broker.name}" publish failed: ${errorText(error)}`;
    const retryable = e?.retryable !== false;
    const unavailable = e?.code === 'BROKER_UNAVAILABLE' || e?.unavailable === true;
    return part.map((m) => ({ id: m.id, ok: false, error: reason, retryable, unavailable }));
  }
}

/**
 * Backoff while the broker is unreachable: the retry policy's initial delay, growing by its
 * multiplier per batch that found it down (`streak`), capped at OUTAGE_MAX_DELAY_MS so that delivery
 * resumes soon after the broker is back; jittered like any retry.
 */
export function brokerOutageDelayMs(policy: OutboxRetryPolicy, streak: number): number {
  const base = Math.min(
    OUTAGE_MAX_DELAY_MS,
    policy.maxDelayMs,
    policy.initialDelayMs * policy.multiplier ** Math.min(streak, 30),
  );
  return Math.round(base * (1 - policy.jitter * Math.random()));
}
