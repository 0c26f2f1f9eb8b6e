import type { ClaimedOutboxMessage } from './outbox-message';
import { WalDeliveryWindow } from './wal-delivery-window';

const msg = (id: string, key: string | null = null): ClaimedOutboxMessage => ({
  id,
  destination: 'd',
  type: 't',
  key,
  payload: null,
  headers: {},
  sagaId: null,
  attempts: 0,
  createdAt: new Date(0),
});
const ids = (ms: ClaimedOutboxMessage[]): string[] => ms.map((m) => m.id);

describe('WalDeliveryWindow', () => {
  it('hands messages out in commit order, one per key at a time', () => {
    const w = new WalDeliveryWindow();
    w.add({ endLsn: 10n, messages: [msg('a1', 'a'), msg('b1', 'b')] });
    w.add({ endLsn: 20n, messages: [msg('a2', 'a'), msg('n1'), msg('b2', 'b')] });
    expect(ids(w.take(10, 0))).toEqual(['a1', 'b1', 'n1']);
    expect(w.take(10, 0)).toEqual([]);
    w.done('a1');
    expect(ids(w.take(10, 0))).toEqual(['a2']);
  });

  it('confirms only past transactions whose every message, and every earlier one, is done', () => {
    const w = new WalDeliveryWindow(5n);
    w.add({ endLsn: 10n, messages: [msg('a1', 'a'), msg('b1', 'b')] });
    w.add({ endLsn: 20n, messages: [msg('c1', 'c')] });
    w.take(10, 0);
    w.done('c1');
    expect(w.confirmableLsn).toBe(5n); // the first transaction is still open
    w.done('a1');
    expect(w.confirmableLsn).toBe(5n);
    w.done('b1');
    expect(w.confirmableLsn).toBe(20n);
    expect(w.size).toBe(0);
  });

  it('holds a retrying message and the rest of its key, not other keys', () => {
    const w = new WalDeliveryWindow();
    w.add({ endLsn: 10n, messages: [msg('a1', 'a'), msg('a2', 'a'), msg('b1', 'b')] });
    expect(ids(w.take(10, 0))).toEqual(['a1', 'b1']);
    w.retryAt('a1', 100);
    w.done('b1');
    expect(w.take(10, 50)).toEqual([]);
    expect(w.nextDueAt()).toBe(100);
    expect(ids(w.take(10, 100))).toEqual(['a1']);
    w.done('a1');
    expect(ids(w.take(10, 100))).toEqual(['a2']);
  });

  it('confirms empty transactions and, when idle, the keepalive position', () => {
    const w = new WalDeliveryWindow();
    w.add({ endLsn: 10n, messages: [] });
    expect(w.confirmableLsn).toBe(10n);
    w.add({ endLsn: 20n, messages: [msg('a')] });
    w.idle(30n);
    expect(w.confirmableLsn).toBe(10n); // 'a' unfinished: the keepalive does not count
    w.take(1, 0);
    w.done('a');
    w.idle(30n);
    expect(w.confirmableLsn).toBe(30n);
  });

  it('tracks a message streamed twice once', () => {
    const w = new WalDeliveryWindow();
    w.add({ endLsn: 10n, messages: [msg('a', 'k')] });
    w.add({ endLsn: 20n, messages: [msg('a', 'k')] });
    expect(w.size).toBe(1);
    w.take(10, 0);
    w.done('a');
    expect(w.confirmableLsn).toBe(20n);
  });
});
