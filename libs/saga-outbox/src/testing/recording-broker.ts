import type { BrokerMessage } from '../core/ports/broker';

/** What a set of published messages says about delivery guarantees (exactly-once, per-key order). */
export interface PublicationAnalysis {
  /** Distinct message ids published. */
  distinct: number;
  /** Publications beyond the first, summed over ids. */
  duplicates: number;
  /** Expected ids never published. */
  missing: string[];
  /**
   * Keys whose first publications are out of the expected order (first occurrence of each id,
   * compared with the expected per-key order).
   */
  orderViolations: { key: string; expected: string[]; actual: string[] }[];
}

/**
 * Analyses publications (e.g. `InMemoryBroker.published`) against the expected messages, given in
 * the order they must be published per key. Order is judged on first publications only: a
 * duplicate redelivered late (at-least-once) is counted as a duplicate, not as a reordering.
 */
export function analysePublications(
  published: readonly Pick<BrokerMessage, 'id' | 'key'>[],
  expected: readonly { id: string; key: string | null }[],
): PublicationAnalysis {
  const counts = new Map<string, number>();
  const firstOrderByKey = new Map<string, string[]>();
  for (const m of published) {
    const n = (counts.get(m.id) ?? 0) + 1;
    counts.set(m.id, n);
    if (n === 1 && m.key !== null) {
      const list = firstOrderByKey.get(m.key) ?? [];
      list.push(m.id);
      firstOrderByKey.set(m.key, list);
    }
  }
  const expectedByKey = new Map<string, string[]>();
  for (const m of expected) {
    if (m.key === null) continue;
    const list = expectedByKey.get(m.key) ?? [];
    list.push(m.id);
    expectedByKey.set(m.key, list);
  }
  const orderViolations: PublicationAnalysis['orderViolations'] = [];
  for (const [key, ids] of expectedByKey) {
    const expectedSet = new Set(ids);
    const actual = (firstOrderByKey.get(key) ?? []).filter((id) => expectedSet.has(id));
    const expectedPresent = ids.filter((id) => counts.has(id));
    if (actual.join() !== expectedPresent.join())
      orderViolations.push({ key, expected: expectedPresent, actual });
  }
  let duplicates = 0;
  for (const n of counts.values()) duplicates += n - 1;
  return {
    distinct: counts.size,
    duplicates,
    missing: expected.filter((m) => !counts.has(m.id)).map((m) => m.id),
    orderViolations,
  };
}
