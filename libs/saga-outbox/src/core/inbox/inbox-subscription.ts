import type { Broker, DeliveredMessage, Subscription } from '../ports/broker';
import { silentLogger, type SageLogger } from '../ports/logger';
import { NO_TRACING, type SageTracer } from '../ports/tracer';
import { deliveredMessageSnapshot } from './delivered-message-snapshot';
import { DeliveryDeferredError } from '../errors';
import { errorText } from '../error-text';
import { derivedMessageId, messageIdProblem } from '../message-id';
import { InboxHandlerFailedError } from './inbox-errors';
import { MessageRefusedError } from './message-refused';
import type { DataProtector } from '../protection/data-protector';
import { DataUnreadableError } from '../protection/protection-errors';
import type { InboxHandlerContext, InboxProcessor } from './inbox-processor';
import { readableMessage } from './readable-message';
import { contractCheckedMessage, type IncomingContracts } from './contract-checked-message';

/**
 * What a subscription needs of the inbox: InboxProcessor's `process`, `deadLetter` and
 * `maxAttempts`; `processBatch` and `batchSize` too for batches (without them: none).
 */
export type InboxPort<Tx> = Pick<InboxProcessor<Tx>, 'process' | 'deadLetter' | 'maxAttempts'> &
  Partial<Pick<InboxProcessor<Tx>, 'processBatch' | 'batchSize'>>;

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
  /**
   * Checks a delivery before anything runs (e.g. its signature, its reply destination): throws
   * MessageRefusedError for a message that must never be handled, which is then dead-lettered at
   * once with that reason (no transaction, no handler, no retry).
   */
  verify?(message: DeliveredMessage): void;
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
  /**
   * Decrypts each delivery's encrypted fields (`dataProtection`) after its `verify` check (a
   * signature covers the ciphertext) and before the handler, which sees plaintext. Without it, a
   * message marked `sage-encrypted` is dead-lettered (DATA_UNREADABLE `no-keys`), never handled.
   */
  protector?: DataProtector<Tx>;
  /**
   * The consumer's contracts (`contracts.consumes`): each delivery of a type with a contract is
   * checked after decryption and before the handler, which gets its payload upcast to the newest
   * version the upcasters reach (see contractCheckedMessage). One that does not match, or declares
   * a version not accepted, is dead-lettered at once (MessageRefusedError `contract-invalid` /
   * `contract-version-unknown`), never handled.
   */
  contracts?: IncomingContracts;
  /**
   * Let brokers that can (Kafka, RabbitMQ, NATS) hand deliveries over in batches, each handled in one inbox
   * transaction (deliverBatchThroughInbox, up to the inbox's `batchSize`). Default false.
   */
  batches?: boolean;
}

/**
 * Delivers one message to `endpoint` through the inbox. Resolves when the broker should
 * acknowledge it (processed, duplicate, dead-lettered); rejects when it should redeliver it:
 * InboxHandlerFailedError (the handler failed; counted and logged by the inbox), or
 * DeliveryDeferredError (the failure could not be counted, e.g. the inbox store is down: logged
 * here as the endpoint's `deliveryError`; adapters do not count it toward their delivery cap).
 *
 * A message whose id is unusable (messageIdProblem: missing, blank, NUL, over 512 characters)
 * never reaches the handler: it is dead-lettered in the inbox at once, under a derived id
 * (`sage-derived:<sha256>` of the raw id, or of the message when it has none), with the reason.
 * The snapshot kept with a dead letter is built defensively (deliveredMessageSnapshot).
 *
 * A message the endpoint's `verify` refuses (MessageRefusedError: a bad signature, say) never
 * reaches the handler either: it is dead-lettered at once with the refusal as its reason.
 *
 * Encrypted fields (`dataProtection`) are decrypted after `verify` and before the handler, which
 * sees plaintext. A message that cannot be decrypted (DataUnreadableError) is dead-lettered at once
 * with that error's message as the reason, its snapshot as received (still encrypted); a subject key
 * store that cannot be reached defers the delivery (DeliveryDeferredError, redelivered later).
 *
 * With `contracts`, the decrypted message is then checked against its contract: one refused
 * (MessageRefusedError `contract-invalid`, `contract-version-unknown`) is dead-lettered at once
 * with the refusal as its reason, its snapshot as received; the handler gets one accepted as
 * upcast.
 */
export async function deliverThroughInbox<Tx, T>(
  endpoint: InboxEndpoint<Tx, T>,
  message: DeliveredMessage,
  options: InboxSubscriptionsOptions<Tx>,
): Promise<void> {
  const { consumer } = endpoint;
  const tracer = options.tracer ?? NO_TRACING;
  // Built only if a failure is recorded (deliveredMessageSnapshot walks the payload).
  const snapshot =
    endpoint.keepMessage === false ? undefined : () => deliveredMessageSnapshot(message);
  const idProblem = messageIdProblem(message.id);
  if (idProblem !== undefined) {
    const messageId = derivedMessageId(
      typeof message.id === 'string' ? message.id : undefined,
      () => JSON.stringify(deliveredMessageSnapshot(message)),
    );
    await deferOnError(endpoint, messageId, options, () =>
      options.inbox.deadLetter(
        { consumer, messageId, message: snapshot },
        `the message cannot be handled: ${idProblem} (recorded under a derived id)`,
      ),
    );
    return;
  }
  const refusal = refusalOf(endpoint, message);
  if (refusal !== undefined) {
    await deferOnError(endpoint, message.id, options, () =>
      options.inbox.deadLetter({ consumer, messageId: message.id, message: snapshot }, refusal),
    );
    return;
  }
  // Decrypted for the handler only: a dead letter's snapshot keeps the message as received.
  const readable = await deferOnError(endpoint, message.id, options, () =>
    readableMessage(message, options.protector),
  );
  if (readable instanceof DataUnreadableError) {
    const unreadable = readable;
    await deferOnError(endpoint, message.id, options, () =>
      options.inbox.deadLetter(
        { consumer, messageId: message.id, message: snapshot },
        unreadable.message,
      ),
    );
    return;
  }
  // Checked on plaintext; a dead letter's snapshot still keeps the message as received.
  const accepted = contractCheckedMessage(readable, options.contracts);
  if (accepted instanceof MessageRefusedError) {
    await deferOnError(endpoint, message.id, options, () =>
      options.inbox.deadLetter(
        { consumer, messageId: message.id, message: snapshot },
        accepted.message,
      ),
    );
    return;
  }
  // The message's traceparent makes the handler (and what it publishes) part of the producer's trace.
  await tracer.inboxHandling(consumer, message.id, message, () =>
    deferOnError(endpoint, message.id, options, async () => {
      const result = await options.inbox.process(
        { consumer, messageId: message.id, message: snapshot },
        (context) => endpoint.handle(accepted, context),
        { maxAttempts: endpoint.maxAttempts },
      );
      if (result.outcome === 'processed') endpoint.committed?.(result.value, accepted);
    }),
  );
}

/**
 * Delivers consecutive messages to `endpoint` through the inbox in ONE transaction
 * (InboxProcessor.processBatch), in the order given, each handler in its own tracing span. Resolves
 * true when all of them took effect (committed, or duplicates): the broker acknowledges them all.
 * Resolves false when none did and nothing was recorded: a handler threw (all rolled back), the
 * transaction failed, or a message needs more than a plain handling (an unusable id, a refusal by
 * `verify`, data it cannot decrypt, a contract it breaks, a key store it cannot reach). The broker
 * then delivers each one through deliverThroughInbox, which counts, retries and dead-letters as
 * usual, so one poison message never undoes nor holds up the others beyond that fallback.
 */
export async function deliverBatchThroughInbox<Tx, T>(
  endpoint: InboxEndpoint<Tx, T>,
  messages: readonly DeliveredMessage[],
  options: InboxSubscriptionsOptions<Tx>,
): Promise<boolean> {
  const { consumer } = endpoint;
  const processBatch = options.inbox.processBatch?.bind(options.inbox);
  if (!processBatch) return false;
  const tracer = options.tracer ?? NO_TRACING;
  const accepted: DeliveredMessage[] = [];
  for (const message of messages) {
    if (messageIdProblem(message.id) !== undefined) return false;
    try {
      if (refusalOf(endpoint, message) !== undefined) return false;
      const readable = await readableMessage(message, options.protector);
      if (readable instanceof DataUnreadableError) return false;
      const checked = contractCheckedMessage(readable, options.contracts);
      if (checked instanceof MessageRefusedError) return false;
      accepted.push(checked);
    } catch {
      return false; // deliverThroughInbox reports it (deliveryError) and defers the message
    }
  }
  const results = await processBatch(
    consumer,
    messages.map((message, i) => ({
      messageId: message.id,
      // The message's traceparent makes its handler part of the producer's trace.
      handle: (context: InboxHandlerContext<Tx>) =>
        tracer.inboxHandling(consumer, message.id, message, () =>
          endpoint.handle(accepted[i]!, context),
        ),
    })),
  );
  if (results === undefined) return false;
  results.forEach((result, i) => {
    if (result.outcome === 'processed') endpoint.committed?.(result.value, accepted[i]!);
  });
  return true;
}

/** The reason `endpoint.verify` refuses `message` with, or undefined when it passes (or there is no check). */
function refusalOf<Tx>(
  endpoint: InboxEndpoint<Tx, unknown>,
  message: DeliveredMessage,
): string | undefined {
  try {
    endpoint.verify?.(message);
    return undefined;
  } catch (error) {
    if (error instanceof MessageRefusedError) return error.message;
    throw error;
  }
}

/**
 * Runs `work`; an InboxHandlerFailedError whose attempt was counted goes to the broker as it is
 * (redeliver, counted); any other failure (the attempt could not be recorded, the store is down)
 * is logged as the endpoint's `deliveryError` and becomes DeliveryDeferredError (redeliver, not
 * counted toward the adapter's cap).
 */
async function deferOnError<Tx, R>(
  endpoint: InboxEndpoint<Tx, unknown>,
  messageId: string,
  options: InboxSubscriptionsOptions<Tx>,
  work: () => Promise<R>,
): Promise<R> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof InboxHandlerFailedError && error.attempts !== null) throw error;
    if (!(error instanceof InboxHandlerFailedError))
      (options.logger ?? silentLogger).error(endpoint.deliveryError.message, {
        event: endpoint.deliveryError.event,
        consumer: endpoint.consumer,
        messageId,
        error: errorText(error),
      });
    throw new DeliveryDeferredError(
      `consumer "${endpoint.consumer}" could not record message "${messageId}": ${errorText(error)}`,
      error,
    );
  }
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
    const { inbox, batches } = this.options;
    const batchSize = batches && inbox.processBatch ? (inbox.batchSize ?? 1) : 1;
    try {
      for (const endpoint of endpoints) {
        made.push(
          await broker.subscribe(
            endpoint.destination,
            (message) => deliverThroughInbox(endpoint, message, this.options),
            {
              group: endpoint.consumer,
              // The inbox dead-letters after maxAttempts; the adapter's cap only catches what the
              // inbox could not count, so it is set well above.
              maxDeliveries: 2 * (endpoint.maxAttempts ?? this.options.inbox.maxAttempts),
              ...(batchSize > 1 && {
                batch: {
                  maxSize: batchSize,
                  handle: (messages: readonly DeliveredMessage[]) =>
                    deliverBatchThroughInbox(endpoint, messages, this.options),
                },
              }),
            },
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
