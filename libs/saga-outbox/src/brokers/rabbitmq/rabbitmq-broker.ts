import amqp, { type AmqpConnectionManager, type ChannelWrapper } from 'amqp-connection-manager';
import type { Channel, ConfirmChannel, ConsumeMessage, Message, Options } from 'amqplib';
import { InvalidOptionsError, SagaOutboxError } from '../../core/errors';
import type { JsonValue } from '../../core/json';
import { BrokerPublishError } from '../../core/outbox/outbox-errors';
import type {
  Broker,
  BrokerHealth,
  BrokerMessage,
  DeliveredMessage,
  PublishResult,
  SubscribeOptions,
  Subscription,
} from '../../core/ports/broker';
import { type SageLogger, silentLogger } from '../../core/ports/logger';
import { abortableSleep as sleep } from '../abortable-sleep';

export interface RabbitMqBrokerOptions {
  /** One AMQP URL, or several (tried round-robin on reconnect). */
  url: string | string[];
  /** Broker name in results, errors and logs. Default `rabbitmq`. */
  name?: string;
  /** Durable topic exchange every message is published to; the destination is the routing key. Default `sage`. */
  exchange?: string;
  /** Durable direct exchange poison messages go to (routing key = queue name). Default `${exchange}.dlx`. */
  deadLetterExchange?: string;
  /**
   * Queue type for consumer queues. Default `quorum`: replicated, and the broker counts deliveries
   * (`x-delivery-count`), so `deliveryAttempt` survives consumer restarts. `classic` counts in-process.
   */
  queueType?: 'quorum' | 'classic';
  /**
   * Queue name for (destination, group). Default: `destination` without a group,
   * `${group}.${destination}` with one — a group is scoped to its destination, as in the port
   * (one queue per group shared by two destinations would hand one handler the other's messages).
   */
  queueName?: (destination: string, group: string | undefined) => string;
  /** Unacknowledged deliveries per subscription. Default 32. Handlers run concurrently across keys, in order within a key. */
  prefetch?: number;
  /**
   * Attempts at one message (in-process retries included) before a failing handler sends it to the
   * dead-letter queue. Default 5.
   */
  maxDeliveries?: number;
  /**
   * Wait before a failed handler is retried (in-process, holding the message's key), doubling per
   * attempt. Default 200.
   */
  redeliveryDelayMs?: number;
  /** Upper bound of the retry wait. Default 5000. */
  maxRedeliveryDelayMs?: number;
  /** How long a publish waits for its confirm (including while reconnecting) before failing, retryable. Default 10000. */
  publishTimeoutMs?: number;
  /** Timeout of topology declarations and of the health check's passive probe. Default 5000. */
  operationTimeoutMs?: number;
  /**
   * Whether an unroutable message (no queue bound to its destination yet) is reported retryable.
   * Default true: a consumer service that is not deployed yet will declare its queue, so the relay
   * should retry with backoff rather than dead-letter at once. Set false when every destination's
   * queue is declared up front (`declareDestinations`), making "unroutable" a permanent mistake.
   */
  unroutableRetryable?: boolean;
  /** Destinations (optionally with a group) whose queues are declared on every connect, before any publish. */
  declareDestinations?: (string | { destination: string; group?: string })[];
  /** CloudEvents `source` when the message headers carry no `ce-source`. Default `sage`. */
  source?: string;
  /** AMQP heartbeat. Default 5 s. */
  heartbeatIntervalInSeconds?: number;
  /** Delay between reconnect attempts. Default 1 s. */
  reconnectTimeInSeconds?: number;
  logger?: SageLogger;
}

/** Declaring a queue, exchange or binding failed (e.g. it exists with other arguments). */
export class RabbitMqTopologyError extends SagaOutboxError {
  constructor(
    readonly broker: string,
    what: string,
    options?: { cause?: unknown },
  ) {
    super(
      'BROKER_TOPOLOGY_FAILED',
      `Broker "${broker}": could not declare ${what}: ${reason(options?.cause)}. ` +
        'If it exists with other arguments (type, dead-letter exchange, queue type), delete it or use another name.',
      options,
    );
  }
}

/** Headers the broker adds on delivery; not part of the message as published. */
const BROKER_HEADERS = new Set([
  'x-delivery-count',
  'x-death',
  'x-first-death-exchange',
  'x-first-death-queue',
  'x-first-death-reason',
  'x-last-death-exchange',
  'x-last-death-queue',
  'x-last-death-reason',
]);

interface Consumer {
  active: boolean;
  /** Aborted on unsubscribe: wakes handlers waiting to retry, which hand their message back. */
  stopping: AbortController;
  /** Channels that closed (connection lost): their deliveries are the broker's to redeliver now. */
  closedChannels: WeakSet<Channel>;
  running: Set<Promise<void>>;
  /** Tail of the handler chain per key: same key → handled in delivery order. */
  tails: Map<string, Promise<void>>;
  /** Failures per message id (classic queues only; quorum queues count in the broker). */
  failures: Map<string, number>;
}

/**
 * The RabbitMQ Broker, on amqp-connection-manager (reconnects, re-declares, re-consumes).
 *
 * Topology: one durable topic exchange; destination = routing key. Each (destination, group) gets
 * a durable queue bound with routing key = destination, dead-lettering to a direct DLX which routes
 * to `${queue}.dlq`. Publishes go through one confirm channel, `persistent` and `mandatory`; a message
 * is ok only when confirmed and not returned. Consumers ack after the handler resolves. A failed
 * handler is retried in-process with back-off while its key is held (later messages of the key wait),
 * so per-key order survives handler failures; after `maxDeliveries` attempts the message is
 * dead-lettered. If the consumer stops or its channel closes while waiting to retry, the message goes
 * back to the broker (requeue), and order across that redelivery is the broker's.
 */
export class RabbitMqBroker implements Broker {
  readonly name: string;
  private readonly exchange: string;
  private readonly dlx: string;
  private readonly logger: SageLogger;
  private readonly manager: AmqpConnectionManager;
  private readonly publisher: ChannelWrapper;
  /** In-flight publishes per message id, and ids the broker returned as unroutable while in flight. */
  private readonly inflight = new Map<string, number>();
  private readonly returned = new Set<string>();
  private readonly subscriptions = new Set<Subscription>();
  private publisherChannel: ConfirmChannel | undefined;
  private lastError: string | undefined;
  private closed = false;

  constructor(private readonly options: RabbitMqBrokerOptions) {
    this.name = options.name ?? 'rabbitmq';
    this.exchange = options.exchange ?? 'sage';
    this.dlx = options.deadLetterExchange ?? `${this.exchange}.dlx`;
    this.logger = options.logger ?? silentLogger;
    validate(options);
    this.manager = amqp.connect(options.url, {
      heartbeatIntervalInSeconds: options.heartbeatIntervalInSeconds ?? 5,
      reconnectTimeInSeconds: options.reconnectTimeInSeconds ?? 1,
      // TCP_NODELAY: a small frame (a consumer ack, a publish) must not wait for Nagle's
      // algorithm to meet the peer's delayed ACK — measured 40+ ms per publish after an ack on the
      // same socket (benchmarks, saga-remote-2step), under 5 ms with it.
      connectionOptions: { noDelay: true },
    });
    this.manager.on('connect', ({ url }: { url: unknown }) => {
      this.lastError = undefined;
      this.logger.info('rabbitmq connected', { broker: this.name, url: redact(url) });
    });
    this.manager.on('disconnect', ({ err }: { err?: Error }) => {
      this.lastError = `disconnected: ${reason(err)}`;
      if (!this.closed)
        this.logger.warn('rabbitmq disconnected', { broker: this.name, error: reason(err) });
    });
    this.manager.on('connectFailed', ({ err }: { err?: Error }) => {
      this.lastError = `connect failed: ${reason(err)}`;
      this.logger.warn('rabbitmq connect failed', { broker: this.name, error: reason(err) });
    });
    this.manager.on('blocked', ({ reason: why }: { reason: string }) => {
      this.lastError = `blocked by the broker: ${why}`;
      this.logger.warn('rabbitmq connection blocked', { broker: this.name, reason: why });
    });
    this.manager.on('unblocked', () => (this.lastError = undefined));
    this.publisher = this.manager.createChannel({
      name: `${this.name}-publisher`,
      confirm: true,
      setup: (channel: ConfirmChannel) => this.setupPublisher(channel),
    });
    this.publisher.on('error', (error: unknown) => {
      this.lastError = `publisher channel: ${reason(error)}`;
      this.logger.error('rabbitmq publisher channel error', {
        broker: this.name,
        error: reason(error),
      });
    });
  }

  /** Resolves once connected and the exchanges (and `declareDestinations`) are declared; rejects after `timeoutMs`. */
  async connected(timeoutMs = this.options.operationTimeoutMs ?? 5000): Promise<void> {
    await withTimeout(this.publisher.waitForConnect(), timeoutMs, () =>
      this.unavailable(`not connected within ${timeoutMs} ms`),
    );
  }

  /**
   * Declares the queue of `destination` (and `group`) with its binding and dead-letter queue, so
   * messages published before any consumer exists are kept rather than returned as unroutable.
   * Idempotent. Returns the queue name.
   */
  async declareQueue(destination: string, group?: string): Promise<string> {
    this.assertOpen();
    const queue = this.queueName(destination, group);
    await this.withChannel(`queue "${queue}"`, (channel) =>
      this.assertQueueTopology(channel, destination, queue),
    );
    return queue;
  }

  /** The topic exchange messages are published to. */
  get exchangeName(): string {
    return this.exchange;
  }

  /** The queue a subscription with this destination and group consumes from. */
  queueName(destination: string, group?: string): string {
    return this.options.queueName
      ? this.options.queueName(destination, group)
      : group
        ? `${group}.${destination}`
        : destination;
  }

  async publish(batch: readonly BrokerMessage[], signal?: AbortSignal): Promise<PublishResult[]> {
    this.assertOpen();
    if (signal?.aborted)
      throw new BrokerPublishError(this.name, 'publish aborted', true, { cause: signal.reason });
    // Every message is handed to the confirm channel at once: many in flight, one round trip.
    return Promise.all(batch.map((message) => this.publishOne(message, signal)));
  }

  async subscribe(
    destination: string,
    handler: (message: DeliveredMessage) => Promise<void>,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    this.assertOpen();
    const queue = this.queueName(destination, options.group);
    // Declared first on a throwaway channel: a mismatch fails this call with a typed error instead
    // of closing the consumer channel (which amqp-connection-manager would not reopen).
    await this.withChannel(`queue "${queue}"`, (channel) =>
      this.assertQueueTopology(channel, destination, queue),
    );
    const consumer: Consumer = {
      active: true,
      stopping: new AbortController(),
      closedChannels: new WeakSet(),
      running: new Set(),
      tails: new Map(),
      failures: new Map(),
    };
    let current: Channel | undefined;
    const wrapper = this.manager.createChannel({
      name: `${this.name}-consumer-${queue}`,
      confirm: false,
      setup: async (channel: Channel) => {
        channel.on('error', (error: unknown) =>
          this.logger.warn('rabbitmq consumer channel error', {
            broker: this.name,
            queue,
            error: reason(error),
          }),
        );
        channel.on('close', () => consumer.closedChannels.add(channel));
        current = channel;
        await this.assertQueueTopology(channel, destination, queue);
      },
    });
    wrapper.on('error', (error: unknown) =>
      this.logger.error('rabbitmq consumer setup failed', {
        broker: this.name,
        queue,
        error: reason(error),
      }),
    );
    let consumerTag: string;
    try {
      ({ consumerTag } = await withTimeout(
        wrapper.consume(
          queue,
          (raw) => {
            // Acks go to the channel that delivered the message: a delivery tag means nothing on the
            // channel that replaced it after a reconnect (the broker redelivers those anyway).
            const channel = current;
            if (channel) this.onDelivery(consumer, channel, queue, raw, handler);
          },
          { prefetch: this.options.prefetch ?? 32, noAck: false },
        ),
        this.options.operationTimeoutMs ?? 5000,
        () => this.unavailable(`could not start consuming "${queue}"`),
      ));
    } catch (error) {
      await wrapper.close().catch(() => undefined);
      throw error;
    }
    let stopping: Promise<void> | undefined;
    const subscription: Subscription = {
      unsubscribe: () =>
        (stopping ??= (async () => {
          consumer.active = false;
          consumer.stopping.abort();
          this.subscriptions.delete(subscription);
          await wrapper.cancel(consumerTag).catch(() => undefined);
          while (consumer.running.size) await Promise.allSettled([...consumer.running]);
          // Closing the channel returns any prefetched, unhandled messages to the queue.
          await wrapper.close().catch(() => undefined);
        })()),
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  async health(): Promise<BrokerHealth> {
    if (this.closed) return { up: false, detail: 'closed' };
    if (!this.manager.isConnected())
      return { up: false, detail: this.lastError ?? 'not connected' };
    if (!this.publisherChannel) return { up: false, detail: 'publisher channel not open' };
    try {
      // A passive check on a throwaway channel: proves the connection answers, and the exchange exists.
      await this.withChannel(`exchange "${this.exchange}" (passive)`, (channel) =>
        channel.checkExchange(this.exchange),
      );
    } catch (error) {
      return { up: false, detail: reason(error) };
    }
    const detail = this.lastError;
    return detail ? { up: true, detail } : { up: true };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.subscriptions].map((s) => s.unsubscribe()));
    await this.publisher.close().catch(() => undefined);
    await this.manager.close().catch(() => undefined);
  }

  private async setupPublisher(channel: ConfirmChannel): Promise<void> {
    channel.on('error', (error: unknown) => {
      this.lastError = `publisher channel: ${reason(error)}`;
      this.logger.warn('rabbitmq publisher channel error', {
        broker: this.name,
        error: reason(error),
      });
    });
    channel.on('close', () => {
      if (this.publisherChannel === channel) this.publisherChannel = undefined;
      // A channel-level error (say, the exchange was deleted under us) closes the channel but not the
      // connection; amqp-connection-manager only reopens channels on reconnect, so force one — unless
      // the connection itself is going (then it reconnects on its own).
      const connection = this.manager.connection;
      setTimeout(() => {
        if (this.closed || this.publisherChannel || this.manager.connection !== connection) return;
        if (!this.manager.isConnected()) return;
        this.logger.warn('rabbitmq publisher channel closed; reconnecting', { broker: this.name });
        this.manager.reconnect();
      }, 250).unref();
    });
    // basic.return arrives before the basic.ack of the same message, so the confirm callback sees it.
    channel.on('return', (message: Message) => {
      const id = message.properties.messageId as unknown;
      if (typeof id === 'string' && this.inflight.has(id)) this.returned.add(id);
    });
    await channel.assertExchange(this.exchange, 'topic', { durable: true });
    await channel.assertExchange(this.dlx, 'direct', { durable: true });
    for (const entry of this.options.declareDestinations ?? []) {
      const { destination, group } =
        typeof entry === 'string' ? { destination: entry, group: undefined } : entry;
      await this.assertQueueTopology(channel, destination, this.queueName(destination, group));
    }
    this.publisherChannel = channel;
  }

  private async publishOne(message: BrokerMessage, signal?: AbortSignal): Promise<PublishResult> {
    const failed = (error: string, retryable = true): PublishResult => ({
      id: message.id,
      ok: false,
      error,
      retryable,
    });
    let body: Buffer;
    try {
      body = Buffer.from(JSON.stringify(message.payload));
    } catch (error) {
      return failed(`payload is not serialisable: ${reason(error)}`, false);
    }
    const headers: Record<string, string> = {
      'ce-specversion': '1.0',
      'ce-source': this.options.source ?? 'sage',
      ...message.headers,
      'ce-id': message.id,
      'ce-type': message.type,
      'ce-time': message.time.toISOString(),
    };
    if (message.key !== null) headers['ce-subject'] = message.key;
    else delete headers['ce-subject'];

    const id = message.id;
    this.inflight.set(id, (this.inflight.get(id) ?? 0) + 1);
    const timeoutMs = this.options.publishTimeoutMs ?? 10_000;
    const confirmed = this.publisher
      .publish(this.exchange, message.destination, body, {
        persistent: true,
        mandatory: true,
        messageId: id,
        type: message.type,
        timestamp: Math.floor(message.time.getTime() / 1000),
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        headers,
        timeout: timeoutMs,
      } satisfies Options.Publish & { timeout: number })
      .then(
        (): PublishResult => {
          if (this.returned.has(id))
            return failed(
              `unroutable: no queue is bound to "${message.destination}" on exchange "${this.exchange}" ` +
                '(declare it with declareQueue / declareDestinations, or start the consumer first)',
              this.options.unroutableRetryable ?? true,
            );
          return { id, ok: true };
        },
        (error: unknown): PublishResult => {
          const text = reason(error);
          if (text === 'timeout')
            return failed(`no confirm within ${timeoutMs} ms (connection lost or broker slow)`);
          if (text === 'message nacked') return failed('nacked by the broker');
          return failed(text);
        },
      )
      .finally(() => {
        const left = (this.inflight.get(id) ?? 1) - 1;
        if (left > 0) this.inflight.set(id, left);
        else {
          this.inflight.delete(id);
          this.returned.delete(id);
        }
      });
    if (!signal) return confirmed;
    // Fate unknown on abort: failed, retryable; the relay publishes it again (at-least-once).
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<PublishResult>((resolve) => {
      onAbort = () => resolve(failed('publish aborted before the broker confirmed it'));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([confirmed, aborted]);
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  private onDelivery(
    consumer: Consumer,
    channel: Channel,
    queue: string,
    raw: ConsumeMessage,
    handler: (message: DeliveredMessage) => Promise<void>,
  ): void {
    if (!consumer.active) {
      settle(() => channel.nack(raw, false, true));
      return;
    }
    const subject = raw.properties.headers?.['ce-subject'] as unknown;
    const key = typeof subject === 'string' ? subject : null;
    const previous = key === null ? undefined : consumer.tails.get(key);
    const run = (async () => {
      if (previous) await previous;
      await this.handleDelivery(consumer, channel, queue, raw, handler);
    })();
    consumer.running.add(run);
    if (key !== null) consumer.tails.set(key, run);
    void run.finally(() => {
      consumer.running.delete(run);
      if (key !== null && consumer.tails.get(key) === run) consumer.tails.delete(key);
    });
  }

  /**
   * Runs the handler until it resolves (ack), failing `maxDeliveries` times in all (dead-letter),
   * or the consumer stops / its channel closes while waiting to retry (requeue: the broker
   * redelivers). Retries happen here, not through a requeue, because the caller holds the message's
   * key until this returns: a requeued message would be overtaken by the next of its key.
   */
  private async handleDelivery(
    consumer: Consumer,
    channel: Channel,
    queue: string,
    raw: ConsumeMessage,
    handler: (message: DeliveredMessage) => Promise<void>,
  ): Promise<void> {
    const decoded = this.decode(raw);
    const quorum = (this.options.queueType ?? 'quorum') === 'quorum';
    const brokerCount = raw.properties.headers?.['x-delivery-count'] as unknown;
    let attempt = quorum
      ? (typeof brokerCount === 'number' ? brokerCount : 0) + 1
      : (consumer.failures.get(decoded?.id ?? '') ?? (raw.fields.redelivered ? 1 : 0)) + 1;
    const maxDeliveries = this.options.maxDeliveries ?? 5;
    if (!decoded) {
      this.logger.error('rabbitmq message is not a Sage message; dead-lettering it', {
        broker: this.name,
        queue,
        messageId: raw.properties.messageId as unknown,
      });
      settle(() => channel.nack(raw, false, false));
      return;
    }
    for (;;) {
      if (!consumer.active || consumer.closedChannels.has(channel)) {
        settle(() => channel.nack(raw, false, true));
        return;
      }
      try {
        await handler({ ...decoded, deliveryAttempt: attempt });
        break;
      } catch (error) {
        const poison = attempt >= maxDeliveries;
        const delayMs = poison ? 0 : this.retryDelayMs(attempt);
        this.logger[poison ? 'error' : 'warn'](
          poison
            ? 'rabbitmq handler failed too often; dead-lettering the message'
            : 'rabbitmq handler failed; retrying it (later messages of its key wait)',
          {
            broker: this.name,
            queue,
            messageId: decoded.id,
            type: decoded.type,
            key: decoded.key,
            deliveryAttempt: attempt,
            maxDeliveries,
            ...(poison ? {} : { retryInMs: delayMs }),
            error: reason(error),
          },
        );
        if (poison) {
          consumer.failures.delete(decoded.id);
          settle(() => channel.nack(raw, false, false));
          return;
        }
        // Classic queues do not count deliveries: a requeue after this keeps the attempt number.
        if (!quorum) remember(consumer.failures, decoded.id, attempt);
        await sleep(delayMs, consumer.stopping.signal);
        attempt++;
      }
    }
    consumer.failures.delete(decoded.id);
    settle(() => channel.ack(raw));
  }

  private retryDelayMs(attempt: number): number {
    const first = this.options.redeliveryDelayMs ?? 200;
    return Math.min(first * 2 ** (attempt - 1), this.options.maxRedeliveryDelayMs ?? 5000);
  }

  private decode(raw: ConsumeMessage): BrokerMessage | undefined {
    const rawHeaders = raw.properties.headers ?? {};
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(rawHeaders)) {
      if (BROKER_HEADERS.has(name)) continue;
      if (typeof value === 'string') headers[name] = value;
      else if (Buffer.isBuffer(value)) headers[name] = value.toString('utf8');
      else if (typeof value === 'number' || typeof value === 'boolean')
        headers[name] = String(value);
    }
    const id =
      (typeof raw.properties.messageId === 'string' ? raw.properties.messageId : undefined) ??
      headers['ce-id'];
    if (!id) return undefined;
    let payload: JsonValue;
    try {
      payload = JSON.parse(raw.content.toString('utf8')) as JsonValue;
    } catch {
      return undefined;
    }
    const timestamp = raw.properties.timestamp as unknown;
    const time = headers['ce-time']
      ? new Date(headers['ce-time'])
      : new Date(typeof timestamp === 'number' ? timestamp * 1000 : 0);
    return {
      id,
      destination: raw.fields.routingKey,
      key: headers['ce-subject'] ?? null,
      type:
        (typeof raw.properties.type === 'string' ? raw.properties.type : undefined) ??
        headers['ce-type'] ??
        '',
      payload,
      headers,
      time,
    };
  }

  /** Queue bound to the exchange, dead-lettering to `${queue}.dlq` through the DLX. */
  private async assertQueueTopology(
    channel: Channel,
    destination: string,
    queue: string,
  ): Promise<void> {
    const dlq = `${queue}.dlq`;
    const queueType = this.options.queueType ?? 'quorum';
    await channel.assertExchange(this.exchange, 'topic', { durable: true });
    await channel.assertExchange(this.dlx, 'direct', { durable: true });
    await channel.assertQueue(dlq, { durable: true, arguments: { 'x-queue-type': queueType } });
    await channel.bindQueue(dlq, this.dlx, queue);
    await channel.assertQueue(queue, {
      durable: true,
      arguments: {
        'x-queue-type': queueType,
        'x-dead-letter-exchange': this.dlx,
        'x-dead-letter-routing-key': queue,
      },
    });
    await channel.bindQueue(queue, this.exchange, destination);
  }

  /** Runs `work` on a throwaway channel (a channel error closes only it), bounded by the operation timeout. */
  private async withChannel<T>(what: string, work: (channel: Channel) => Promise<T>): Promise<T> {
    const timeoutMs = this.options.operationTimeoutMs ?? 5000;
    const started = Date.now();
    await this.connected(timeoutMs);
    const connection = this.manager.connection;
    if (!connection) throw this.unavailable('not connected');
    let channel: Channel | undefined;
    try {
      return await withTimeout(
        (async () => {
          channel = await connection.createChannel();
          channel.on('error', () => undefined); // surfaced as the rejected operation below
          return work(channel);
        })(),
        Math.max(timeoutMs - (Date.now() - started), 1),
        () => this.unavailable(`${what}: no answer within ${timeoutMs} ms`),
      );
    } catch (error) {
      if (error instanceof SagaOutboxError) throw error;
      throw new RabbitMqTopologyError(this.name, what, { cause: error });
    } finally {
      await channel?.close().catch(() => undefined);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new BrokerPublishError(this.name, 'broker is closed', true);
  }

  private unavailable(detail: string): BrokerPublishError {
    return new BrokerPublishError(
      this.name,
      `RabbitMQ unavailable: ${detail}${this.lastError ? ` (${this.lastError})` : ''}`,
      true,
    );
  }
}

function validate(options: RabbitMqBrokerOptions): void {
  const urls = Array.isArray(options.url) ? options.url : [options.url];
  if (!urls.length || urls.some((u) => typeof u !== 'string' || !/^amqps?:\/\//.test(u)))
    throw new InvalidOptionsError('url', 'must be one or more amqp:// or amqps:// URLs');
  for (const [name, value, min] of [
    ['prefetch', options.prefetch, 1],
    ['maxDeliveries', options.maxDeliveries, 1],
    ['publishTimeoutMs', options.publishTimeoutMs, 1],
    ['operationTimeoutMs', options.operationTimeoutMs, 1],
    ['redeliveryDelayMs', options.redeliveryDelayMs, 0],
    ['maxRedeliveryDelayMs', options.maxRedeliveryDelayMs, 0],
  ] as const) {
    if (value !== undefined && (!Number.isInteger(value) || value < min))
      throw new InvalidOptionsError(name, `must be an integer >= ${min}, got ${String(value)}`);
  }
  if (options.queueType && !['quorum', 'classic'].includes(options.queueType))
    throw new InvalidOptionsError('queueType', `must be "quorum" or "classic"`);
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

async function withTimeout<T>(
  work: Promise<T>,
  timeoutMs: number,
  onTimeout: () => Error,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(onTimeout()), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function redact(url: unknown): string {
  return typeof url === 'string' ? url.replace(/\/\/[^@/]*@/, '//***@') : 'amqp';
}
