import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { DeliveryDeferredError } from '../../core/errors';
import type { DeadLetterReason, DeliveredMessage } from '../../core/ports/broker';
import type { SageLogger } from '../../core/ports/logger';
import { errorText } from '../../core/error-text';
import { abortableSleep as sleep } from '../abortable-sleep';
import { exponentialDelay } from '../backoff';
import {
  deadLetterDestinationOf,
  deadLetterHeaders,
  type DeadLetterReporter,
} from '../dead-letters';
import { headers as natsHeaders, type MsgHdrs } from './nats-client';
import { decodeMessage } from './nats-message-codec';

export interface NatsConsumeLoopOptions {
  js: JetStreamClient;
  /** Broker name in dead letters. */
  brokerName: string;
  stream: string;
  destination: string;
  group: string;
  durable: string;
  subjectPrefix: string;
  /** Messages the client pulls ahead of the handler. Each waits its turn inside ackWait. */
  prefetch: number;
  /** Lifetime of one pull request; heartbeats are half of it, so a pull lost in a restart is redone within about this long. */
  pullExpiresMs: number;
  ackWaitMs: number;
  /** Counted attempts at one message (in-process retries included) before it is dead-lettered; -1 = no limit. */
  maxDeliver: number;
  /** Larger bodies are dead-lettered unparsed. */
  maxMessageBytes: number;
  /** How long publishing a dead letter waits for its PubAck. */
  publishTimeoutMs: number;
  deadLetters: DeadLetterReporter;
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
 * the key overtake the failed one. A message that cannot be handed over (inbound-message.ts), and
 * one whose handler failed `maxDeliver` counted times (DeliveryDeferredError failures not counted),
 * is published to `${subjectPrefix}${destination}.dlq` with its reason and `stream:sequence`, then
 * terminated; if that publish fails the message is nak'ed and comes back. On `stop()` while waiting to retry,
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
    const inbound = decodeMessage(m, this.options.subjectPrefix, this.options.maxMessageBytes);
    if (!inbound.ok) {
      const { reason, detail, messageId } = inbound.poison;
      await this.deadLetter(m, { reason, detail, messageId, attempts: 0 });
      return;
    }
    const delivered = inbound.message;
    const keepAlive = setInterval(
      () => m.working(),
      Math.max(Math.floor(this.options.ackWaitMs / 2), 250),
    );
    const { durable, logger, maxDeliver } = this.options;
    const signal = this.abort.signal;
    // Earlier deliveries by JetStream (a crash, a stop) are counted; deferred ones here are not.
    let counted = m.info.deliveryCount - 1;
    try {
      for (let attempt = m.info.deliveryCount; ; attempt++) {
        if (signal.aborted) {
          m.nak(); // stopping: JetStream redelivers it
          return;
        }
        try {
          await this.options.handler({ ...delivered, deliveryAttempt: attempt });
          m.ack();
          return;
        } catch (error) {
          if (!(error instanceof DeliveryDeferredError)) counted++;
          const giveUp = maxDeliver !== -1 && counted >= maxDeliver;
          if (giveUp) {
            await this.deadLetter(m, {
              reason: 'max-deliveries',
              detail: `the handler failed ${counted} times (maxDeliver ${maxDeliver}); last error: ${errorText(error)}`,
              messageId: delivered.id,
              attempts: attempt,
            });
            return;
          }
          const delayMs = this.options.redeliveryDelayMs(attempt);
          logger.warn('NATS message handler failed; retrying it before the next message', {
            durable,
            messageId: delivered.id,
            destination: delivered.destination,
            key: delivered.key,
            deliveryAttempt: attempt,
            retryInMs: delayMs,
            error: errorText(error),
          });
          await sleep(delayMs, signal);
        }
      }
    } finally {
      clearInterval(keepAlive);
    }
  }

  /**
   * Publishes the message as received, plus the `sage-dead-letter-*` headers, to the dead-letter
   * subject (deduplicated by stream sequence), then terminates it. If the publish fails the
   * message is nak'ed: JetStream redelivers it and it is dead-lettered then.
   */
  private async deadLetter(
    m: JsMsg,
    what: { reason: DeadLetterReason; detail: string; messageId: string; attempts: number },
  ): Promise<void> {
    const o = this.options;
    const destination = o.destination;
    const deadLetterDestination = deadLetterDestinationOf(destination);
    const event = {
      broker: o.brokerName,
      destination,
      group: o.group,
      deadLetterDestination,
      ...what,
    };
    const h = natsHeaders();
    try {
      const original = m.headers as MsgHdrs | undefined; // typed here: see nats-client.ts
      for (const name of original?.keys() ?? [])
        if (!/^nats-/i.test(name))
          for (const value of original!.values(name)) h.append(name, value);
    } catch {
      // Headers the client cannot decode (or re-encode): the dead letter goes without them.
    }
    for (const [name, value] of Object.entries(deadLetterHeaders(event, `${o.stream}:${m.seq}`)))
      h.set(name, value.replace(/[\r\n]+/g, ' '));
    try {
      await o.js.publish(
        o.subjectPrefix + deadLetterDestination,
        what.reason === 'too-large' ? new Uint8Array(0) : m.data,
        {
          headers: h,
          msgID: `dead-letter:${o.durable}:${o.stream}:${m.seq}`,
          timeout: o.publishTimeoutMs,
        },
      );
    } catch (error) {
      o.logger.error('NATS dead letter could not be published; the message will come back', {
        durable: o.durable,
        streamSequence: m.seq,
        reason: what.reason,
        error: errorText(error),
      });
      m.nak(this.options.redeliveryDelayMs(1));
      return;
    }
    m.term(`${what.reason}: ${what.detail}`.slice(0, 1000));
    o.deadLetters.report(event);
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
