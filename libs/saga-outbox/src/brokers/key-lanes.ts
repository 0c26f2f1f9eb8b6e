/** Handed to a KeyLanes task: lets it give its slot up while it waits (a retry back-off). */
export interface LaneSlot {
  /**
   * Gives the task's slot to another key while `wait` runs, then queues for a slot again. The key
   * stays held: no later task of the key starts before this one settles.
   */
  releasedWhile(wait: Promise<void>): Promise<void>;
}

/**
 * Per-key serial lanes with a bound on how many tasks run at once: tasks of one key run one after
 * another, in submission order; tasks of different keys (and every `null`-key task) run
 * concurrently, never more than `limit` at a time. A task waits for the previous task of its key
 * first, then for a slot (FIFO), so a key held by a failing task only delays that key. A consumer
 * submits each delivered message under its ordering key and stops taking deliveries while `size`
 * is at its window (`whenFewerThan`).
 */
export class KeyLanes {
  /** Tail of the task chain per key: a new task of the key runs after it. */
  private readonly tails = new Map<string, Promise<void>>();
  private readonly unsettled = new Set<Promise<void>>();
  private readonly slotWaiters: Array<() => void> = [];
  private readonly settleWaiters: Array<() => void> = [];
  private active = 0;
  private peakActive = 0;

  /**
   * @param limit tasks running at once (holding a slot)
   * @param onError told about a task that rejected (tasks are expected to handle their own
   *   failures; this is the last resort, so a bug is logged rather than lost)
   */
  constructor(
    readonly limit: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Tasks submitted and not yet settled: running, waiting for their key, or waiting for a slot. */
  get size(): number {
    return this.unsettled.size;
  }

  /** Tasks holding a slot now. */
  get running(): number {
    return this.active;
  }

  /** The most tasks that ever held a slot at the same time. */
  get peakRunning(): number {
    return this.peakActive;
  }

  /** Runs `task` after the previous task of `key` (none for null), holding one of `limit` slots. */
  submit(key: string | null, task: (slot: LaneSlot) => Promise<void>): void {
    this.enqueue(key, () => this.withSlot(task));
  }

  /**
   * Runs `task` after the previous task of `key` (none for null) WITHOUT a slot: it holds its key
   * until it settles, and takes a slot (`withSlot`) only for the work that needs one. For a task
   * that first joins work shared with other keys' tasks (a batch running under one slot).
   */
  submitHoldingKey(key: string | null, task: () => Promise<void>): void {
    this.enqueue(key, task);
  }

  /**
   * Runs `work` holding one of `limit` slots (queued FIFO with the tasks waiting for one); its
   * `LaneSlot` gives the slot up while it waits. Work shared by several keys' tasks takes one slot.
   */
  async withSlot<T>(work: (slot: LaneSlot) => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await work({ releasedWhile: (wait) => this.releasedWhile(wait) });
    } finally {
      this.release();
    }
  }

  private enqueue(key: string | null, task: () => Promise<void>): void {
    const previous = key === null ? undefined : this.tails.get(key);
    const run = (async () => {
      if (previous) await previous;
      await task();
    })().catch(this.onError);
    this.unsettled.add(run);
    if (key !== null) this.tails.set(key, run);
    void run.finally(() => {
      this.unsettled.delete(run);
      if (key !== null && this.tails.get(key) === run) this.tails.delete(key);
      for (const wake of this.settleWaiters.splice(0)) wake();
    });
  }

  /** Resolves once fewer than `count` tasks are unsettled. */
  async whenFewerThan(count: number): Promise<void> {
    while (this.unsettled.size >= count)
      await new Promise<void>((resolve) => this.settleWaiters.push(resolve));
  }

  /** Resolves once every task submitted so far (and any submitted meanwhile) settled. */
  async drained(): Promise<void> {
    while (this.unsettled.size) await Promise.allSettled([...this.unsettled]);
  }

  private async releasedWhile(wait: Promise<void>): Promise<void> {
    this.release();
    try {
      await wait;
    } finally {
      await this.acquire();
    }
  }

  private acquire(): Promise<void> {
    if (this.active < this.limit) {
      this.take();
      return Promise.resolve();
    }
    return new Promise<void>((resolve) =>
      this.slotWaiters.push(() => {
        this.take();
        resolve();
      }),
    );
  }

  private release(): void {
    this.active--;
    this.slotWaiters.shift()?.();
  }

  private take(): void {
    this.active++;
    if (this.active > this.peakActive) this.peakActive = this.active;
  }
}
