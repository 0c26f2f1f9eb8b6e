import { describe, expect, it } from '@jest/globals';
import { KeyLanes } from './key-lanes';
import { LaneBatches } from './lane-batches';

/** A promise with its resolve exposed: the test decides when a piece of work ends. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const failOnError = (error: unknown): void => {
  throw error;
};

describe('LaneBatches', () => {
  it('batches one item per key under one slot; later items of a key wait for its batch', async () => {
    const lanes = new KeyLanes(4, failOnError);
    const batches: string[][] = [];
    const gates: ReturnType<typeof gate>[] = [];
    let peakInBatch = 0;
    const lb = new LaneBatches<string>(lanes, 10, async (items) => {
      batches.push([...items]);
      peakInBatch = Math.max(peakInBatch, lanes.running);
      const g = gate();
      gates.push(g);
      await g.promise;
      return true;
    });
    const outcomes: string[] = [];
    for (const name of ['a1', 'b1', 'a2', 'c1', 'b2', 'a3'])
      lanes.submitHoldingKey(name[0]!, async () => {
        outcomes.push(`${name}:${await lb.join(name)}`);
      });
    await tick();
    await tick();
    expect(batches).toEqual([['a1', 'b1', 'c1']]);
    expect(lanes.running).toBe(1); // one slot for the whole batch
    gates[0]!.open();
    await tick();
    await tick();
    expect(batches).toEqual([
      ['a1', 'b1', 'c1'],
      ['a2', 'b2'],
    ]);
    gates[1]!.open();
    await tick();
    await tick();
    expect(batches[2]).toEqual(['a3']);
    gates[2]!.open();
    await lanes.drained();
    expect(outcomes).toEqual(['a1:true', 'b1:true', 'c1:true', 'a2:true', 'b2:true', 'a3:true']);
    expect(peakInBatch).toBe(1);
  });

  it('closes a full batch and keeps gathering the next one while every slot is busy', async () => {
    const lanes = new KeyLanes(1, failOnError);
    const busy = gate();
    const sizes: number[] = [];
    void lanes.withSlot(() => busy.promise); // the only slot, taken
    const lb = new LaneBatches<number>(lanes, 3, (items) => {
      sizes.push(items.length);
      return Promise.resolve(items.length > 1);
    });
    const results: boolean[] = [];
    for (let i = 0; i < 7; i++)
      lanes.submitHoldingKey(`k${i}`, async () => void results.push(await lb.join(i)));
    await tick();
    await tick();
    expect(sizes).toEqual([]); // all waiting for the slot: 3 + 3 + 1
    busy.open();
    await lanes.drained();
    expect(sizes).toEqual([3, 3, 1]);
    expect(results).toEqual([true, true, true, true, true, true, false]);
  });

  it('a rejecting run rejects every join of its batch', async () => {
    const lanes = new KeyLanes(2, failOnError);
    const lb = new LaneBatches<number>(lanes, 5, () => Promise.reject(new Error('ack failed')));
    const settled = await Promise.allSettled([lb.join(1), lb.join(2)]);
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected']);
    expect(lanes.running).toBe(0);
  });
});
