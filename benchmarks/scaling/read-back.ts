import type { Broker } from '@sage/saga-outbox';
import type { Delivery } from './per-key-order';

/**
 * Reads what a relay round published back from the broker through the adapter's own subscribe
 * (a fresh consumer group / durable / the run's queue), recording id, key and the payload's
 * `orderId` at the moment each message is handed over. Stops once `expected` distinct messages
 * arrived and nothing new came for `quietMs`, or after `timeoutMs`.
 */
export async function readBack(
  broker: Broker,
  destination: string,
  expected: number,
  timeoutMs: number,
  quietMs = 500,
): Promise<Delivery[]> {
  const deliveries: Delivery[] = [];
  const ids = new Set<string>();
  let lastAt = Date.now();
  const subscription = await broker.subscribe(destination, (m) => {
    const payload = m.payload as { orderId?: unknown };
    deliveries.push({ id: m.id, key: m.key ?? '', seq: Number(payload.orderId) });
    ids.add(m.id);
    lastAt = Date.now();
    return Promise.resolve();
  });
  const until = Date.now() + timeoutMs;
  try {
    while (Date.now() < until && !(ids.size >= expected && Date.now() - lastAt >= quietMs))
      await new Promise((resolve) => setTimeout(resolve, 100));
  } finally {
    await subscription.unsubscribe();
  }
  return deliveries;
}
