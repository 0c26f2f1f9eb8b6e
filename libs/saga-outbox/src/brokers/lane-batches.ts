import type { KeyLanes, LaneSlot } from './key-lanes';

/** A batch still taking items: it runs once it holds a slot, or once full. */
interface OpenBatch<T> {
  readonly items: T[];
  readonly done: Promise<boolean>;
}

/**
 * Gathers KeyLanes tasks that may run now into batches that run under ONE slot. A task submitted
 * with `KeyLanes.submitHoldingKey` joins (`join`) once the earlier tasks of its key settled, so a
 * batch holds at most one item per key, in the order they became free, and every key it holds
 * stays held until the batch settles (later items of those keys wait for it).
 *
 * A batch opens with its first item and takes the others that become free in the same I/O turn
 * and while it waits for a slot (so batches grow while every slot is busy), up to `maxSize`; a
 * full batch stops taking items and waits for its slot. `run` then gets its items and that slot;
 * what it resolves (or rejects) is what each item's `join` resolves (or rejects).
 */
export class LaneBatches<T> {
  private open: OpenBatch<T> | undefined;

  /**
   * @param lanes the lanes whose slots the batches run under
   * @param maxSize most items in one batch (at least 1)
   * @param run handles one batch holding one slot
   */
  constructor(
    private readonly lanes: KeyLanes,
    readonly maxSize: number,
    private readonly run: (items: readonly T[], slot: LaneSlot) => Promise<boolean>,
  ) {}

  /** Adds `item` to the batch taking items (opening one); settles as its batch's `run` does. */
  join(item: T): Promise<boolean> {
    const batch = this.open ?? this.gather();
    batch.items.push(item);
    if (batch.items.length >= this.maxSize) this.close(batch);
    return batch.done;
  }

  private gather(): OpenBatch<T> {
    const items: T[] = [];
    const done = (async () => {
      // The items that become free in this I/O turn join before the batch asks for a slot.
      await new Promise<void>((resolve) => setImmediate(resolve));
      return this.lanes.withSlot((slot) => {
        this.close(batch);
        return this.run(items, slot);
      });
    })();
    const batch: OpenBatch<T> = { items, done };
    this.open = batch;
    return batch;
  }

  private close(batch: OpenBatch<T>): void {
    if (this.open === batch) this.open = undefined;
  }
}
