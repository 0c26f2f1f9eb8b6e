import { describe, expect, it } from '@jest/globals';
import { KeyLanes } from './key-lanes';

/** A promise with its resolve exposed: the test decides when a task's work ends. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('KeyLanes', () => {
  it('runs one key in submission order and different keys at once, never more than the limit', async () => {
    const lanes = new KeyLanes(3, (error) => {
      throw error;
    });
    const started: string[] = [];
    const gates = new Map<string, ReturnType<typeof gate>>();
    for (const name of ['a1', 'a2', 'b1', 'c1', 'd1', 'a3']) {
      const g = gate();
      gates.set(name, g);
      lanes.submit(name[0]!, async () => {
        started.push(name);
        await g.promise;
      });
    }
    await tick();
    expect(started).toEqual(['a1', 'b1', 'c1']); // a2 waits for a1; d1 for a slot
    expect(lanes.running).toBe(3);
    gates.get('a1')!.open();
    await tick();
    expect(started).toEqual(['a1', 'b1', 'c1', 'd1']); // d1 queued for a slot before a2 did
    for (const g of gates.values()) g.open();
    await lanes.drained();
    expect(started).toEqual(['a1', 'b1', 'c1', 'd1', 'a2', 'a3']);
    expect(lanes.peakRunning).toBe(3);
    expect(lanes.size).toBe(0);
  });

  it('lets other keys use the slot while a task waits, and keeps its key held meanwhile', async () => {
    const lanes = new KeyLanes(1, (error) => {
      throw error;
    });
    const order: string[] = [];
    const backOff = gate();
    lanes.submit('a', async (slot) => {
      order.push('a1 fails');
      await slot.releasedWhile(backOff.promise);
      order.push('a1 retried');
    });
    lanes.submit('a', () => Promise.resolve(void order.push('a2')));
    lanes.submit('b', () => Promise.resolve(void order.push('b1')));
    await tick();
    await tick();
    expect(order).toEqual(['a1 fails', 'b1']);
    backOff.open();
    await lanes.drained();
    expect(order).toEqual(['a1 fails', 'b1', 'a1 retried', 'a2']);
    expect(lanes.peakRunning).toBe(1);
  });

  it('runs null-key tasks without a lane, and reports a rejected task without blocking its key', async () => {
    const errors: unknown[] = [];
    const lanes = new KeyLanes(4, (error) => errors.push(error));
    const order: string[] = [];
    const held = gate();
    lanes.submit(null, async () => {
      await held.promise;
      order.push('n1');
    });
    lanes.submit(null, () => Promise.resolve(void order.push('n2')));
    lanes.submit('k', () => Promise.reject(new Error('bug')));
    lanes.submit('k', () => Promise.resolve(void order.push('k2')));
    await tick();
    await tick();
    expect(order).toEqual(['n2', 'k2']);
    expect(errors).toEqual([new Error('bug')]);
    held.open();
    await lanes.drained();
    expect(order).toEqual(['n2', 'k2', 'n1']);
  });

  it('submitHoldingKey holds the key without a slot; withSlot takes one for its work', async () => {
    const lanes = new KeyLanes(1, (error) => {
      throw error;
    });
    const order: string[] = [];
    const inSlot = gate();
    const joined = gate();
    lanes.submitHoldingKey('a', async () => {
      order.push('a1 holds its key');
      await joined.promise;
      await lanes.withSlot(async () => {
        order.push('a1 in a slot');
        await inSlot.promise;
      });
    });
    lanes.submit('a', () => Promise.resolve(void order.push('a2')));
    lanes.submit('b', () => Promise.resolve(void order.push('b1')));
    await tick();
    await tick();
    // a1 took no slot while it waited: b1 ran; a2 waits for a1.
    expect(order).toEqual(['a1 holds its key', 'b1']);
    expect(lanes.running).toBe(0);
    joined.open();
    await tick();
    expect(order).toEqual(['a1 holds its key', 'b1', 'a1 in a slot']);
    expect(lanes.running).toBe(1);
    inSlot.open();
    await lanes.drained();
    expect(order).toEqual(['a1 holds its key', 'b1', 'a1 in a slot', 'a2']);
    expect(lanes.peakRunning).toBe(1);
  });

  it('whenFewerThan resolves once enough tasks settled', async () => {
    const lanes = new KeyLanes(2, (error) => {
      throw error;
    });
    const gates = [gate(), gate()];
    for (const g of gates) lanes.submit(null, () => g.promise);
    let room = false;
    void lanes.whenFewerThan(2).then(() => (room = true));
    await tick();
    expect(room).toBe(false);
    gates[0]!.open();
    await tick();
    await tick();
    expect(room).toBe(true);
    gates[1]!.open();
    await lanes.drained();
  });
});
