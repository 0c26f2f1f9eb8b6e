import { Inject, Injectable, Optional } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { InboxMessageIdMissingError } from '../../core/inbox/inbox-errors';
import { derivedMessageId, messageIdProblem } from '../../core/message-id';
import type { InboxEventListener } from '../../core/inbox/inbox-events';
import {
  InboxProcessor,
  validateConsumerName,
  validateInboxBatchSize,
  type InboxProcessorStats,
  type InboxResult,
} from '../../core/inbox/inbox-processor';
import type { JsonValue } from '../../core/json';
import type {
  InboxDeadLetterPage,
  InboxEntry,
  InboxFailureRecord,
  InboxKey,
} from '../../core/ports/inbox-store';
import { PostgresInboxStore } from '../../persistence/postgres/postgres-inbox-store';
import { NestSageLogger } from '../nest-sage-logger';
import { NO_TRACING, type SageTracer } from '../../core/ports/tracer';
import { SAGE_TRACER } from '../sage-tracer.token';
import type { DataProtector } from '../../core/protection/data-protector';
import { DATA_PROTECTOR } from '../protection/data-protector.token';
import { SAGE_CONTRACTS, type SageContracts } from '../contracts/sage-contracts.token';
import type { InboxContext } from './idempotent-handler.decorator';
import { INBOX_OPTIONS, type InboxModuleOptions } from './inbox.options';
import { transportHeader, transportMessageId } from './transport-message-id';
import { UndecryptedTransportMessageError } from './undecrypted-transport-message.error';
import { ENCRYPTED_HEADER } from '../../core/protection/data-protector';
import { unreadableDelivery } from './unreadable-delivery';
import { deliveredMessageSnapshot } from '../../core/inbox/delivered-message-snapshot';

/**
 * Where `handle()` takes the message id from: the id itself, a `@nestjs/microservices` transport
 * context (`KafkaContext`, `RmqContext`, `NatsContext`, see transportMessageId), or a Sage
 * `DeliveredMessage`.
 */
export type InboxMessageSource = string | object;

export interface InboxHandleOptions {
  /** Attempts before the message is dead-lettered. Default: the inbox's (5). */
  maxAttempts?: number;
  /** Kept with a dead letter so operators can see what failed (e.g. the `@Payload()`). */
  message?: JsonValue;
}

/**
 * The consumer inbox as an injectable service: the same guarantee as `@IdempotentHandler`, for
 * handlers a transport calls itself, such as `@nestjs/microservices` `@EventPattern` methods:
 *
 * ```ts
 * @EventPattern('orders')
 * async onOrder(@Payload() order: OrderPlaced, @Ctx() ctx: KafkaContext): Promise<void> {
 *   await this.inbox.handle('payments.on-order-placed', ctx, async ({ manager }) => {
 *     await manager.insert(Payment, { orderId: order.id });
 *   });
 * }
 * ```
 *
 * `handle()` resolves when the transport should acknowledge (processed, duplicate, dead-lettered)
 * and throws InboxHandlerFailedError when it should redeliver. Also: stats, events and the inbox's
 * dead letters.
 */
@Injectable()
export class InboxService {
  readonly processor: InboxProcessor<EntityManager>;

  constructor(
    readonly store: PostgresInboxStore,
    @Optional() @Inject(INBOX_OPTIONS) options?: InboxModuleOptions,
    @Optional() @Inject(SAGE_TRACER) readonly tracer: SageTracer = NO_TRACING,
    /** `dataProtection`: what the inbox subscriptions decrypt deliveries with (absent: none). */
    @Optional()
    @Inject(DATA_PROTECTOR)
    readonly protector: DataProtector<EntityManager> | null = null,
    /**
     * `contracts`: what the inbox subscriptions check deliveries with (`incoming`) and saga replies'
     * results (`outgoing`); absent: none. `handle()` does not check them (see docs/contracts.md).
     */
    @Optional()
    @Inject(SAGE_CONTRACTS)
    readonly contracts: SageContracts | null = null,
  ) {
    this.processor = new InboxProcessor<EntityManager>({
      store,
      maxAttempts: options?.maxAttempts,
      batchSize:
        options?.batchSize === undefined
          ? undefined
          : validateInboxBatchSize(options.batchSize, 'inbox.batchSize'),
      logger: new NestSageLogger('SageInbox'),
    });
  }

  /**
   * Runs `handler` at most once for (consumer, message id), in one transaction with the inbox row.
   * The id comes from `source` (see InboxMessageSource); none found → InboxMessageIdMissingError,
   * before anything is written. An unusable id (blank, NUL, over 512 characters) is dead-lettered
   * at once under `sage-derived:<sha256 of the id>`, without running `handler`. So is a message
   * SageBrokerTransport could not decrypt (SageBrokerContext.getUnreadableError: no key, an erased
   * subject, tampered), with that error's message as the reason and the message as received; and
   * one with encrypted fields (`sage-encrypted`) from a Kafka, RabbitMQ or NATS transport context,
   * whose `@Payload()` Nest hands over undecrypted (UndecryptedTransportMessageError's message).
   */
  async handle<T>(
    consumer: string,
    source: InboxMessageSource,
    handler: (context: InboxContext) => Promise<T>,
    options: InboxHandleOptions = {},
  ): Promise<InboxResult<T>> {
    const name = validateConsumerName(consumer);
    const messageId = transportMessageId(source);
    if (messageId === undefined) {
      throw new InboxMessageIdMissingError(
        name,
        'none in the given id / transport context: looked for Kafka header ce-id or ce_id, AMQP ' +
          'message-id, NATS header Nats-Msg-Id, or an `id` field',
      );
    }
    const idProblem = messageIdProblem(messageId);
    if (idProblem !== undefined) {
      // A poison id (NUL, over 512 characters, blank) from another producer: recorded, never run.
      return this.processor.deadLetter(
        {
          consumer: name,
          messageId: derivedMessageId(messageId, () => ''),
          message: options.message,
        },
        `the message cannot be handled: ${idProblem} (recorded under a derived id)`,
      );
    }
    const unreadable = unreadableDelivery(source);
    if (unreadable !== undefined) {
      // Encrypted fields it could not decrypt (SageBrokerTransport): recorded as received, never run.
      const received = unreadable.message;
      return this.processor.deadLetter(
        {
          consumer: name,
          messageId,
          message:
            options.message ?? (received ? () => deliveredMessageSnapshot(received) : undefined),
        },
        unreadable.error.message,
      );
    }
    if (transportHeader(source, ENCRYPTED_HEADER) !== undefined) {
      // Nest's own transports hand @Payload() over undecrypted: never handle ciphertext as data.
      return this.processor.deadLetter(
        { consumer: name, messageId, message: options.message },
        new UndecryptedTransportMessageError(name, messageId).message,
      );
    }
    return this.tracer.inboxHandling(name, messageId, source, () =>
      this.processor.process(
        { consumer: name, messageId, message: options.message },
        ({ tx, attempt }) => handler({ manager: tx, messageId, consumer: name, attempt }),
        { maxAttempts: options.maxAttempts },
      ),
    );
  }

  get stats(): Readonly<InboxProcessorStats> {
    return this.processor.stats;
  }

  /** Inbox events (processed, duplicate, failed, dead-lettered), e.g. for metrics. Returns the unsubscribe function. */
  onEvent(listener: InboxEventListener): () => void {
    return this.processor.onEvent(listener);
  }

  /** The inbox row of a message for a consumer (processed or dead-lettered), if any. */
  get(key: InboxKey): Promise<InboxEntry | undefined> {
    return this.store.get(key);
  }

  /** Failed attempts of a message not yet handled, if any. */
  getFailure(key: InboxKey): Promise<InboxFailureRecord | undefined> {
    return this.store.getFailure(key);
  }

  /** Dead letters, optionally of one consumer, a page at a time. */
  listDeadLetters(
    filter: { consumer?: string } = {},
    limit = 100,
    after?: InboxKey,
  ): Promise<InboxDeadLetterPage> {
    return this.store.listDeadLetters(filter, limit, after);
  }

  /**
   * Forgets dead letters of `consumer` (after fixing the handler), so that the next delivery of each
   * is handled again. The broker already acknowledged them: redeliver from the broker (replay the
   * topic / shovel from the DLQ) or from the stored `message`. Returns the ids released.
   */
  releaseDeadLetters(consumer: string, messageIds: readonly string[]): Promise<string[]> {
    return this.store.deleteDeadLetters(consumer, messageIds);
  }
}
