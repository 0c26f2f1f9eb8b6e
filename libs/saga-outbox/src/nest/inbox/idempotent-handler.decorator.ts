import { SetMetadata } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import type { DeliveredMessage } from '../../core/ports/broker';

export const IDEMPOTENT_HANDLER_METADATA = 'sage:idempotent-handler';

export interface IdempotentHandlerOptions {
  /**
   * The consumer name: the inbox deduplicates per (consumer, message id), and it is the broker
   * consumer group (instances with the same name share the messages). Default `ClassName.methodName`:
   * renaming the class or method then starts a new consumer, which handles again what the old one
   * handled. Name it explicitly in production.
   */
  consumer?: string;
  /** Attempts (first delivery included) before the message is dead-lettered. Default: the inbox's (5). */
  maxAttempts?: number;
  /**
   * With the module's `signing.require`, messages to this handler must be signed too (unsigned or
   * badly signed ones are dead-lettered at once, never handled). `false` exempts this handler, for
   * a producer that does not sign (another team's service, a third party). Default true.
   */
  requireSignature?: boolean;
}

export interface IdempotentHandlerMetadata {
  pattern: string;
  options: IdempotentHandlerOptions;
}

/** The second argument of an `@IdempotentHandler` method (and of `InboxService.handle`'s callback). */
export interface InboxContext {
  /**
   * The transaction the inbox row is written in. Write through it (and publish outbox messages with
   * `{ manager }`): those writes commit together with the inbox row, or not at all.
   */
  manager: EntityManager;
  messageId: string;
  consumer: string;
  /** 1 on the first attempt; counted by the inbox across redeliveries and instances. */
  attempt: number;
}

/** What an `@IdempotentHandler` method looks like. */
export type IdempotentHandlerMethod = (
  message: DeliveredMessage,
  context: InboxContext,
) => Promise<unknown>;

/**
 * Subscribes the method to `pattern` (topic / queue / subject) on the configured Broker, and runs it
 * at most once per message for this consumer, in one transaction with the inbox row:
 *
 * ```ts
 * @Injectable()
 * export class PaymentsConsumer {
 *   constructor(private readonly outbox: OutboxRepository) {}
 *
 *   @IdempotentHandler('orders', { consumer: 'payments.on-order-placed' })
 *   async onOrderPlaced(message: DeliveredMessage, { manager }: InboxContext): Promise<void> {
 *     await manager.insert(Payment, { orderId: message.key, status: 'pending' });
 *     await this.outbox.publish({ destination: 'payments', type: 'payment.requested', ... }, { manager });
 *   }
 * }
 * ```
 *
 * A duplicate delivery is skipped and acknowledged; a throw rolls the transaction back and the
 * broker redelivers; after `maxAttempts` failures the message is dead-lettered in the inbox and
 * acknowledged. See docs/inbox.md.
 */
export function IdempotentHandler(
  pattern: string,
  options: IdempotentHandlerOptions = {},
): MethodDecorator {
  return SetMetadata<string, IdempotentHandlerMetadata>(IDEMPOTENT_HANDLER_METADATA, {
    pattern,
    options,
  });
}
