/**
 * Deliveries of a JetStream pull consumer that never reached this subscriber, and the stream
 * range they came from, so the consume loop can handle those messages before later ones of their
 * keys.
 *
 * JetStream counts a message as delivered when it sends it. If the connection drops before the
 * client reads it (a NATS restart, a cut connection) or the subscriber that had it dies, the
 * message waits for `ack_wait` before it is delivered again, while the consumer goes on with the
 * next messages: a later message of the same key would be handled first. Each delivery carries the
 * consumer's delivery sequence (one more per delivery, redeliveries included) and the message's
 * stream sequence (first deliveries in stream order): a jump in the delivery sequence after an
 * interruption (a disconnect, the consume restarting) means deliveries were lost, and the
 * messages they carried are the ones of the consumer's subject between the highest stream
 * sequence received before and the next first delivery's.
 *
 * Without an interruption a jump is another member of the group taking its share (competing
 * members, where per-key order is not promised): not treated as a loss.
 */
export interface DeliveryInfo {
  /** The consumer's sequence of this delivery (`JsMsg.info.deliverySequence`). */
  deliverySequence: number;
  /** The message's sequence in the stream (`JsMsg.info.streamSequence`). */
  streamSequence: number;
  /** 1 for a first delivery (`JsMsg.info.deliveryCount`). */
  deliveryCount: number;
}

/** Stream sequences strictly between `after` and `before` may hold messages never handled. */
export interface LostRange {
  after: number;
  before: number;
}

export class LostDeliveries {
  private lastDelivery: number | undefined;
  private highestStream = 0;
  private interruptedSinceLast = false;
  /** Stream sequence after which first deliveries may have been lost (until the next one arrives). */
  private gapAfter: number | undefined;

  /** The connection dropped, or the consume restarted: deliveries in transit may be lost. */
  interrupted(): void {
    this.interruptedSinceLast = true;
  }

  /** A delivery arrived: the stream range to handle before it, if deliveries were lost. */
  observe(d: DeliveryInfo): LostRange | undefined {
    const jumped = this.lastDelivery !== undefined && d.deliverySequence > this.lastDelivery + 1;
    if (jumped && this.interruptedSinceLast) this.gapAfter ??= this.highestStream;
    this.interruptedSinceLast = false;
    // Not max(): a server restored from older state numbers its deliveries from there again.
    this.lastDelivery = d.deliverySequence;
    if (d.deliveryCount !== 1) return undefined;
    const gapAfter = this.gapAfter;
    this.gapAfter = undefined;
    this.highestStream = Math.max(this.highestStream, d.streamSequence);
    return gapAfter !== undefined && d.streamSequence > gapAfter + 1
      ? { after: gapAfter, before: d.streamSequence }
      : undefined;
  }
}
