import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { DeliveredMessage } from '../../core/ports/broker';
import type { SageLogger } from '../../core/ports/logger';
import { errorText } from '../../core/error-text';
import { abortableSleep as sleep } from '../abortable-sleep';
import { exponentialDelay } from '../backoff';
import { decodeMessage } from './nats-message-codec';

export interface NatsConsumeLoopOptions {
  js: JetStreamClient;
  stream: string;
  durable: string;
  subjectPrefix: string;
  /** Messages the client pulls ahead of the handler. Each waits its turn inside ackWait. */
  prefetch: number;
  /** Lifetime of one pull request; heartbeats are half of it, so a pull lost in a restart is redone within about this long. */
  pullExpiresMs: number;
  ackWaitMs: number;
  /** Attempts at one message (in-process retries included) before it is terminated; -1 = no limit. */
  maxDeliver: number;
  /** Wait before a failed handler is retried. */
  redeliveryDelayMs: (deliveryAttempt: number) => number;
  handler: (message: DeliveredMessage) => Promise<void>;
  logger: SageLogger;
}

/**
 * One subscriber on a durable pull consumer. Single-flight: one handler call at a time, so a
 * subscriber sees a key's messages in stream order. A message is acked only after the handler
 * resolved (the inbox transaction committed). A rejection is retried here, after
 * `redeliveryDelayMs`, before the next message is looked at: a nak would let the next message of
 * the key overtake the failed one. After `maxDeliver` attempts the message is terminated (JetStream
 * gives up on it, as it would after `max_deliver` deliveries). On `stop()` while waiting to retry,
 * the message is nak'ed and JetStream redelivers it, possibly to another member; order across that
 * redelivery (or a crash) is JetStream's. While a handler runs or waits to retry, the loop tells
 * JetStream it is still working, so neither a slow inbox commit nor a back-off triggers a duplicate
 * delivery.
 * The loop survives server restarts (the client re-pulls) and restarts itself, with backoff,
 * if the consume iterator ends for any reason other than `stop()`.
 */
export class NatsConsumeLoop {
  private readonly abort = new AbortController();
  private messages: ConsumerMessages | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly options: NatsConsumeLoopOptions) {}

  start(): void {
    this.running ??= this.run();
  }

  /** Stops pulling; resolves once no handler call is running. Buffered messages are nak'ed. */
  async stop(): Promise<void> {
    if (!this.abort.signal.aborted) {
      this.abort.abort();
      void this.messages?.close();
    }
    await this.running;
  }

  private async run(): Promise<void> {
    const { js, stream, durable, logger } = this.options;
    const signal = this.abort.signal;
    let failures = 0;
    while (!signal.aborted) {
      try {
        const consumer = await js.consumers.get(stream, durable);
        const messages = await consumer.consume({
          max_messages: this.options.prefetch,
          expires: this.options.pullExpiresMs,
        });
        this.messages = messages;
        if (signal.aborted) void messages.close();
        void this.watchStatus(messages);
        for await (const m of messages) {
          if (signal.aborted) {
            m.nak(); // hand it back now rather than after ackWait
            continue;
          }
          await this.handle(m);
          failures = 0;
        }
        const ended = await messages.closed();
        if (signal.aborted) break;
        throw ended instanceof Error ? ended : new Error('consume iterator ended unexpectedly');
      } catch (error) {
        if (signal.aborted) break;
        failures++;
        const delayMs = exponentialDelay(failures, 200, 5_000);
        logger.warn('NATS consumer loop failed; restarting', {
          stream,
          durable,
          failures,
          retryInMs: delayMs,
          error: errorText(error),
        });
        await sleep(delayMs, signal);
      }
    }
  }

  private async handle(m: JsMsg): Promise<void> {
    const { durable, logger } = this.options;
    let delivered: DeliveredMessage;
    try {
      delivered = decodeMessage(m, this.options.subjectPrefix);
    } catch (error) {
      // Not a message this adapter can hand over (no retry changes its body): drop it loudly.
      logger.error('NATS message cannot be decoded; terminating it (it will not be redelivered)', {
        durable,
        subject: m.subject,
        streamSequence: m.seq,
        error: errorText(error),
      });
      m.term(errorText(error));
      return;
    }
    const keepAlive = setInterval(
      () => m.working(),
      Math.max(Math.floor(this.options.ackWaitMs / 2), 250),
    );
    const { maxDeliver } = this.options;
    const signal = this.abort.signal;
    try {
      for (let attempt = delivered.deliveryAttempt; ; attempt++) {
        if (signal.aborted) {
          m.nak(); // stopping: JetStream redelivers it
          return;
        }
        try {
          await this.options.handler({ ...delivered, deliveryAttempt: attempt });
          m.ack();
          return;
        } catch (error) {
          const giveUp = maxDeliver !== -1 && attempt >= maxDeliver;
          const delayMs = giveUp ? 0 : this.options.redeliveryDelayMs(attempt);
          logger[giveUp ? 'error' : 'warn'](
            giveUp
              ? 'NATS message handler failed maxDeliver times; terminating the message'
              : 'NATS message handler failed; retrying it before the next message',
            {
              durable,
              messageId: delivered.id,
              destination: delivered.destination,
              key: delivered.key,
              deliveryAttempt: attempt,
              ...(giveUp ? { maxDeliver } : { retryInMs: delayMs }),
              error: errorText(error),
            },
          );
          if (giveUp) {
            m.term(`handler failed ${attempt} times: ${errorText(error)}`);
            return;
          }
          await sleep(delayMs, signal);
        }
      }
    } finally {
      clearInterval(keepAlive);
    }
  }

  private async watchStatus(messages: ConsumerMessages): Promise<void> {
    const { stream, durable, logger } = this.options;
    try {
      for await (const s of messages.status()) {
        if (
          s.type === 'consumer_deleted' ||
          s.type === 'consumer_not_found' ||
          s.type === 'stream_not_found' ||
          s.type === 'heartbeats_missed'
        )
          logger.warn(`NATS consumer status: ${s.type}`, { stream, durable, status: s });
      }
    } catch (error) {
      logger.debug('NATS consumer status stream ended', { durable, error: errorText(error) });
    }
  }
}
