import {
  Inject,
  Injectable,
  Optional,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { InboxSubscriptions } from '../../core/inbox/inbox-subscription';
import type { Broker } from '../../core/ports/broker';
import {
  DEFAULT_SAGA_REPLY_CONSUMER,
  sagaReplyDestination,
  sagaReplyInboxEndpoint,
} from '../../core/remote/reply-protocol';
import { SagaEngine } from '../../core/saga/saga-engine';
import { signatureCheck } from '../../core/signing/signing-options';
import { InboxService } from '../inbox/inbox.service';
import { NestSageLogger } from '../nest-sage-logger';
import { OUTBOX_BROKER } from '../outbox/outbox.options';
import { SageBrokerStartup } from '../startup/sage-broker-startup';
import type { StartingSubscriptions } from '../../core/startup/broker-startup';
import { SAGA_OUTBOX_OPTIONS } from '../saga-outbox.module-definition';
import type { SagaOutboxModuleOptions } from '../saga-outbox.options';

export { DEFAULT_SAGA_REPLY_CONSUMER };

/**
 * The orchestrator's side of remote steps, wired: consumes `saga.replyTo` through the inbox (when
 * some registered saga has a remote step and `autoStart` is not false) from application bootstrap
 * to shutdown. What a reply does to its waiting step is the reply protocol's
 * (core/remote/reply-protocol); a reply that is not a valid Sage reply fails its inbox attempts
 * and is dead-lettered; one that answers no command Sage sent, or (with `signing.require`) is not
 * correctly signed, is dead-lettered at once.
 */
@Injectable()
export class SagaReplyConsumer implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new NestSageLogger('Sage');
  private readonly subscriptions: InboxSubscriptions<EntityManager>;
  private starting: StartingSubscriptions | undefined;
  readonly consumer: string;

  constructor(
    private readonly engine: SagaEngine<EntityManager>,
    private readonly inbox: InboxService,
    @Inject(SAGA_OUTBOX_OPTIONS) private readonly options: SagaOutboxModuleOptions,
    @Optional() @Inject(OUTBOX_BROKER) private readonly broker?: Broker | null,
    @Optional() private readonly brokerStartup?: SageBrokerStartup,
  ) {
    this.consumer = options.saga?.replyConsumer ?? DEFAULT_SAGA_REPLY_CONSUMER;
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

  async onApplicationBootstrap(): Promise<void> {
    if (this.options.autoStart === false) return;
    const replyTo = sagaReplyDestination(this.engine);
    if (!replyTo) return;
    if (!this.broker) {
      this.logger.warn(
        `no broker configured: saga replies on "${replyTo}" are not consumed, so remote steps only end by timing out`,
        { event: 'saga.replies.subscribe_skipped' },
      );
      return;
    }
    const broker = this.broker;
    const subscribe = () =>
      this.subscriptions.subscribe(broker, [
        sagaReplyInboxEndpoint(
          this.engine,
          replyTo,
          this.consumer,
          signatureCheck(this.options.signing),
          // `contracts.publishes`: success results checked against the sent command's `reply` schema.
          this.inbox.contracts?.outgoing,
        ),
      ]);
    // A broker unreachable at startup ('degraded'): subscribed in the background once it is back.
    if (this.brokerStartup)
      this.starting = await this.brokerStartup.start(`saga replies on "${replyTo}"`, subscribe);
    else await subscribe();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.starting?.stop();
    await this.subscriptions.unsubscribeAll();
  }
}
