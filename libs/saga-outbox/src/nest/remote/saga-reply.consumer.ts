import {
  Inject,
  Injectable,
  Optional,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { InboxHandlerFailedError } from '../../core/inbox/inbox-errors';
import type { Broker, DeliveredMessage, Subscription } from '../../core/ports/broker';
import { parseSagaReply, type SagaReply } from '../../core/saga/saga-command';
import { SagaEngine } from '../../core/saga/saga-engine';
import { InboxService } from '../inbox/inbox.service';
import { NestSageLogger } from '../nest-sage-logger';
import { OUTBOX_BROKER } from '../outbox/outbox.providers';
import { SAGA_OUTBOX_OPTIONS } from '../saga-outbox.module-definition';
import type { SagaOutboxModuleOptions } from '../saga-outbox.options';

/** Default inbox consumer (and broker consumer group) of saga replies. */
export const DEFAULT_SAGA_REPLY_CONSUMER = 'sage.saga-replies';

/**
 * The orchestrator's side of remote steps: consumes `saga.replyTo` (when some registered saga has a
 * remote step), applies each reply once (inbox) in one transaction with the step's new state, then
 * wakes the engine so the saga resumes at once. A reply that is not a valid Sage reply fails its
 * inbox attempts and is dead-lettered.
 */
@Injectable()
export class SagaReplyConsumer implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private subscription: Subscription | undefined;
  private readonly logger = new NestSageLogger('Sage');
  readonly consumer: string;

  constructor(
    private readonly engine: SagaEngine<EntityManager>,
    private readonly inbox: InboxService,
    @Inject(SAGA_OUTBOX_OPTIONS) private readonly options: SagaOutboxModuleOptions,
    @Optional() @Inject(OUTBOX_BROKER) private readonly broker?: Broker | null,
  ) {
    this.consumer = options.saga?.replyConsumer ?? DEFAULT_SAGA_REPLY_CONSUMER;
  }

  async onApplicationBootstrap(): Promise<void> {
    const replyTo = this.engine.replyTo;
    if (this.options.autoStart === false || !replyTo) return;
    const remote = this.engine.sagaNames.some((name) =>
      [...(this.engine.definition(name)?.steps.values() ?? [])].some((s) => s.kind === 'remote'),
    );
    if (!remote) return;
    if (!this.broker) {
      this.logger.warn(
        `no broker configured: saga replies on "${replyTo}" are not consumed, so remote steps only end by timing out`,
        { event: 'saga.replies.subscribe_skipped' },
      );
      return;
    }
    this.subscription = await this.broker.subscribe(
      replyTo,
      (m) => this.inbox.tracer.inboxHandling(this.consumer, m.id, m, () => this.deliver(m)),
      { group: this.consumer },
    );
  }

  async beforeApplicationShutdown(): Promise<void> {
    const subscription = this.subscription;
    this.subscription = undefined;
    await subscription?.unsubscribe();
  }

  private async deliver(message: DeliveredMessage): Promise<void> {
    try {
      let reply: SagaReply | undefined;
      const result = await this.inbox.processor.process(
        { consumer: this.consumer, messageId: message.id },
        ({ tx }) => this.engine.applyReply(tx, (reply = parseSagaReply(message))),
      );
      // Committed: report the step's outcome; the woken saga is claimable now.
      if (result.outcome === 'processed' && result.value && reply)
        this.engine.replyCommitted(reply, result.value);
    } catch (error) {
      if (!(error instanceof InboxHandlerFailedError)) {
        this.logger.error('saga reply could not be taken', {
          event: 'saga.replies.delivery_error',
          messageId: message.id,
          error: error instanceof Error ? error.message : String(error),
        });
      }
      throw error;
    }
  }
}
