import type { Clock } from '../core/ports/clock';
import { describeInboxStoreConformance } from './inbox-store-conformance';
import { InMemoryInboxStore } from './in-memory-inbox-store';
import type { InMemoryTx } from './in-memory-saga-store';

// The in-memory inbox is what the InboxProcessor's unit tests run on: it must keep the PostgreSQL
// store's contract. A handler's write is an effect applied when its transaction commits.
describeInboxStoreConformance<InMemoryTx>('in-memory', {
  create: () => {
    let now = Date.parse('2030-01-01T00:00:00.000Z');
    const clock: Clock = { now: () => now, sleep: () => Promise.resolve() };
    const written: string[] = [];
    return Promise.resolve({
      store: new InMemoryInboxStore(clock),
      write: (tx, note) => {
        tx.onCommit(() => written.push(note));
        return Promise.resolve();
      },
      committedWrites: () => Promise.resolve([...written]),
      clock: { now: () => now, advance: (ms) => void (now += ms) },
    });
  },
});
