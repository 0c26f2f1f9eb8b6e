import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { Channel, ConsumeMessage } from 'amqplib';
import { errorText } from '../../core/error-text';
import type { BrokerPublishError } from '../../core/outbox/outbox-errors';
import type { BrokerMessage, DeliveredMessage } from '../../core/ports/broker';
import { abortableSleep as sleep } from '../abortable-sleep';
import { exponentialDelay } from '../backoff';
import { withTimeout } from '../../core/with-timeout';
import { fromAmqpMessage } from './rabbitmq-message-codec';
import type { RabbitMqSettings } from './rabbitmq-settings';
import { assertQueueTopology } from './rabbitmq-topology';

export interface RabbitMqConsumerContext {
  manager: AmqpConnectionManager;
  settings: RabbitMqSettings;
  /** The error for "RabbitMQ is not there", with the connection's last problem. */
  unavailable: (detail: string) => BrokerPublishError;
}

/**
 * One subscription: a consumer channel on `queue` (re-opened, re-declared and re-consumed by
 * amqp-connection-manager on reconnect), acking after the handler resolves. A failed handler is
 * retried in-process with back-off while its key is held (later messages of the key wait), so
 * per-key order survives handler failures; after `maxDeliveries` attempts the message is
 * dead-lettered. If the consumer stops or its channel closes while waiting to retry, the message
 * goes back to the broker (requeue), and order across that redelivery is the broker's.
 */
export class RabbitMqConsumer {
  private active = true;
  /** Aborted on stop: wakes handlers waiting to retry, which hand their message back. */
  private readonly stopping = new AbortController();
  /** Channels that closed (connection lost): their deliveries are the broker's to redeliver now. */
  private readonly closedChannels = new WeakSet<Channel>();
  private readonly running = new Set<Promise<void>>();
  /** Tail of the handler chain per key: same key → handled in delivery order. */
  private readonly tails = new Map<string, Promise<void>>();
  /** Failures per message id (classic queues only; quorum queues count in the broker). */
  private readonly failures = new Map<string, number>();
  private wrapper: ChannelWrapper | undefined;
  private consumerTag: string | undefined;

  constructor(
    private readonly context: RabbitMqConsumerContext,
    private readonly destination: string,
    private readonly queue: string,
    private readonly handler: (message: DeliveredMessage) => Promise<void>,
  ) {}

  /** Opens the consumer channel and starts consuming; rejects (channel closed) if it cannot within the operation timeout. */
  async start(): Promise<void> {
    const { manager, settings } = this.context;
    const { name, logger } = settings;
    let current: Channel | undefined;
    const wrapper = (this.wrapper = manager.createChannel({
      name: `${name}-consumer-${this.queue}`,
      confirm: false,
      setup: async (channel: Channel) => {
        channel.on('error', (error: unknown) =>
          logger.warn('rabbitmq consumer channel error', {
            broker: name,
            queue: this.queue,
            error: errorText(error),
          }),
        );
        channel.on('close', () => this.closedChannels.add(channel));
        current = channel;
        await assertQueueTopology(channel, settings, this.destination, this.queue);
      },
    }));
    wrapper.on('error', (error: unknown) =>
      logger.error('rabbitmq consumer setup failed', {
        broker: name,
        queue: this.queue,
        error: errorText(error),
      }),
    );
    try {
      ({ consumerTag: this.consumerTag } = await withTimeout(
        wrapper.consume(
          this.queue,
          (raw) => {
            // Acks go to the channel that delivered the message: a delivery tag means nothing on the
            // channel that replaced it after a reconnect (the broker redelivers those anyway).
            const channel = current;
            if (channel) this.onDelivery(channel, raw);
          },
          { prefetch: settings.prefetch, noAck: false },
        ),
        settings.operationTimeoutMs,
        () => this.context.unavailable(`could not start consuming "${this.queue}"`),
      ));
    } catch (error) {
      await wrapper.close().catch(() => undefined);
      throw error;
    }
  }

  /** Stops delivery; resolves once no handler runs. Prefetched, unhandled messages go back to the queue. */
  async stop(): Promise<void> {
    this.active = false;
    this.stopping.abort();
    const wrapper = this.wrapper;
    if (!wrapper) return;
    if (this.consumerTag !== undefined)
      await wrapper.cancel(this.consumerTag).catch(() => undefined);
    while (this.running.size) await Promise.allSettled([...this.running]);
    // Closing the channel returns any prefetched, unhandled messages to the queue.
    await wrapper.close().catch(() => undefined);
  }

  private onDelivery(channel: Channel, raw: ConsumeMessage): void {
    if (!this.active) {
      settle(() => channel.nack(raw, false, true));
      return;
    }
    const decoded = fromAmqpMessage(raw);
    if (!decoded) {
      this.context.settings.logger.error(
        'rabbitmq message is not a Sage message; dead-lettering it',
        {
          broker: this.context.settings.name,
          queue: this.queue,
          messageId: raw.properties.messageId as unknown,
        },
      );
      settle(() => channel.nack(raw, false, false));
      return;
    }
    const key = decoded.key;
    const previous = key === null ? undefined : this.tails.get(key);
    const run = (async () => {
      if (previous) await previous;
      await this.handleDelivery(channel, raw, decoded);
    })();
    this.running.add(run);
    if (key !== null) this.tails.set(key, run);
    void run.finally(() => {
      this.running.delete(run);
      if (key !== null && this.tails.get(key) === run) this.tails.delete(key);
    });
  }

  /**
   * Runs the handler until it resolves (ack), failing `maxDeliveries` times in all (dead-letter),
   * or the consumer stops / its channel closes while waiting to retry (requeue: the broker
   * redelivers). Retries happen here, not through a requeue, because the caller holds the message's
   * key until this returns: a requeued message would be overtaken by the next of its key.
   */
  private async handleDelivery(
    channel: Channel,
    raw: ConsumeMessage,
    decoded: BrokerMessage,
  ): Promise<void> {
    const { settings } = this.context;
    const quorum = settings.queueType === 'quorum';
    let attempt = this.firstAttempt(raw, decoded, quorum);
    for (;;) {
      if (!this.active || this.closedChannels.has(channel)) {
        settle(() => channel.nack(raw, false, true));
        return;
      }
      try {
        await this.handler({ ...decoded, deliveryAttempt: attempt });
        break;
      } catch (error) {
        const poison = attempt >= settings.maxDeliveries;
        const delayMs = poison
          ? 0
          : exponentialDelay(attempt, settings.redeliveryDelayMs, settings.maxRedeliveryDelayMs);
        this.logFailure(decoded, attempt, poison, delayMs, error);
        if (poison) {
          this.failures.delete(decoded.id);
          settle(() => channel.nack(raw, false, false));
          return;
        }
        // Classic queues do not count deliveries: a requeue after this keeps the attempt number.
        if (!quorum) remember(this.failures, decoded.id, attempt);
        await sleep(delayMs, this.stopping.signal);
        attempt++;
      }
    }
    this.failures.delete(decoded.id);
    settle(() => channel.ack(raw));
  }

  /** Quorum queues count deliveries in the broker (`x-delivery-count`); classic queues here, in-process. */
  private firstAttempt(raw: ConsumeMessage, decoded: BrokerMessage, quorum: boolean): number {
    if (quorum) {
      const brokerCount = raw.properties.headers?.['x-delivery-count'] as unknown;
      return (typeof brokerCount === 'number' ? brokerCount : 0) + 1;
    }
    return (this.failures.get(decoded.id) ?? (raw.fields.redelivered ? 1 : 0)) + 1;
  }

  private logFailure(
    decoded: BrokerMessage,
    attempt: number,
    poison: boolean,
    delayMs: number,
    error: unknown,
  ): void {
    const { name, logger, maxDeliveries } = this.context.settings;
    logger[poison ? 'error' : 'warn'](
      poison
        ? 'rabbitmq handler failed too often; dead-lettering the message'
        : 'rabbitmq handler failed; retrying it (later messages of its key wait)',
      {
        broker: name,
        queue: this.queue,
        messageId: decoded.id,
        type: decoded.type,
        key: decoded.key,
        deliveryAttempt: attempt,
        maxDeliveries,
        ...(poison ? {} : { retryInMs: delayMs }),
        error: errorText(error),
      },
    );
  }
}

/** ack / nack on a channel that may have closed since delivery: the broker redelivers then, so ignore. */
function settle(action: () => void): void {
  try {
    action();
  } catch {
    // IllegalOperationError: channel closed; the message is requeued by the broker.
  }
}

/** Bounded memory for in-process failure counts (classic queues). */
function remember(failures: Map<string, number>, id: string, count: number): void {
  failures.delete(id);
  failures.set(id, count);
  if (failures.size > 10_000) {
    const oldest = failures.keys().next().value;
    if (oldest !== undefined) failures.delete(oldest);
  }
}
