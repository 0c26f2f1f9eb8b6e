/**
 * The relay round's end check: the messages read back from the broker, in delivery order, against
 * the order they were committed in. Each message carries its commit position (`seq`: the outbox
 * rows were inserted in ascending seq order, so per key ascending seq is commit order); a
 * message of a key delivered after one with a higher seq overtook it.
 */
export interface Delivery {
  id: string;
  key: string;
  seq: number;
}

export interface OrderCheck {
  delivered: number;
  distinct: number;
  /** Deliveries of an id seen before (at-least-once redeliveries). */
  duplicates: number;
  /** Keys whose first deliveries were not in ascending seq order. */
  keysOutOfOrder: number;
  /** First deliveries whose seq was below the previous one of the same key. */
  orderViolations: number;
  keys: number;
}

export function checkPerKeyOrder(deliveries: readonly Delivery[]): OrderCheck {
  const seen = new Set<string>();
  const lastSeq = new Map<string, number>();
  const badKeys = new Set<string>();
  let duplicates = 0;
  let orderViolations = 0;
  for (const d of deliveries) {
    if (seen.has(d.id)) {
      duplicates++;
      continue;
    }
    seen.add(d.id);
    const last = lastSeq.get(d.key);
    if (last !== undefined && d.seq < last) {
      orderViolations++;
      badKeys.add(d.key);
    } else lastSeq.set(d.key, d.seq);
  }
  return {
    delivered: deliveries.length,
    distinct: seen.size,
    duplicates,
    keysOutOfOrder: badKeys.size,
    orderViolations,
    keys: lastSeq.size,
  };
}
