import {
  Inject,
  Injectable,
  Optional,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
  type OnModuleInit,
} from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { InvalidOptionsError } from '../../core/errors';
import { InboxHandlerFailedError } from '../../core/inbox/inbox-errors';
import { MAX_INBOX_KEY_LENGTH } from '../../core/inbox/inbox-processor';
import { deliveredMessageSnapshot } from '../../core/inbox/delivered-message-snapshot';
import type { Broker, DeliveredMessage, Subscription } from '../../core/ports/broker';
import { discoverDecoratedMethods } from '../discover-methods';
import { NestSageLogger } from '../nest-sage-logger';
import { OUTBOX_BROKER } from '../outbox/outbox.providers';
import {
  IDEMPOTENT_HANDLER_METADATA,
  type IdempotentHandlerMetadata,
  type IdempotentHandlerMethod,
} from './idempotent-handler.decorator';
import { INBOX_OPTIONS, type InboxModuleOptions } from './inbox.options';
import { InboxService } from './inbox.service';

/** One `@IdempotentHandler` method found at module init. */
export interface DiscoveredIdempotentHandler {
  /** `ClassName.methodName`, for messages. */
  readonly name: string;
  readonly pattern: string;
  readonly consumer: string;
  readonly maxAttempts: number | undefined;
  readonly run: IdempotentHandlerMethod;
}

/**
 * Finds `@IdempotentHandler` methods on providers and controllers at module init (validating them:
 * a bad pattern, consumer name or maxAttempts, a duplicate consumer name or a request-scoped class
 * fails startup naming the method), subscribes each to the Broker on application bootstrap with
 * the consumer name as its group, and unsubscribes them before shutdown (waiting for running
 * handlers, so the database is still open for them).
 */
@Injectable()
export class IdempotentHandlerExplorer
  implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown
{
  readonly handlers: DiscoveredIdempotentHandler[] = [];
  private subscriptions: Subscription[] = [];
  private readonly logger = new NestSageLogger('SageInbox');

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    private readonly inbox: InboxService,
    @Optional() @Inject(OUTBOX_BROKER) private readonly broker?: Broker | null,
    @Optional() @Inject(INBOX_OPTIONS) private readonly options?: InboxModuleOptions,
  ) {}

  onModuleInit(): void {
    const byConsumer = new Map<string, string>();
    for (const { name, meta, method } of discoverDecoratedMethods<IdempotentHandlerMetadata>(
      this.discovery,
      this.scanner,
      this.reflector,
      IDEMPOTENT_HANDLER_METADATA,
      '@IdempotentHandler',
      { controllers: true },
    )) {
      const handler = this.validate(name, meta, method as IdempotentHandlerMethod);
      const other = byConsumer.get(handler.consumer);
      if (other !== undefined) {
        throw new InvalidOptionsError(
          '@IdempotentHandler',
          `consumer "${handler.consumer}" is declared by both ${other} and ${name}. Each handler needs its own consumer name (it is the inbox key and the broker consumer group).`,
        );
      }
      byConsumer.set(handler.consumer, name);
      this.handlers.push(handler);
    }
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.options?.subscribe === false) return;
    await this.subscribeAll();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.unsubscribeAll();
  }

  /** How many handlers are subscribed to the broker right now. */
  get subscribed(): number {
    return this.subscriptions.length;
  }

  /** Subscribes every handler (idempotent: a second call does nothing while subscribed). */
  async subscribeAll(): Promise<void> {
    if (this.subscriptions.length || !this.handlers.length) return;
    const broker = this.broker;
    if (!broker) {
      this.logger.warn(
        `no broker configured: ${this.handlers.length} @IdempotentHandler method(s) are not subscribed (${this.handlers
          .map((h) => h.name)
          .join(', ')}). Pass \`broker\` to SagaOutboxModule.forRoot.`,
        { event: 'inbox.subscribe.skipped' },
      );
      return;
    }
    try {
      for (const handler of this.handlers) {
        this.subscriptions.push(
          await broker.subscribe(
            handler.pattern,
            (message) =>
              this.inbox.tracer.inboxHandling(handler.consumer, message.id, message, () =>
                this.deliver(handler, message),
              ),
            { group: handler.consumer },
          ),
        );
        this.logger.info(`subscribed ${handler.name} to "${handler.pattern}"`, {
          event: 'inbox.subscribed',
          consumer: handler.consumer,
          pattern: handler.pattern,
          broker: broker.name,
        });
      }
    } catch (error) {
      // Not half-subscribed: undo what succeeded, then fail startup.
      await this.unsubscribeAll();
      throw error;
    }
  }

  /** Stops every subscription; resolves once no handler call is running. */
  async unsubscribeAll(): Promise<void> {
    const subscriptions = this.subscriptions;
    this.subscriptions = [];
    await Promise.all(subscriptions.map((s) => s.unsubscribe()));
  }

  private async deliver(
    handler: DiscoveredIdempotentHandler,
    message: DeliveredMessage,
  ): Promise<void> {
    try {
      await this.inbox.processor.process(
        {
          consumer: handler.consumer,
          messageId: message.id,
          message: deliveredMessageSnapshot(message),
        },
        ({ tx, messageId, consumer, attempt }) =>
          handler.run(message, { manager: tx, messageId, consumer, attempt }),
        { maxAttempts: handler.maxAttempts },
      );
    } catch (error) {
      // Counted and logged by the inbox: the throw is for the broker, which redelivers.
      if (!(error instanceof InboxHandlerFailedError)) {
        this.logger.error(`${handler.name} could not take a message`, {
          event: 'inbox.delivery_error',
          consumer: handler.consumer,
          messageId: message.id,
          error: error instanceof Error ? error.message : String(error),
        });
      }
      throw error;
    }
  }

  private validate(
    name: string,
    meta: IdempotentHandlerMetadata,
    run: IdempotentHandlerMethod,
  ): DiscoveredIdempotentHandler {
    if (typeof meta.pattern !== 'string' || meta.pattern.trim() === '') {
      throw new InvalidOptionsError(
        '@IdempotentHandler',
        `${name}: the pattern (topic / queue / subject) must be a non-empty string, got ${JSON.stringify(meta.pattern)}`,
      );
    }
    const consumer = meta.options.consumer ?? name;
    if (
      typeof consumer !== 'string' ||
      consumer.trim() === '' ||
      consumer.length > MAX_INBOX_KEY_LENGTH ||
      consumer.includes('\u0000')
    ) {
      throw new InvalidOptionsError(
        '@IdempotentHandler',
        `${name}: consumer must be a non-empty string of at most ${MAX_INBOX_KEY_LENGTH} characters without NUL, got ${JSON.stringify(consumer)}`,
      );
    }
    const { maxAttempts } = meta.options;
    if (maxAttempts !== undefined && (!Number.isInteger(maxAttempts) || maxAttempts < 1)) {
      throw new InvalidOptionsError(
        '@IdempotentHandler',
        `${name}: maxAttempts must be an integer >= 1, got ${String(maxAttempts)}`,
      );
    }
    return {
      name,
      pattern: meta.pattern,
      consumer,
      maxAttempts: meta.options.maxAttempts,
      run,
    };
  }
}
