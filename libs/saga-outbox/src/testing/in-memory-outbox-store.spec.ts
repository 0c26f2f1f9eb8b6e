import type { Clock } from '../core/ports/clock';
import { InMemoryOutboxStore } from './in-memory-outbox-store';
import { InMemoryTx } from './in-memory-saga-store';
import { describeOutboxStoreConformance } from './outbox-store-conformance';

// The in-memory outbox is what the relay's and the optimistic sender's unit tests run on: it
// must keep the PostgreSQL store's contract. Its clock is the test's, so leases and backoff take no
// real time.
describeOutboxStoreConformance<InMemoryTx>('in-memory', {
  create: () => {
    let now = Date.parse('2030-01-01T00:00:00.000Z');
    const clock: Clock = { now: () => now, sleep: () => Promise.resolve() };
    const store = new InMemoryOutboxStore(clock);
    return Promise.resolve({
      store,
      writer: store,
      transaction: (body) => store.transaction(body),
      notATransaction: new InMemoryTx(),
      clock: { now: () => now, advance: (ms) => void (now += ms) },
    });
  },
});
