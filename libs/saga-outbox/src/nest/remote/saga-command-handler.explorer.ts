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
import { deliveredMessageSnapshot } from '../../core/inbox/delivered-message-snapshot';
import type { Broker, DeliveredMessage, Subscription } from '../../core/ports/broker';
import {
  parseSagaCommand,
  sagaReplyMessage,
  type SagaReplyOutcome,
} from '../../core/saga/saga-command';
import { INBOX_OPTIONS, type InboxModuleOptions } from '../inbox/inbox.options';
import { InboxService } from '../inbox/inbox.service';
import { discoverDecoratedMethods } from '../discover-methods';
import { NestSageLogger } from '../nest-sage-logger';
import { OUTBOX_BROKER, OutboxRepository } from '../outbox/outbox.providers';
import {
  isRejection,
  SAGA_COMMAND_HANDLER_METADATA,
  type SagaCommandHandlerMetadata,
  type SagaCommandHandlerMethod,
} from './saga-command-handler.decorator';

interface Endpoint {
  destination: string;
  consumer: string;
  maxAttempts: number | undefined;
  /** Handler per command type. */
  handlers: Map<string, { name: string; run: SagaCommandHandlerMethod }>;
}

/**
 * Finds `@SagaCommandHandler` methods at module init (validating them), subscribes one consumer per
 * destination on application bootstrap, and answers every command: the handler's result (or
 * rejection) becomes the reply, written to the outbox in the inbox transaction. A command of a
 * type no handler declares is answered with a failure, so the saga compensates instead of waiting.
 */
@Injectable()
export class SagaCommandHandlerExplorer
  implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown
{
  readonly endpoints = new Map<string, Endpoint>();
  private subscriptions: Subscription[] = [];
  private readonly logger = new NestSageLogger('SageParticipant');

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    private readonly inbox: InboxService,
    private readonly outbox: OutboxRepository,
    @Optional() @Inject(OUTBOX_BROKER) private readonly broker?: Broker | null,
    @Optional() @Inject(INBOX_OPTIONS) private readonly options?: InboxModuleOptions,
  ) {}

  onModuleInit(): void {
    for (const { name, meta, method } of discoverDecoratedMethods<SagaCommandHandlerMetadata>(
      this.discovery,
      this.scanner,
      this.reflector,
      SAGA_COMMAND_HANDLER_METADATA,
      '@SagaCommandHandler',
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
    try {
      for (const endpoint of this.endpoints.values()) {
        this.subscriptions.push(
          await broker.subscribe(
            endpoint.destination,
            // The command's traceparent makes the handler (and its reply) part of the saga's trace.
            (m) =>
              this.inbox.tracer.inboxHandling(endpoint.consumer, m.id, m, () =>
                this.deliver(endpoint, m),
              ),
            { group: endpoint.consumer },
          ),
        );
      }
    } catch (error) {
      await this.beforeApplicationShutdown();
      throw error;
    }
  }

  async beforeApplicationShutdown(): Promise<void> {
    const subscriptions = this.subscriptions;
    this.subscriptions = [];
    await Promise.all(subscriptions.map((s) => s.unsubscribe()));
  }

  private add(name: string, meta: SagaCommandHandlerMetadata, run: SagaCommandHandlerMethod): void {
    const { type, options } = meta;
    const fail = (problem: string): never => {
      throw new InvalidOptionsError('@SagaCommandHandler', `${name}: ${problem}`);
    };
    if (typeof type !== 'string' || type.trim() === '')
      fail('the command type must be a non-empty string');
    if (typeof options?.destination !== 'string' || options.destination.trim() === '')
      fail('options.destination (the topic / queue / subject commands arrive on) is required');
    const consumer = options.consumer ?? options.destination;
    const endpoint: Endpoint = this.endpoints.get(options.destination) ?? {
      destination: options.destination,
      consumer,
      maxAttempts: options.maxAttempts,
      handlers: new Map(),
    };
    if (endpoint.consumer !== consumer)
      fail(
        `every handler on "${options.destination}" must use one consumer name; found "${endpoint.consumer}" and "${consumer}"`,
      );
    const other = endpoint.handlers.get(type);
    if (other)
      fail(`command type "${type}" on "${options.destination}" is also handled by ${other.name}`);
    endpoint.handlers.set(type, { name, run });
    this.endpoints.set(options.destination, endpoint);
  }

  private async deliver(endpoint: Endpoint, message: DeliveredMessage): Promise<void> {
    try {
      await this.inbox.processor.process(
        {
          consumer: endpoint.consumer,
          messageId: message.id,
          message: deliveredMessageSnapshot(message),
        },
        async ({ tx, messageId, consumer, attempt }) => {
          const command = parseSagaCommand(message);
          const handler = endpoint.handlers.get(message.type);
          let outcome: SagaReplyOutcome;
          if (!handler) {
            outcome = {
              ok: false,
              error: `no handler for command type "${message.type}" on "${endpoint.destination}"`,
            };
          } else {
            const value = await handler.run(command, { manager: tx, messageId, consumer, attempt });
            outcome = isRejection(value)
              ? { ok: false, error: value.reason }
              : { ok: true, result: value ?? null };
          }
          await this.outbox.publish(sagaReplyMessage(command, outcome), { manager: tx });
        },
        { maxAttempts: endpoint.maxAttempts },
      );
    } catch (error) {
      if (!(error instanceof InboxHandlerFailedError)) {
        this.logger.error(`command on "${endpoint.destination}" could not be taken`, {
          event: 'saga.participant.delivery_error',
          consumer: endpoint.consumer,
          messageId: message.id,
          error: error instanceof Error ? error.message : String(error),
        });
      }
      throw error;
    }
  }
}
