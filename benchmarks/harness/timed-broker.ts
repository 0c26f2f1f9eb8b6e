import { performance } from 'node:perf_hooks';
import type { Broker } from '@sage/saga-outbox';

/**
 * The shared Sage adapter seen through a wrapper that stamps the instant the broker acknowledged
 * each message (its `publish()` resolved with `ok: true`, `performance.now()`): commit → broker-ack
 * as the publishing side sees it, before the rows are marked sent. Everything else passes through;
 * `close()` does nothing, so one warm adapter serves every slice of a point.
 */
export function stampedBroker(inner: Broker, onAcked: (id: string, at: number) => void): Broker {
  return {
    name: inner.name,
    publish: async (batch, signal) => {
      const results = await inner.publish(batch, signal);
      const at = performance.now();
      for (const r of results) if (r.ok) onAcked(r.id, at);
      return results;
    },
    subscribe: (destination, handler, options) => inner.subscribe(destination, handler, options),
    health: () => inner.health(),
    close: () => Promise.resolve(),
  };
}
