import amqp, { type AmqpConnectionManager } from 'amqp-connection-manager';
import type { Channel } from 'amqplib';
import { SagaOutboxError } from '../../core/errors';
import { errorText } from '../../core/error-text';
import { BrokerPublishError, BrokerUnavailableError } from '../../core/outbox/outbox-errors';
import type {
  Broker,
  BrokerHealth,
  BrokerMessage,
  DeadLetteredMessage,
  DeliveredMessage,
  PublishResult,
  SubscribeOptions,
  Subscription,
} from '../../core/ports/broker';
import { integerOption } from '../../core/options';
import { withTimeout } from '../../core/with-timeout';
import { DeadLetterReporter } from '../dead-letters';
import { RabbitMqConsumer } from './rabbitmq-consumer';
import { RabbitMqProducer, type RabbitMqStatus } from './rabbitmq-producer';
import { rabbitMqSettings, type RabbitMqSettings } from './rabbitmq-settings';
import { rabbitMqSocketOptions } from './rabbitmq-tls';
import { assertQueueTopology } from './rabbitmq-topology';
import { withTlsHint } from '../tls-failure-hint';

import type { RabbitMqBrokerOptions } from './rabbitmq-options';

export type { RabbitMqBrokerOptions };
export type { RabbitMqTlsOptions, PemInput } from './rabbitmq-tls';

/** Declaring a queue, exchange or binding failed (e.g. it exists with other arguments). */
export class RabbitMqTopologyError extends SagaOutboxError {
  constructor(
    readonly broker: string,
    what: string,
    options?: { cause?: unknown },
  ) {
    super(
      'BROKER_TOPOLOGY_FAILED',
      `Broker "${broker}": could not declare ${what}: ${errorText(options?.cause)}. ` +
        'If it exists with other arguments (type, dead-letter exchange, queue type), delete it or use another name.',
      options,
    );
  }
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
  /** How long a publish waits for its confirm (`publishTimeoutMs` option, default 10 s). */
  readonly publishTimeoutMs: number;
  private readonly settings: RabbitMqSettings;
  private readonly manager: AmqpConnectionManager;
  private readonly producer: RabbitMqProducer;
  private readonly subscriptions = new Set<Subscription>();
  private readonly deadLetters = new DeadLetterReporter(() => this.settings.logger);
  private readonly status: RabbitMqStatus = { lastError: undefined, closed: false };

  constructor(options: RabbitMqBrokerOptions) {
    const settings = (this.settings = rabbitMqSettings(options));
    const urls = Array.isArray(options.url) ? options.url : [options.url];
    const socketOptions = rabbitMqSocketOptions(urls, options.tls);
    this.name = settings.name;
    this.publishTimeoutMs = settings.publishTimeoutMs;
    this.manager = amqp.connect(options.url, {
      heartbeatIntervalInSeconds: options.heartbeatIntervalInSeconds ?? 5,
      reconnectTimeInSeconds: options.reconnectTimeInSeconds ?? 1,
      // TCP_NODELAY and the TLS settings (rabbitmq-tls.ts).
      connectionOptions: socketOptions,
    });
    this.watchConnection();
    this.producer = new RabbitMqProducer(this.manager, settings, this.status);
  }

  /** Resolves once connected and the exchanges (and `declareDestinations`) are declared; rejects after `timeoutMs`. */
  async connected(timeoutMs = this.settings.operationTimeoutMs): Promise<void> {
    await withTimeout(this.producer.waitForConnect(), timeoutMs, () =>
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
      assertQueueTopology(channel, this.settings, destination, queue),
    );
    return queue;
  }

  /** The topic exchange messages are published to. */
  get exchangeName(): string {
    return this.settings.exchange;
  }

  /** The queue a subscription with this destination and group consumes from. */
  queueName(destination: string, group?: string): string {
    return this.settings.queueName(destination, group);
  }

  async publish(batch: readonly BrokerMessage[], signal?: AbortSignal): Promise<PublishResult[]> {
    this.assertOpen();
    if (signal?.aborted)
      throw new BrokerPublishError(this.name, 'publish aborted', true, { cause: signal.reason });
    // Every message is handed to the confirm channel at once: many in flight, one round trip.
    return Promise.all(batch.map((message) => this.producer.publish(message, signal)));
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
      assertQueueTopology(channel, this.settings, destination, queue),
    );
    const consumer = new RabbitMqConsumer(
      {
        manager: this.manager,
        settings: this.settings,
        unavailable: (detail) => this.unavailable(detail),
        deadLetters: this.deadLetters,
      },
      destination,
      queue,
      handler,
      integerOption('subscribe.maxDeliveries', options.maxDeliveries, {
        fallback: this.settings.maxDeliveries,
        min: 1,
      }),
      options.batch && {
        maxSize: integerOption('subscribe.batch.maxSize', options.batch.maxSize, {
          fallback: 1,
          min: 1,
          max: 1000,
        }),
        handle: (messages) => options.batch!.handle(messages),
      },
    );
    await consumer.start();
    let stopping: Promise<void> | undefined;
    const subscription: Subscription = {
      unsubscribe: () => {
        this.subscriptions.delete(subscription);
        return (stopping ??= consumer.stop());
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  onDeadLetter(listener: (event: DeadLetteredMessage) => void): () => void {
    return this.deadLetters.listen(listener);
  }

  async health(): Promise<BrokerHealth> {
    if (this.status.closed) return { up: false, detail: 'closed' };
    if (!this.manager.isConnected())
      return { up: false, detail: this.status.lastError ?? 'not connected' };
    if (!this.producer.channelOpen) return { up: false, detail: 'publisher channel not open' };
    try {
      // A passive check on a throwaway channel: proves the connection answers, and the exchange exists.
      await this.withChannel(`exchange "${this.settings.exchange}" (passive)`, (channel) =>
        channel.checkExchange(this.settings.exchange),
      );
    } catch (error) {
      return { up: false, detail: errorText(error) };
    }
    const detail = this.status.lastError;
    return detail ? { up: true, detail } : { up: true };
  }

  /**
   * Waits for the connection (and the publisher's channel) or for the next failed connection
   * attempt, whichever comes first, at most `timeoutMs`; then health(). Down names the address
   * and the cause (`cannot connect to RabbitMQ at 127.0.0.1:5672: connect ECONNREFUSED …`).
   */
  async probe(timeoutMs: number): Promise<BrokerHealth> {
    if (this.status.closed) return { up: false, detail: 'closed' };
    let onFailed: ((event: { err?: Error }) => void) | undefined;
    const failedAttempt = new Promise<string>((resolve) => {
      onFailed = ({ err }) => resolve(connectFailureText(err));
      this.manager.on('connectFailed', onFailed);
    });
    let failure: string | undefined;
    try {
      failure = await withTimeout(
        Promise.race([this.producer.waitForConnect().then(() => undefined), failedAttempt]),
        timeoutMs,
        () => new Error(this.status.lastError ?? `no connection within ${timeoutMs} ms`),
      );
    } catch (error) {
      failure = errorText(error);
    } finally {
      if (onFailed) this.manager.off('connectFailed', onFailed);
    }
    if (failure !== undefined)
      return {
        up: false,
        detail: `cannot connect to RabbitMQ at ${this.settings.address}: ${failure}`,
      };
    return this.health();
  }

  async close(): Promise<void> {
    if (this.status.closed) return;
    this.status.closed = true;
    await Promise.allSettled([...this.subscriptions].map((s) => s.unsubscribe()));
    await this.producer.close().catch(() => undefined);
    await this.manager.close().catch(() => undefined);
  }

  private watchConnection(): void {
    const { name, logger } = this.settings;
    const status = this.status;
    // A reconnect is attempted every `reconnectTimeInSeconds` for as long as the outage lasts: its
    // failure is logged at warn when the outage begins and then once a minute, at debug between.
    // Before the first connection, startup (brokerStartup) and the publish errors say it instead.
    let connectedOnce = false;
    let failureWarnedAt: number | undefined;
    this.manager.on('connect', ({ url }: { url: unknown }) => {
      status.lastError = undefined;
      connectedOnce = true;
      failureWarnedAt = undefined;
      logger.info('rabbitmq connected', { broker: name, url: redact(url) });
    });
    this.manager.on('disconnect', ({ err }: { err?: Error }) => {
      status.lastError = `disconnected: ${errorText(err)}`;
      if (!status.closed)
        logger.warn('rabbitmq disconnected', { broker: name, error: errorText(err) });
    });
    this.manager.on('connectFailed', ({ err }: { err?: Error }) => {
      status.lastError = `connect failed: ${connectFailureText(err)}`;
      const fields = {
        broker: name,
        address: this.settings.address,
        error: connectFailureText(err),
      };
      const now = Date.now();
      if (!connectedOnce || (failureWarnedAt !== undefined && now - failureWarnedAt < 60_000)) {
        logger.debug('rabbitmq connect failed', fields);
        return;
      }
      failureWarnedAt = now;
      logger.warn('rabbitmq connect failed; retrying', fields);
    });
    this.manager.on('blocked', ({ reason: why }: { reason: string }) => {
      status.lastError = `blocked by the broker: ${why}`;
      logger.warn('rabbitmq connection blocked', { broker: name, reason: why });
    });
    this.manager.on('unblocked', () => (status.lastError = undefined));
  }

  /** Runs `work` on a throwaway channel (a channel error closes only it), bounded by the operation timeout. */
  private async withChannel<T>(what: string, work: (channel: Channel) => Promise<T>): Promise<T> {
    const timeoutMs = this.settings.operationTimeoutMs;
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
    if (this.status.closed) throw new BrokerPublishError(this.name, 'broker is closed', true);
  }

  /** The broker cannot be reached (subscribing, declaring): BrokerUnavailableError with the last cause. */
  private unavailable(detail: string): BrokerUnavailableError {
    const lastError = this.status.lastError;
    return new BrokerUnavailableError(
      this.name,
      `RabbitMQ at ${this.settings.address}: ${detail}${lastError ? ` (${lastError})` : ''}`,
    );
  }
}

const TLS_NAMES = {
  ca: 'tls.ca',
  cert: 'tls.cert and tls.key',
  enable: 'amqp:// instead of amqps://',
};

/**
 * A failed connection attempt's text with what it likely means: a TLS failure names the option to
 * set; a socket closed during the AMQP handshake is what a plain amqp:// connection to a TLS-only
 * port (or a refused client certificate) looks like; so does a connection reset while connecting
 * (the TLS listener drops the plain AMQP greeting: which of the two a client sees is a race).
 */
function connectFailureText(err: unknown): string {
  const text = withTlsHint(errorText(err), TLS_NAMES);
  if (/Socket closed abruptly during opening handshake|\bECONNRESET\b/i.test(text))
    return `${text} (if the port expects TLS, use amqps:// — with tls.ca, and tls.cert and tls.key if the server requires a client certificate)`;
  if (/ACCESS-REFUSED/.test(text))
    return `${text} (check the user and password in the URL, and the user's access to the vhost)`;
  return text;
}

function redact(url: unknown): string {
  return typeof url === 'string' ? url.replace(/\/\/[^@/]*@/, '//***@') : 'amqp';
}
