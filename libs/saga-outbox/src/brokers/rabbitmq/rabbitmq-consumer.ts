import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import { DeliveryDeferredError } from '../../core/errors';
import { errorText } from '../../core/error-text';
import type { BrokerUnavailableError } from '../../core/outbox/outbox-errors';
import type {
  BrokerMessage,
  DeadLetterReason,
  DeliveredMessage,
  DeliveryBatchHandler,
} from '../../core/ports/broker';
import { abortableSleep as sleep } from '../abortable-sleep';
import { exponentialDelay } from '../backoff';
import { withTimeout } from '../../core/with-timeout';
import { deadLetterHeaders, type DeadLetterReporter } from '../dead-letters';
import { fromAmqpMessage } from './rabbitmq-message-codec';
import type { RabbitMqSettings } from './rabbitmq-settings';
import { assertQueueTopology } from './rabbitmq-topology';

export interface RabbitMqConsumerContext {
  manager: AmqpConnectionManager;
  settings: RabbitMqSettings;
  /** The error for "RabbitMQ is not there", with the connection's last problem. */
  unavailable: (detail: string) => BrokerUnavailableError;
  deadLetters: DeadLetterReporter;
}

type Channel = ConfirmChannel;

/** A delivery as received: the channel that delivered it (to ack on), the raw and decoded message. */
interface Received {
  channel: Channel;
  raw: ConsumeMessage;
  decoded: BrokerMessage;
}

/** Deliveries gathered for the batch handler; it holds their keys until it settles. */
interface OpenBatch {
  items: Received[];
  keys: Set<string>;
  run: Promise<void>;
  start: () => void;
}

/**
 * One subscription: a consumer channel on `queue` (re-opened, re-declared and re-consumed by
 * amqp-connection-manager on reconnect), acking after the handler resolves. A failed handler is
 * retried in-process with back-off while its key is held (later messages of the key wait), so
 * per-key order survives handler failures. A message that cannot be handed over
 * (inbound-message.ts), and one whose handler failed `maxDeliveries` counted times
 * (DeliveryDeferredError failures not counted), is published through the DLX to `${queue}.dlq`
 * with its reason in `sage-dead-letter-*` headers (confirmed), then acked; if that publish fails it
 * goes back to the queue. If the consumer stops or its channel closes while waiting to retry, the
 * message goes back to the broker (requeue), and order across that redelivery is the broker's.
 *
 * With a batch handler (SubscribeOptions.batch), first deliveries (never delivered before) whose
 * key is not held by a running message are gathered while they arrive in one I/O turn (up to its
 * `maxSize`) and handed over together; the batch holds every key it contains until it settles,
 * and later deliveries of those keys wait for it, so per-key order holds. When it resolves true
 * each message is acked; when it resolves false or rejects, its messages go through the
 * per-message path (retries, dead letters) in delivery order per key.
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
  /** The batch still gathering deliveries (SubscribeOptions.batch), if any. */
  private open: OpenBatch | undefined;

  constructor(
    private readonly context: RabbitMqConsumerContext,
    private readonly destination: string,
    private readonly queue: string,
    private readonly handler: (message: DeliveredMessage) => Promise<void>,
    private readonly maxDeliveries: number,
    private readonly batch?: DeliveryBatchHandler,
  ) {}

  /** Opens the consumer channel and starts consuming; rejects (channel closed) if it cannot within the operation timeout. */
  async start(): Promise<void> {
    const { manager, settings } = this.context;
    const { name, logger } = settings;
    let current: Channel | undefined;
    const wrapper = (this.wrapper = manager.createChannel({
      name: `${name}-consumer-${this.queue}`,
      // Confirms: a dead letter is acked away only once the broker confirmed its copy.
      confirm: true,
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
    const inbound = fromAmqpMessage(raw, this.context.settings.maxMessageBytes);
    if (!inbound.ok) {
      const { reason, detail, messageId } = inbound.poison;
      this.track(null, () =>
        this.deadLetter(channel, raw, { reason, detail, messageId, attempts: 0 }),
      );
      return;
    }
    const decoded = inbound.message;
    if (this.batch && this.joinBatch({ channel, raw, decoded })) return;
    this.track(decoded.key, () => this.handleDelivery(channel, raw, decoded));
  }

  /**
   * Adds a first delivery to the open batch (opening one), unless its key is held by a message
   * outside that batch or it was delivered before (its attempt count is the per-message path's).
   * False: the caller handles it on its own.
   */
  private joinBatch(received: Received): boolean {
    const { raw, decoded } = received;
    const quorum = this.context.settings.queueType === 'quorum';
    if (this.firstAttempt(raw, decoded, quorum) !== 1) return false;
    const key = decoded.key;
    let open = this.open;
    // Held by anything but the open batch (a message before it, or one queued behind it): wait.
    const tail = key === null ? undefined : this.tails.get(key);
    if (tail !== undefined && tail !== open?.run) return false;
    if (!open) open = this.openBatch();
    open.items.push(received);
    if (key !== null && !open.keys.has(key)) {
      open.keys.add(key);
      this.tails.set(key, open.run);
    }
    if (open.items.length >= this.batchLimit()) open.start();
    return true;
  }

  /**
   * Most deliveries per batch: the handler's `maxSize`, and at most a quarter of the prefetch
   * window, so that while one batch runs (its messages unacked) the broker still delivers enough
   * for others to run beside it, as messages of different keys do one by one.
   */
  private batchLimit(): number {
    return Math.max(
      2,
      Math.min(this.batch!.maxSize, Math.floor(this.context.settings.prefetch / 4)),
    );
  }

  /** A new batch: it starts after the deliveries of this I/O turn, or once full. */
  private openBatch(): OpenBatch {
    let start!: () => void;
    const started = new Promise<void>((resolve) => (start = resolve));
    const batch: OpenBatch = {
      items: [],
      keys: new Set(),
      start: () => {
        if (this.open === batch) this.open = undefined;
        start();
      },
      run: started.then(() => this.runBatch(batch.items)),
    };
    this.open = batch;
    setImmediate(batch.start);
    this.running.add(batch.run);
    void batch.run.finally(() => {
      this.running.delete(batch.run);
      for (const key of batch.keys) if (this.tails.get(key) === batch.run) this.tails.delete(key);
    });
    return batch;
  }

  /**
   * Hands the deliveries to the batch handler and acks them all when it took them; otherwise
   * handles each through the per-message path, one key after another in delivery order (different
   * keys at once, as they would have run).
   */
  private async runBatch(items: readonly Received[]): Promise<void> {
    const handed =
      this.active &&
      items.length > 1 &&
      (await this.batch!.handle(items.map((i) => ({ ...i.decoded, deliveryAttempt: 1 }))).catch(
        (error: unknown) => {
          this.context.settings.logger.debug('rabbitmq batch handler failed; one by one now', {
            broker: this.context.settings.name,
            queue: this.queue,
            messages: items.length,
            error: errorText(error),
          });
          return false;
        },
      )) === true;
    if (handed) {
      for (const { channel, raw } of items) settle(() => channel.ack(raw));
      return;
    }
    // Per key in delivery order; a message without a key is a lane of its own (they run at once).
    const lanes = new Map<string | Received, Received[]>();
    for (const item of items) {
      const lane = item.decoded.key ?? item;
      lanes.set(lane, [...(lanes.get(lane) ?? []), item]);
    }
    await Promise.all(
      [...lanes.values()].map(async (lane) => {
        for (const { channel, raw, decoded } of lane)
          await this.handleDelivery(channel, raw, decoded);
      }),
    );
  }

  /** Runs `work` after the previous work of `key` (none for null), tracked until it settles. */
  private track(key: string | null, work: () => Promise<void>): void {
    const previous = key === null ? undefined : this.tails.get(key);
    const run = (async () => {
      if (previous) await previous;
      await work();
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
    // Earlier deliveries are counted; failures deferred here (the inbox store was down) are not.
    let counted = attempt - 1;
    for (;;) {
      if (!this.active || this.closedChannels.has(channel)) {
        settle(() => channel.nack(raw, false, true));
        return;
      }
      try {
        await this.handler({ ...decoded, deliveryAttempt: attempt });
        break;
      } catch (error) {
        if (!(error instanceof DeliveryDeferredError)) counted++;
        if (counted >= this.maxDeliveries) {
          this.failures.delete(decoded.id);
          await this.deadLetter(channel, raw, {
            reason: 'max-deliveries',
            detail: `the handler failed ${counted} times (maxDeliveries ${this.maxDeliveries}); last error: ${errorText(error)}`,
            messageId: decoded.id,
            attempts: attempt,
          });
          return;
        }
        const delayMs = exponentialDelay(
          attempt,
          settings.redeliveryDelayMs,
          settings.maxRedeliveryDelayMs,
        );
        this.logFailure(decoded, attempt, delayMs, error);
        // Classic queues do not count deliveries: a requeue after this keeps the attempt number.
        if (!quorum) remember(this.failures, decoded.id, attempt);
        await sleep(delayMs, this.stopping.signal);
        attempt++;
      }
    }
    this.failures.delete(decoded.id);
    settle(() => channel.ack(raw));
  }

  /**
   * Publishes the message as received, plus the `sage-dead-letter-*` headers, through the DLX to
   * `${queue}.dlq`, waits for the broker's confirm, then acks the original. If the publish is not
   * confirmed the original goes back to the queue (after the redelivery delay) and comes back.
   */
  private async deadLetter(
    channel: Channel,
    raw: ConsumeMessage,
    what: { reason: DeadLetterReason; detail: string; messageId: string; attempts: number },
  ): Promise<void> {
    const { settings, deadLetters } = this.context;
    const event = {
      broker: settings.name,
      destination: this.destination,
      group: this.queue,
      deadLetterDestination: `${this.queue}.dlq`,
      ...what,
    };
    const p = raw.properties;
    // Not userId (the broker checks it against the connection's user) nor expiration.
    const properties: Options.Publish = {
      contentType: p.contentType as string | undefined,
      contentEncoding: p.contentEncoding as string | undefined,
      messageId: p.messageId as string | undefined,
      type: p.type as string | undefined,
      timestamp: p.timestamp as number | undefined,
      correlationId: p.correlationId as string | undefined,
      appId: p.appId as string | undefined,
      headers: { ...(p.headers ?? {}), ...deadLetterHeaders(event) },
      persistent: true,
    };
    try {
      await new Promise<void>((resolve, reject) => {
        channel.publish(settings.dlx, this.queue, raw.content, properties, (error) =>
          error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(),
        );
      });
    } catch (error) {
      settings.logger.error(
        'rabbitmq dead letter was not confirmed; the message goes back to the queue',
        {
          broker: settings.name,
          queue: this.queue,
          reason: what.reason,
          error: errorText(error),
        },
      );
      await sleep(settings.redeliveryDelayMs, this.stopping.signal);
      settle(() => channel.nack(raw, false, true));
      return;
    }
    settle(() => channel.ack(raw));
    deadLetters.report(event);
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
    delayMs: number,
    error: unknown,
  ): void {
    const { name, logger } = this.context.settings;
    logger.warn('rabbitmq handler failed; retrying it (later messages of its key wait)', {
      broker: name,
      queue: this.queue,
      messageId: decoded.id,
      type: decoded.type,
      key: decoded.key,
      deliveryAttempt: attempt,
      maxDeliveries: this.maxDeliveries,
      retryInMs: delayMs,
      error: errorText(error),
    });
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
