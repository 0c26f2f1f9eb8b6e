import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel, Message, Options } from 'amqplib';
import { errorText } from '../../core/error-text';
import type { BrokerMessage, PublishResult } from '../../core/ports/broker';
import { raceAbort } from '../../core/race-abort';
// A plain counting semaphore (no NATS client in it): the same window NATS keeps on PubAcks.
import { PendingAcks } from '../nats/pending-acks';
import { toAmqpMessage } from './rabbitmq-message-codec';
import type { RabbitMqSettings } from './rabbitmq-settings';
import { assertExchanges, assertQueueTopology } from './rabbitmq-topology';

/** What the broker, its publisher and its consumers know about the connection. */
export interface RabbitMqStatus {
  /** The last connection or channel problem, until the connection is back; shown in health and errors. */
  lastError: string | undefined;
  closed: boolean;
}

/**
 * RabbitMqBroker's publishing side: one confirm channel (re-opened on reconnect, declaring the
 * exchanges and `declareDestinations` first). Every message is `persistent` and `mandatory`; it is
 * ok only when confirmed and not returned.
 */
export class RabbitMqProducer {
  private readonly wrapper: ChannelWrapper;
  /** In-flight publishes per message id, and ids the broker returned as unroutable while in flight. */
  private readonly inflight = new Map<string, number>();
  private readonly returned = new Set<string>();
  private channel: ConfirmChannel | undefined;
  /** The publisher confirm window (`publishWindow`); none without a limit. */
  private readonly window: PendingAcks | undefined;

  constructor(
    private readonly manager: AmqpConnectionManager,
    private readonly settings: RabbitMqSettings,
    private readonly status: RabbitMqStatus,
  ) {
    if (Number.isFinite(settings.publishWindow))
      this.window = new PendingAcks(settings.publishWindow);
    this.wrapper = manager.createChannel({
      name: `${settings.name}-publisher`,
      confirm: true,
      setup: (channel: ConfirmChannel) => this.setup(channel),
    });
    this.wrapper.on('error', (error: unknown) => {
      status.lastError = `publisher channel: ${errorText(error)}`;
      settings.logger.error('rabbitmq publisher channel error', {
        broker: settings.name,
        error: errorText(error),
      });
    });
  }

  /** Whether the confirm channel is open (set up and not closed since). */
  get channelOpen(): boolean {
    return this.channel !== undefined;
  }

  /** Resolves once connected and the channel is set up. */
  waitForConnect(): Promise<void> {
    return this.wrapper.waitForConnect();
  }

  async publish(message: BrokerMessage, signal?: AbortSignal): Promise<PublishResult> {
    let encoded: ReturnType<typeof toAmqpMessage>;
    try {
      encoded = toAmqpMessage(message, this.settings.source);
    } catch (error) {
      return failed(message, `payload is not serialisable: ${errorText(error)}`, false);
    }
    const window = this.window;
    if (window) {
      const slot = window.acquire();
      if (
        (await raceAbort(
          slot.then(() => true),
          signal,
        )) === undefined
      ) {
        void slot.then(() => window.release()); // the slot comes later; hand it straight on
        return failed(message, 'publish aborted before the broker confirmed it');
      }
    }
    const id = message.id;
    this.inflight.set(id, (this.inflight.get(id) ?? 0) + 1);
    const timeoutMs = this.settings.publishTimeoutMs;
    const confirmed = this.wrapper
      .publish(this.settings.exchange, message.destination, encoded.content, {
        ...encoded.properties,
        persistent: true,
        mandatory: true,
        timeout: timeoutMs,
      } satisfies Options.Publish & { timeout: number })
      .then(
        () => this.confirmedResult(message),
        (error: unknown) => {
          const down = this.notConnected();
          // Not connected: the outage, not this message's fault (the relay does not count it).
          return {
            ...failed(message, down + confirmFailureText(error, timeoutMs)),
            ...(down ? { unavailable: true } : {}),
          };
        },
      )
      .finally(() => {
        this.settled(id);
        window?.release();
      });
    // Fate unknown on abort: failed, retryable; the relay publishes it again (at-least-once).
    return (
      (await raceAbort(confirmed, signal)) ??
      failed(message, 'publish aborted before the broker confirmed it')
    );
  }

  close(): Promise<void> {
    return this.wrapper.close();
  }

  /**
   * `not connected to RabbitMQ at host:port (connect failed: …); ` while the connection is down, so
   * a publish that times out waiting for it carries the real cause; empty when connected.
   */
  private notConnected(): string {
    if (this.manager.isConnected()) return '';
    return `not connected to RabbitMQ at ${this.settings.address}${this.status.lastError ? ` (${this.status.lastError})` : ''}; `;
  }

  private confirmedResult(message: BrokerMessage): PublishResult {
    if (!this.returned.has(message.id)) return { id: message.id, ok: true };
    return failed(
      message,
      `unroutable: no queue is bound to "${message.destination}" on exchange "${this.settings.exchange}" ` +
        '(declare it with declareQueue / declareDestinations, or start the consumer first)',
      this.settings.unroutableRetryable,
    );
  }

  private settled(id: string): void {
    const left = (this.inflight.get(id) ?? 1) - 1;
    if (left > 0) this.inflight.set(id, left);
    else {
      this.inflight.delete(id);
      this.returned.delete(id);
    }
  }

  private async setup(channel: ConfirmChannel): Promise<void> {
    const { name, logger } = this.settings;
    channel.on('error', (error: unknown) => {
      this.status.lastError = `publisher channel: ${errorText(error)}`;
      logger.warn('rabbitmq publisher channel error', { broker: name, error: errorText(error) });
    });
    channel.on('close', () => {
      if (this.channel === channel) this.channel = undefined;
      // A channel-level error (say, the exchange was deleted under us) closes the channel but not the
      // connection; amqp-connection-manager only reopens channels on reconnect, so force one — unless
      // the connection itself is going (then it reconnects on its own).
      const connection = this.manager.connection;
      setTimeout(() => {
        if (this.status.closed || this.channel || this.manager.connection !== connection) return;
        if (!this.manager.isConnected()) return;
        logger.warn('rabbitmq publisher channel closed; reconnecting', { broker: name });
        this.manager.reconnect();
      }, 250).unref();
    });
    // basic.return arrives before the basic.ack of the same message, so the confirm callback sees it.
    channel.on('return', (message: Message) => {
      const id = message.properties.messageId as unknown;
      if (typeof id === 'string' && this.inflight.has(id)) this.returned.add(id);
    });
    await assertExchanges(channel, this.settings);
    for (const { destination, group } of this.settings.declareDestinations)
      await assertQueueTopology(
        channel,
        this.settings,
        destination,
        this.settings.queueName(destination, group),
      );
    this.channel = channel;
  }
}

function failed(message: BrokerMessage, error: string, retryable = true): PublishResult {
  return { id: message.id, ok: false, error, retryable };
}

function confirmFailureText(error: unknown, timeoutMs: number): string {
  const text = errorText(error);
  if (text === 'timeout')
    return `no confirm within ${timeoutMs} ms (connection lost or broker slow)`;
  if (text === 'message nacked') return 'nacked by the broker';
  return text;
}
