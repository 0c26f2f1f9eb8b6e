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
import { InboxSubscriptions } from '../../core/inbox/inbox-subscription';
import { invalidOption, requiredName } from '../../core/options';
import type { Broker } from '../../core/ports/broker';
import {
  participantInboxEndpoint,
  type ParticipantEndpoint,
  type SagaCommandHandlerEntry,
} from '../../core/remote/participant-protocol';
import { signatureCheck } from '../../core/signing/signing-options';
import { discoverDecoratedMethods } from '../discover-methods';
import { SAGA_OUTBOX_OPTIONS } from '../saga-outbox.module-definition';
import type { SagaOutboxModuleOptions } from '../saga-outbox.options';
import { INBOX_OPTIONS, type InboxModuleOptions } from '../inbox/inbox.options';
import { InboxService } from '../inbox/inbox.service';
import { NestSageLogger } from '../nest-sage-logger';
import { OUTBOX_BROKER } from '../outbox/outbox.options';
import { SageBrokerStartup } from '../startup/sage-broker-startup';
import type { StartingSubscriptions } from '../../core/startup/broker-startup';
import { OutboxRepository } from '../outbox/outbox.repository';
import {
  SAGA_COMMAND_HANDLER_METADATA,
  type SagaCommandHandlerMetadata,
  type SagaCommandHandlerMethod,
} from './saga-command-handler.decorator';

interface Endpoint extends ParticipantEndpoint<EntityManager> {
  readonly handlers: Map<string, SagaCommandHandlerEntry<EntityManager>>;
}

/**
 * Finds `@SagaCommandHandler` methods at module init (validating them), subscribes one consumer per
 * destination through the inbox on application bootstrap, and unsubscribes before shutdown. What a
 * command gets as its answer is the participant protocol's (core/remote/participant-protocol).
 */
@Injectable()
export class SagaCommandHandlerExplorer
  implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown
{
  readonly endpoints = new Map<string, Endpoint>();
  private readonly logger = new NestSageLogger('SageParticipant');
  private readonly subscriptions: InboxSubscriptions<EntityManager>;
  private starting: StartingSubscriptions | undefined;

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    private readonly inbox: InboxService,
    private readonly outbox: OutboxRepository,
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
    });
  }

  onModuleInit(): void {
    for (const { name, meta, method } of discoverDecoratedMethods<SagaCommandHandlerMetadata>(
      this.discovery,
      this.scanner,
      this.reflector,
      SAGA_COMMAND_HANDLER_METADATA,
      '@SagaCommandHandler',
      // On a controller too, as @IdempotentHandler (it used to be ignored there, silently).
      { controllers: true },
    )) {
      this.add(name, meta, method as SagaCommandHandlerMethod);
    }
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.options?.subscribe === false || !this.endpoints.size) return;
    const broker = this.broker;
    if (!broker) {
      this.logger.warn(
        `no broker configured: @SagaCommandHandler destinations ${[...this.endpoints.keys()].join(', ')} are not subscribed`,
        { event: 'saga.participant.subscribe_skipped' },
      );
      return;
    }
    const verify = signatureCheck(this.moduleOptions?.signing);
    const subscribe = () =>
      this.subscriptions.subscribe(
        broker,
        [...this.endpoints.values()].map((e) =>
          // `contracts.consumes`: a success result is checked against the command's `reply` schema.
          participantInboxEndpoint(
            e,
            this.outbox.publisher,
            verify,
            this.inbox.contracts?.incoming,
          ),
        ),
      );
    // A broker unreachable at startup ('degraded'): subscribed in the background once it is back.
    if (this.brokerStartup)
      this.starting = await this.brokerStartup.start(
        '@SagaCommandHandler subscriptions',
        subscribe,
      );
    else await subscribe();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.starting?.stop();
    await this.subscriptions.unsubscribeAll();
  }

  private add(name: string, meta: SagaCommandHandlerMetadata, run: SagaCommandHandlerMethod): void {
    const at = (field: string) => ({ option: '@SagaCommandHandler', field: `${name}: ${field}` });
    const type = requiredName(at('the command type'), meta.type);
    const destination = requiredName(
      at('options.destination (the topic / queue / subject commands arrive on)'),
      meta.options?.destination,
    );
    const { options } = meta;
    const consumer = options.consumer ?? destination;
    const endpoint: Endpoint = this.endpoints.get(destination) ?? {
      destination,
      consumer,
      maxAttempts: options.maxAttempts,
      handlers: new Map(),
    };
    if (endpoint.consumer !== consumer)
      throw invalidOption(
        '@SagaCommandHandler',
        `${name}: every handler on "${destination}" must use one consumer name; found "${endpoint.consumer}" and "${consumer}"`,
      );
    const other = endpoint.handlers.get(type);
    if (other)
      throw invalidOption(
        '@SagaCommandHandler',
        `${name}: command type "${type}" on "${destination}" is also handled by ${other.name}`,
      );
    const replyTo = options.replyTo;
    if (
      replyTo !== undefined &&
      typeof replyTo !== 'function' &&
      !(Array.isArray(replyTo) && replyTo.every((d) => typeof d === 'string' && d !== ''))
    )
      throw invalidOption(
        '@SagaCommandHandler',
        `${name}: options.replyTo must be a list of reply destinations or a function (replyTo) => boolean`,
      );
    endpoint.handlers.set(type, {
      name,
      replyTo,
      run: (command, { tx, messageId, consumer, attempt }) =>
        run(command, { manager: tx, messageId, consumer, attempt }),
    });
    this.endpoints.set(destination, endpoint);
  }
}
