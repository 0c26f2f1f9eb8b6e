import type { InboxRetention } from '../../core/inbox/inbox-retention';
import type { OutboxRetention } from '../../core/outbox/outbox-retention';
import type { SagaRetention } from '../../core/saga/saga-retention';
import type { RetentionRowsTotal } from './sage-metrics';

/**
 * The `retention_rows_total` series of this process's retention loops (absent loops give none):
 * what each removed since start, named for the rows, with `archived` for sent messages moved to the
 * outbox archive.
 */
export function retentionRowsTotals(loops: {
  sagas?: SagaRetention;
  outbox?: OutboxRetention;
  inbox?: InboxRetention;
}): RetentionRowsTotal[] {
  const rows: RetentionRowsTotal[] = [];
  const { sagas, outbox, inbox } = loops;
  if (sagas) rows.push({ what: 'sagas', action: 'deleted', total: sagas.deletedTotal });
  if (outbox) {
    const swept = outbox.sweptTotal;
    rows.push({
      what: 'outbox_sent',
      action: outbox.archiving ? 'archived' : 'deleted',
      total: outbox.deletedTotal,
    });
    if (swept.deadLetters !== undefined)
      rows.push({ what: 'outbox_dead_letters', action: 'deleted', total: swept.deadLetters });
    if (swept.archivePurged !== undefined)
      rows.push({ what: 'outbox_archive', action: 'deleted', total: swept.archivePurged });
  }
  if (inbox) {
    rows.push({ what: 'inbox_processed', action: 'deleted', total: inbox.deletedTotal });
    if (inbox.sweptTotal.deadLetters !== undefined)
      rows.push({
        what: 'inbox_dead_letters',
        action: 'deleted',
        total: inbox.sweptTotal.deadLetters,
      });
  }
  return rows;
}
