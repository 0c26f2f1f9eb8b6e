import type { BrokerMessage, PublishResult } from '../../core/ports/broker';
import { PublishLinger } from './publish-linger';

const message = (id: string): BrokerMessage => ({
  id,
  destination: 'orders',
  key: null,
  type: 'order.placed',
  payload: {},
  headers: {},
  time: new Date(0),
});

/** A send that records its calls and answers ok, except for ids listed in `failing`. */
function recordingSend(failing: string[] = []) {
  const calls: string[][] = [];
  const send = (batch: readonly BrokerMessage[]): Promise<PublishResult[]> => {
    calls.push(batch.map((m) => m.id));
    return Promise.resolve(
      batch.map((m) =>
        failing.includes(m.id)
          ? { id: m.id, ok: false, error: 'refused', retryable: false }
          : { id: m.id, ok: true },
      ),
    );
  };
  return { calls, send };
}

describe('PublishLinger', () => {
  it('sends publishes made within the linger in one call and hands each caller its own results', async () => {
    const { calls, send } = recordingSend(['b2']);
    const linger = new PublishLinger(20, Infinity, send);
    const [a, b] = await Promise.all([
      linger.publish([message('a1'), message('a2')]),
      linger.publish([message('b1'), message('b2')]),
    ]);
    expect(calls).toEqual([['a1', 'a2', 'b1', 'b2']]);
    expect(a).toEqual([
      { id: 'a1', ok: true },
      { id: 'a2', ok: true },
    ]);
    expect(b).toEqual([
      { id: 'b1', ok: true },
      { id: 'b2', ok: false, error: 'refused', retryable: false },
    ]);
  });

  it('sends a window as soon as it holds flushAt messages, without waiting out the linger', async () => {
    const { calls, send } = recordingSend();
    const linger = new PublishLinger(60_000, 3, send);
    const first = linger.publish([message('a'), message('b')]);
    const second = linger.publish([message('c')]);
    await Promise.all([first, second]); // would time out if it waited the 60 s linger
    expect(calls).toEqual([['a', 'b', 'c']]);
  });

  it('reports an aborted caller failed and retryable while the others get their results', async () => {
    const { calls, send } = recordingSend();
    const linger = new PublishLinger(20, Infinity, send);
    const controller = new AbortController();
    const aborted = linger.publish([message('x')], controller.signal);
    const kept = linger.publish([message('y')]);
    controller.abort();
    expect(await aborted).toEqual([
      {
        id: 'x',
        ok: false,
        error: 'publish aborted before the broker acknowledged',
        retryable: true,
      },
    ]);
    expect(await kept).toEqual([{ id: 'y', ok: true }]);
    expect(calls).toEqual([['x', 'y']]);
  });

  it('rejects every caller of a window whose send throws', async () => {
    const linger = new PublishLinger(5, Infinity, () => Promise.reject(new Error('closed')));
    const results = await Promise.allSettled([
      linger.publish([message('a')]),
      linger.publish([message('b')]),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });

  it('flush() sends what waits at once (the broker closing)', async () => {
    const { calls, send } = recordingSend();
    const linger = new PublishLinger(60_000, Infinity, send);
    const pending = linger.publish([message('a')]);
    linger.flush();
    expect(await pending).toEqual([{ id: 'a', ok: true }]);
    expect(calls).toEqual([['a']]);
  });
});
