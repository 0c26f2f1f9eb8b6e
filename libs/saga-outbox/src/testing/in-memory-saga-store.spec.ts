import { InMemorySagaStore, InMemoryTx } from './in-memory-saga-store';
import { describeSagaStoreConformance } from './saga-store-conformance';

// The in-memory store is what unit tests of the engine run on: it must keep the same contract.
describeSagaStoreConformance('in-memory', () =>
  Promise.resolve({
    store: new InMemorySagaStore(),
    // A caller-owned transaction: its effects apply only if `fn` resolves.
    newTx: async <T>(fn: (tx: InMemoryTx) => Promise<T>): Promise<T> => {
      const tx = new InMemoryTx();
      const value = await fn(tx);
      tx.commit();
      return value;
    },
    cleanup: () => Promise.resolve(),
  }),
);
