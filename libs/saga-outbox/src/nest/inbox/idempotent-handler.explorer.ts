import {
  Inject,
  Injectable,
  Optional,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
  type OnModuleInit,
} from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import type { EntityManager } from 'typeorm';
import { InvalidOptionsError } from '../../core/errors';
import { MAX_INBOX_KEY_LENGTH } from '../../core/inbox/inbox-processor';
import { InboxSubscriptions, type InboxEndpoint } from '../../core/inbox/inbox-subscription';
import { optionalPositiveInteger, requiredName } from '../../core/options';
import type { Broker } from '../../core/ports/broker';
import { signatureCheck } from '../../core/signing/signing-options';
import { discoverDecoratedMethods } from '../discover-methods';
import { SAGA_OUTBOX_OPTIONS } from '../saga-outbox.module-definition';
import type { SagaOutboxModuleOptions } from '../saga-outbox.options';
import { NestSageLogger } from '../nest-sage-logger';
import { OUTBOX_BROKER } from '../outbox/outbox.options';
import { SageBrokerStartup } from '../startup/sage-broker-startup';
import type { StartingSubscriptions } from '../../core/startup/broker-startup';
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
  /** Checked against `signing.require` (false: exempt). */
  readonly requireSignature: boolean;
  readonly run: IdempotentHandlerMethod;
}

/**
 * Finds `@IdempotentHandler` methods on providers and controllers at module init (validating them:
 * a bad pattern, consumer name or maxAttempts, a duplicate consumer name or a request-scoped class
 * fails startup naming the method), subscribes each to the Broker through the inbox on application
 * bootstrap with the consumer name as its group (see InboxSubscriptions), and unsubscribes them
 * before shutdown (waiting for running handlers, so the database is still open for them).
 */
@Injectable()
export class IdempotentHandlerExplorer
  implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown
{
  readonly handlers: DiscoveredIdempotentHandler[] = [];
  private readonly logger = new NestSageLogger('SageInbox');
  private readonly subscriptions: InboxSubscriptions<EntityManager>;
  /** Set while subscribed through SageBrokerStartup (possibly still retrying in the background). */
  private starting: StartingSubscriptions | undefined;

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    inbox: InboxService,
    @Optional() @Inject(OUTBOX_BROKER) private readonly broker?: Broker | null,
    @Optional() @Inject(INBOX_OPTIONS) private readonly options?: InboxModuleOptions,
    @Optional() private readonly brokerStartup?: SageBrokerStartup,
    @Optional()
    @Inject(SAGA_OUTBOX_OPTIONS)
    private readonly moduleOptions?: Pick<SagaOutboxModuleOptions, 'signing'>,
  ) {
    this.subscriptions = new InboxSubscriptions({
      inbox: inbox.processor,
      tracer: inbox.tracer,
      logger: this.logger,
      // `dataProtection`: handlers see deliveries decrypted; undecryptable ones are dead-lettered.
      protector: inbox.protector ?? undefined,
      // `contracts.consumes`: deliveries checked (and upcast) after decryption, before the handler.
      contracts: inbox.contracts?.incoming,
      // Kafka, RabbitMQ and NATS hand deliveries over in batches: one inbox transaction each (batchSize).
      batches: true,
    });
  }

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
      const handler = validate(name, meta, method as IdempotentHandlerMethod);
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
    return this.subscriptions.size;
  }

  /**
   * Subscribes every handler (idempotent: a second call does nothing while subscribed or
   * subscribing). A broker unreachable at startup with `brokerStartup: 'degraded'` does not fail
   * it: the handlers are subscribed in the background once the broker is back (SageBrokerStartup).
   */
  async subscribeAll(): Promise<void> {
    if (this.subscriptions.size || this.starting || !this.handlers.length) return;
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
    const verify = signatureCheck(this.moduleOptions?.signing);
    const endpoints = this.handlers.map((handler) => ({
      ...inboxEndpoint(handler, handler.requireSignature ? verify : undefined),
      handler,
    }));
    // All or none: a failure undoes what succeeded, then is retried or fails startup.
    const subscribe = () =>
      this.subscriptions.subscribe(broker, endpoints, ({ handler }) => {
        this.logger.info(`subscribed ${handler.name} to "${handler.pattern}"`, {
          event: 'inbox.subscribed',
          consumer: handler.consumer,
          pattern: handler.pattern,
          broker: broker.name,
        });
      });
    if (!this.brokerStartup) return subscribe();
    this.starting = await this.brokerStartup.start('@IdempotentHandler subscriptions', subscribe);
  }

  /** Stops every subscription (and background attempts); resolves once no handler call is running. */
  async unsubscribeAll(): Promise<void> {
    const starting = this.starting;
    this.starting = undefined;
    await starting?.stop();
    await this.subscriptions.unsubscribeAll();
  }
}

/** The handler as an inbox endpoint: its method runs with the inbox transaction as `manager`. */
function inboxEndpoint(
  handler: DiscoveredIdempotentHandler,
  verify: InboxEndpoint<EntityManager, unknown>['verify'],
): InboxEndpoint<EntityManager, unknown> {
  return {
    destination: handler.pattern,
    consumer: handler.consumer,
    maxAttempts: handler.maxAttempts,
    verify,
    handle: (message, { tx, messageId, consumer, attempt }) =>
      handler.run(message, { manager: tx, messageId, consumer, attempt }),
    deliveryError: {
      message: `${handler.name} could not take a message`,
      event: 'inbox.delivery_error',
    },
  };
}

function validate(
  name: string,
  meta: IdempotentHandlerMetadata,
  run: IdempotentHandlerMethod,
): DiscoveredIdempotentHandler {
  const at = (field: string) => ({ option: '@IdempotentHandler', field: `${name}: ${field}` });
  const pattern = requiredName(at('the pattern (topic / queue / subject)'), meta.pattern);
  const consumer = requiredName(at('consumer'), meta.options.consumer ?? name, {
    maxLength: MAX_INBOX_KEY_LENGTH,
  });
  optionalPositiveInteger(at('maxAttempts'), meta.options.maxAttempts);
  const requireSignature = meta.options.requireSignature ?? true;
  if (typeof requireSignature !== 'boolean')
    throw new InvalidOptionsError(
      `@IdempotentHandler ${name}: requireSignature`,
      `must be a boolean, got ${typeof requireSignature}`,
    );
  return {
    name,
    pattern,
    consumer,
    maxAttempts: meta.options.maxAttempts,
    requireSignature,
    run,
  };
}
