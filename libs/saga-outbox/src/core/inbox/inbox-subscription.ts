import type { Broker, DeliveredMessage, Subscription } from '../ports/broker';
import { silentLogger, type SageLogger } from '../ports/logger';
import { NO_TRACING, type SageTracer } from '../ports/tracer';
import { deliveredMessageSnapshot } from './delivered-message-snapshot';
import { errorText } from '../error-text';
import { InboxHandlerFailedError } from './inbox-errors';
import type { InboxHandlerContext, InboxProcessor } from './inbox-processor';

/** What a subscription needs of the inbox: InboxProcessor's `process`. */
export type InboxPort<Tx> = Pick<InboxProcessor<Tx>, 'process'>;

/**
 * One consumer of one broker destination whose every delivery goes through the inbox: an
 * `@IdempotentHandler`, a saga participant's command destination, the orchestrator's replies.
 */
export interface InboxEndpoint<Tx, T = unknown> {
  /** Topic / queue / subject subscribed to. */
  readonly destination: string;
  /** Inbox consumer name, and the broker consumer group (instances of one consumer share the messages). */
  readonly consumer: string;
  /** Attempts before a failing message is dead-lettered. Default: the inbox's. */
  readonly maxAttempts?: number;
  /** Keep the delivered message (deliveredMessageSnapshot) with a dead letter. Default true. */
  readonly keepMessage?: boolean;
  /** Runs in the inbox transaction (`context.tx`): its writes commit with the inbox row, or none do. */
  handle(message: DeliveredMessage, context: InboxHandlerContext<Tx>): Promise<T>;
  /** After the handler's transaction committed (not for duplicates, not for dead letters). */
  committed?(value: T, message: DeliveredMessage): void;
  /** Logged (error) when a delivery could not be taken for another reason than a handler failure. */
  readonly deliveryError: { readonly message: string; readonly event: string };
}

export interface InboxSubscriptionsOptions<Tx> {
  inbox: InboxPort<Tx>;
  /** Each delivery runs in `tracer.inboxHandling` (a consumer span continuing the producer's trace). */
  tracer?: SageTracer;
  logger?: SageLogger;
}

/**
 * Delivers one message to `endpoint` through the inbox. Resolves when the broker should
 * acknowledge it (processed, duplicate, dead-lettered); rejects when it should redeliver it:
 * InboxHandlerFailedError (counted and logged by the inbox), or anything else (logged here as the
 * endpoint's `deliveryError`, e.g. a message without a usable id or an inbox store down).
 */
export async function deliverThroughInbox<Tx, T>(
  endpoint: InboxEndpoint<Tx, T>,
  message: DeliveredMessage,
  options: InboxSubscriptionsOptions<Tx>,
): Promise<void> {
  const { consumer } = endpoint;
  const tracer = options.tracer ?? NO_TRACING;
  // The message's traceparent makes the handler (and what it publishes) part of the producer's trace.
  await tracer.inboxHandling(consumer, message.id, message, async () => {
    try {
      const result = await options.inbox.process(
        {
          consumer,
          messageId: message.id,
          message: endpoint.keepMessage === false ? undefined : deliveredMessageSnapshot(message),
        },
        (context) => endpoint.handle(message, context),
        { maxAttempts: endpoint.maxAttempts },
      );
      if (result.outcome === 'processed') endpoint.committed?.(result.value, message);
    } catch (error) {
      // Counted and logged by the inbox: the throw is for the broker, which redelivers.
      if (!(error instanceof InboxHandlerFailedError)) {
        (options.logger ?? silentLogger).error(endpoint.deliveryError.message, {
          event: endpoint.deliveryError.event,
          consumer,
          messageId: message.id,
          error: errorText(error),
        });
      }
      throw error;
    }
  });
}

/**
 * The broker subscriptions of a set of inbox endpoints: `subscribe` subscribes each endpoint to its
 * destination with its consumer name as the group, every delivery handled by deliverThroughInbox;
 * `unsubscribeAll` stops them, waiting for running handlers.
 */
export class InboxSubscriptions<Tx> {
  private subscriptions: Subscription[] = [];

  constructor(private readonly options: InboxSubscriptionsOptions<Tx>) {}

  /** How many endpoints are subscribed right now. */
  get size(): number {
    return this.subscriptions.length;
  }

  /**
   * Subscribes every endpoint, in order (`onSubscribed` after each). All or none: when one
   * subscription fails, those made by this call are undone and the error is thrown.
   */
  async subscribe<E extends InboxEndpoint<Tx, unknown>>(
    broker: Broker,
    endpoints: Iterable<E>,
    onSubscribed?: (endpoint: E) => void,
  ): Promise<void> {
    const made: Subscription[] = [];
    try {
      for (const endpoint of endpoints) {
        made.push(
          await broker.subscribe(
            endpoint.destination,
            (message) => deliverThroughInbox(endpoint, message, this.options),
            { group: endpoint.consumer },
          ),
        );
        onSubscribed?.(endpoint);
      }
    } catch (error) {
      await Promise.all(made.map((s) => s.unsubscribe()));
      throw error;
    }
    this.subscriptions.push(...made);
  }

  /** Stops every subscription; resolves once no handler call is running. */
  async unsubscribeAll(): Promise<void> {
    const subscriptions = this.subscriptions;
    this.subscriptions = [];
    await Promise.all(subscriptions.map((s) => s.unsubscribe()));
  }
}
