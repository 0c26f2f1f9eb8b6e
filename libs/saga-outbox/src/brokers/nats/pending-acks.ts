/**
 * A counting semaphore bounding how many JetStream publishes wait for their PubAck at once
 * (the `maxPending` option). FIFO, so a large batch cannot starve a later one for ever.
 */
export class PendingAcks {
  private inFlight = 0;
  private peakInFlight = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(readonly limit: number) {}

  /** Publishes currently awaiting their ack. */
  get current(): number {
    return this.inFlight;
  }

  /** The most publishes ever awaiting an ack at the same time. */
  get peak(): number {
    return this.peakInFlight;
  }

  /** Resolves once a slot is held; the caller must `release()` it exactly once. */
  acquire(): Promise<void> {
    if (this.inFlight < this.limit) {
      this.take();
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.waiters.push(() => {
        this.take();
        resolve();
      });
    });
  }

  release(): void {
    this.inFlight--;
    const next = this.waiters.shift();
    if (next) next();
  }

  private take(): void {
    this.inFlight++;
    if (this.inFlight > this.peakInFlight) this.peakInFlight = this.inFlight;
  }
}
