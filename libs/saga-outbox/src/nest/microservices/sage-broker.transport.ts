import {
  BaseRpcContext,
  Server,
  type CustomTransportStrategy,
  type MessageHandler,
} from '@nestjs/microservices';
import { isObservable, lastValueFrom } from 'rxjs';
import { DeliveryDeferredError, InvalidOptionsError } from '../../core/errors';
import { errorText } from '../../core/error-text';
import { readableMessage } from '../../core/inbox/readable-message';
import {
  contractCheckedMessage,
  type IncomingContracts,
} from '../../core/inbox/contract-checked-message';
import { MessageRefusedError } from '../../core/inbox/message-refused';
import type { DataProtector } from '../../core/protection/data-protector';
import { DataUnreadableError } from '../../core/protection/protection-errors';
import { choiceOption, integerOption } from '../../core/options';
import type { Broker, DeliveredMessage, Subscription } from '../../core/ports/broker';
import {
  BrokerStartup,
  type BrokerStartupMode,
  type StartingSubscriptions,
} from '../../core/startup/broker-startup';
import { NestSageLogger } from '../nest-sage-logger';

export interface SageBrokerTransportOptions {
  /** The Sage Broker adapter to consume from (KafkaBroker, RabbitMqBroker, NatsJetStreamBroker, ...). */
  broker: Broker;
  /**
   * Consumer group of every `@EventPattern` subscription (instances with the same group share the
   * messages), or one per pattern. Default: the adapter's default (the destination).
   */
  group?: string | ((pattern: string) => string);
  /**
   * The broker cannot be reached when the app starts (`app.startAllMicroservices()`), as the
   * module's `brokerStartup`: `'degraded'` (default) starts anyway and subscribes in the background
   * once the broker is back (a WARN with the cause); `'wait'` retries `retryAttempts` ×
   * `retryDelay`, then fails with BrokerUnavailableError.
   */
  brokerStartup?: BrokerStartupMode;
  /** `'wait'`: probes after the first fails. Default 9. */
  retryAttempts?: number;
  /** Milliseconds between probes (`'wait'`), first wait between background attempts. Default 3000. */
  retryDelay?: number;
  /**
   * Decrypts each message's encrypted fields (`dataProtection`) before the handler, which gets
   * plaintext as `@Payload()`: pass the module's, `app.get(DATA_PROTECTOR)` (null when the module
   * has no `dataProtection`). Without it, a message marked `sage-encrypted` is unreadable: see
   * SageBrokerContext.getUnreadableError.
   */
  protector?: Pick<DataProtector<unknown>, 'openMessage'> | null;
  /**
   * Checks each message against the contracts this service accepts (`contracts.consumes`), after
   * decryption: pass the module's, `app.get(SAGE_CONTRACTS)?.incoming`. A message that does not
   * match (or declares a version not accepted) is handed over with SageBrokerContext.getUnreadableError
   * set, and `InboxService.handle` dead-letters it; a matching one arrives upcast.
   */
  contracts?: IncomingContracts | null;
}

/**
 * The `@Ctx()` of a handler run by SageBrokerTransport. `InboxService.handle(consumer, ctx, ...)`
 * reads the message id from `id`, and dead-letters an unreadable message (getUnreadableError).
 */
export class SageBrokerContext extends BaseRpcContext<[DeliveredMessage]> {
  constructor(
    args: [DeliveredMessage],
    private readonly unreadable?: DataUnreadableError | MessageRefusedError,
  ) {
    super(args);
  }

  /** The producer's message id (Sage: the outbox row id). */
  get id(): string {
    return this.args[0].id;
  }

  /** The whole delivered message: type, key, headers, time, deliveryAttempt. */
  getDeliveredMessage(): DeliveredMessage {
    return this.args[0];
  }

  /**
   * Why the message must not be handled, or undefined: its encrypted fields could not be decrypted
   * (DataUnreadableError: no key, an erased subject, tampered), or it does not match its contract
   * (MessageRefusedError `contract-invalid` / `contract-version-unknown`). When set, `@Payload()`
   * and getDeliveredMessage() are the message as received, and `InboxService.handle` dead-letters
   * it with this reason without running its handler: do the handler's work inside it.
   */
  getUnreadableError(): DataUnreadableError | MessageRefusedError | undefined {
    return this.unreadable;
  }
}

/**
 * A Nest microservices transport on top of a Sage Broker adapter, for `@EventPattern` handlers
 * that need what Nest's own transports do not give Sage's wire format, above all JetStream with
 * acknowledgements (Nest's `Transport.NATS` is core NATS: no ack, no redelivery):
 *
 * ```ts
 * app.connectMicroservice({ strategy: new SageBrokerTransport({ broker, group: 'payments' }) });
 *
 * @EventPattern('orders') // the destination
 * async onOrder(@Payload() order: OrderPlaced, @Ctx() ctx: SageBrokerContext): Promise<void> {
 *   await this.inbox.handle('payments.on-order', ctx, ({ manager }) => ...);
 * }
 * ```
 *
 * Each `@EventPattern` is one `broker.subscribe(pattern, ..., { group })`, so delivery is the
 * adapter's: the message is acknowledged only after the handler resolves (after the inbox
 * commit), redelivered when it throws, and a key's messages are handled one at a time, in order.
 * The handler receives the payload as `@Payload()`, decrypted with `protector` (`dataProtection`).
 * `@MessagePattern` (request/reply) is refused
 * at startup: Sage messages have no reply channel. A broker that cannot be reached at startup does
 * not fail it (see `brokerStartup`): the subscriptions are made once it is back.
 */
export class SageBrokerTransport extends Server implements CustomTransportStrategy {
  private subscriptions: Subscription[] = [];
  private readonly startup: BrokerStartup;
  private readonly mode: BrokerStartupMode;
  private starting: StartingSubscriptions | undefined;

  constructor(private readonly options: SageBrokerTransportOptions) {
    super();
    if (!options || typeof options.broker?.subscribe !== 'function')
      throw new InvalidOptionsError('SageBrokerTransport.broker', 'must be a Sage Broker adapter');
    this.mode = choiceOption(
      'SageBrokerTransport.brokerStartup',
      options.brokerStartup,
      ['degraded', 'wait'],
      'degraded',
    );
    this.startup = new BrokerStartup({
      broker: options.broker,
      mode: this.mode,
      retries: integerOption('SageBrokerTransport.retryAttempts', options.retryAttempts, {
        fallback: 9,
        min: 0,
        max: 1000,
      }),
      delayMs: integerOption('SageBrokerTransport.retryDelay', options.retryDelay, {
        fallback: 3000,
        min: 0,
        max: 600_000,
      }),
      logger: new NestSageLogger('SageBrokerTransport'),
    });
  }

  async listen(callback: (error?: unknown) => void): Promise<void> {
    try {
      for (const [pattern, handler] of this.messageHandlers) {
        if (!handler.isEventHandler)
          throw new InvalidOptionsError(
            `@MessagePattern('${pattern}')`,
            'SageBrokerTransport delivers events only (Sage messages have no reply channel): use @EventPattern',
          );
      }
      // 'degraded': no probe of its own (SagaOutboxModule probed the broker and said so once).
      this.starting = await this.startup.start(
        'SageBrokerTransport @EventPattern subscriptions',
        () => this.subscribeAll(),
        { probe: this.mode === 'wait' },
      );
    } catch (error) {
      await this.close();
      callback(error);
      return;
    }
    callback();
  }

  /** Stops delivery; resolves once no handler call is running. The broker stays open (it is yours). */
  async close(): Promise<void> {
    await this.starting?.stop();
    const subscriptions = this.subscriptions;
    this.subscriptions = [];
    await Promise.all(subscriptions.map((s) => s.unsubscribe()));
  }

  /** One subscription per `@EventPattern`, all or none (a failure undoes the ones made). */
  private async subscribeAll(): Promise<void> {
    const made: Subscription[] = [];
    try {
      for (const [pattern, handler] of this.messageHandlers) {
        const group =
          typeof this.options.group === 'function'
            ? this.options.group(pattern)
            : this.options.group;
        made.push(
          await this.options.broker.subscribe(
            pattern,
            (message) => this.dispatch(handler, message),
            group === undefined ? {} : { group },
          ),
        );
      }
    } catch (error) {
      await Promise.all(made.map((s) => s.unsubscribe().catch(() => undefined)));
      throw error;
    }
    this.subscriptions.push(...made);
  }

  on(): never {
    throw new Error(
      'SageBrokerTransport emits no status events; use the broker adapter’s health()',
    );
  }

  unwrap<T>(): T {
    return this.options.broker as T;
  }

  /**
   * Resolves when the handler (and any Observable it returned) completes; rejects → redelivery
   * (DeliveryDeferredError, not counted, when the subject key store cannot be reached).
   */
  private async dispatch(handler: MessageHandler, message: DeliveredMessage): Promise<void> {
    let readable: DeliveredMessage | DataUnreadableError;
    try {
      readable = await readableMessage(message, this.options.protector);
    } catch (error) {
      throw new DeliveryDeferredError(
        `message "${message.id}" could not be decrypted: ${errorText(error)}`,
        error,
      );
    }
    const checked =
      readable instanceof DataUnreadableError
        ? readable
        : contractCheckedMessage(readable, this.options.contracts);
    const context =
      checked instanceof DataUnreadableError || checked instanceof MessageRefusedError
        ? new SageBrokerContext([message], checked)
        : new SageBrokerContext([checked]);
    const result: unknown = await handler(context.getDeliveredMessage().payload, context);
    if (isObservable(result)) await lastValueFrom(result, { defaultValue: undefined });
  }
}
