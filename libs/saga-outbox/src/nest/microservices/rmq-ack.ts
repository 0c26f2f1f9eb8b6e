/** The part of Nest's `RmqContext` this needs (duck-typed: no runtime import of `@nestjs/microservices`). */
export interface RmqAckContext {
  getChannelRef(): {
    ack(message: never): void;
    nack(message: never, allUpTo?: boolean, requeue?: boolean): void;
  };
  getMessage(): unknown;
}

/**
 * Settles a RabbitMQ delivery by the outcome of `work` (typically `InboxService.handle(...)`), for
 * `Transport.RMQ` with `noAck: false`, where Nest leaves acknowledging to the handler:
 *
 * - `work` resolves (processed, duplicate or dead-lettered by the inbox: its transaction has
 *   committed) → `ack`;
 * - `work` rejects (the handler's transaction rolled back) → `nack` with requeue, so the broker
 *   redelivers it; the inbox counts the attempts and dead-letters the message after `maxAttempts`,
 *   after which the next delivery is acknowledged. Then rethrows.
 *
 * If the channel closed meanwhile (broker restart), the ack or nack cannot be sent and is skipped:
 * the broker redelivers the message anyway, and the inbox recognises it as a duplicate (or runs it
 * again after a rollback).
 */
export async function ackRmqAfter<T>(context: RmqAckContext, work: () => Promise<T>): Promise<T> {
  const channel = context.getChannelRef();
  const message = context.getMessage() as never;
  let result: T;
  try {
    result = await work();
  } catch (error) {
    try {
      channel.nack(message, false, true);
    } catch {
      // The channel is gone (broker restart): the broker redelivers the message anyway.
    }
    throw error;
  }
  try {
    channel.ack(message);
  } catch {
    // The channel is gone (broker restart): the broker redelivers; the inbox skips the duplicate.
  }
  return result;
}
