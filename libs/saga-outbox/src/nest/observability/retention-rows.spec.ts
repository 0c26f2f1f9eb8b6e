import { Registry } from 'prom-client';
import { InboxRetention } from '../../core/inbox/inbox-retention';
import { OutboxRetention } from '../../core/outbox/outbox-retention';
import { SagaRetention } from '../../core/saga/saga-retention';
import { InMemoryInboxStore } from '../../testing/in-memory-inbox-store';
import { InMemoryOutboxStore } from '../../testing/in-memory-outbox-store';
import { retentionRowsTotals } from './retention-rows';
import { SageMetrics } from './sage-metrics';

/** A batch that removes `n` rows once, then none. */
const once = (n: number) => {
  let left = n;
  return (_olderThanMs: number, limit: number): Promise<number> => {
    const removed = Math.min(left, limit);
    left -= removed;
    return Promise.resolve(removed);
  };
};

describe('retention_rows_total', () => {
  it('reports what each retention loop removed, archived sent rows as archived', async () => {
    const sagas = new SagaRetention({ store: { deleteTerminalSagaBatch: once(3) } });
    const outboxStore = Object.assign(new InMemoryOutboxStore(), {
      archiveSentBatch: once(5),
      purgeArchiveBatch: once(2),
      deleteExpiredDeadLetterBatch: once(1),
    });
    const outbox = new OutboxRetention({
      store: outboxStore,
      archive: { keepMs: 1000 },
      deadLetterTtlMs: 1000,
    });
    const inbox = new InboxRetention({ store: new InMemoryInboxStore() });
    for (const loop of [sagas, outbox, inbox]) await loop.runOnce();

    const registry = new Registry();
    const metrics = new SageMetrics({ registry });
    metrics.setSources({ retention: () => retentionRowsTotals({ sagas, outbox, inbox }) });
    const values = (await registry.getSingleMetric('retention_rows_total')!.get()).values;
    expect(values).toEqual([
      { labels: { what: 'sagas', action: 'deleted' }, value: 3 },
      { labels: { what: 'outbox_sent', action: 'archived' }, value: 5 },
      { labels: { what: 'outbox_dead_letters', action: 'deleted' }, value: 1 },
      { labels: { what: 'outbox_archive', action: 'deleted' }, value: 2 },
      { labels: { what: 'inbox_processed', action: 'deleted' }, value: 0 },
    ]);
    // Scraped again: the same totals, not added twice.
    const again = (await registry.getSingleMetric('retention_rows_total')!.get()).values;
    expect(again).toEqual(values);
    metrics.dispose();
  });
});
