import type {
  ConsumerMessages,
  JetStreamClient,
  JsMsg,
  MsgRequest,
  StoredMsg,
  Stream,
} from '@nats-io/jetstream';
import { DeliveryDeferredError } from '../../core/errors';
import type {
  BrokerMessage,
  DeadLetterReason,
  DeliveredMessage,
  DeliveryBatchHandler,
} from '../../core/ports/broker';
import type { SageLogger } from '../../core/ports/logger';
import { errorText } from '../../core/error-text';
import { abortableSleep as sleep } from '../abortable-sleep';
import { exponentialDelay } from '../backoff';
import { KeyLanes, type LaneSlot } from '../key-lanes';
import { LaneBatches } from '../lane-batches';
import {
  deadLetterDestinationOf,
  deadLetterHeaders,
  type DeadLetterReporter,
} from '../dead-letters';
import { headers as natsHeaders, type MsgHdrs } from './nats-client';
import { LostDeliveries, type LostRange } from './lost-deliveries';
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
  /** Messages the client pulls ahead of the handlers (and the loop holds beyond `concurrency`). */
  prefetch: number;
  /** Handler calls running at once, each on a different key. */
  concurrency: number;
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
  /** SubscribeOptions.batch: first deliveries free to run now go to it together (see NatsConsumeLoop). */
  batch?: DeliveryBatchHandler;
  logger: SageLogger;
  /** Times the connection was lost so far (a change between deliveries: some may be lost). */
  disconnects?: () => number;
}

/** A delivery taken from the pull, as it goes into a batch. */
interface Taken {
  m: JsMsg;
  delivered: BrokerMessage;
}

/**
 * One subscriber on a durable pull consumer. Messages are handled concurrently across keys (the
 * `ce-subject` key), one at a time within a key in stream order, at most `concurrency` handler
 * calls at once (KeyLanes); messages without a key take no lane. The loop holds at most
 * `concurrency + prefetch` messages taken from the pull and not yet settled (running, waiting for
 * their key or a slot, or waiting to retry); the client buffers up to `prefetch` more.
 *
 * A message is acked only after the handler resolved (the inbox transaction committed). A
 * rejection is retried here, after `redeliveryDelayMs`, while the message keeps its key (later
 * messages of that key wait; other keys go on, as the retry gives its slot up while it waits): a
 * nak would let the next message of the key overtake the failed one. A message that cannot be
 * handed over (inbound-message.ts), and one whose handler failed `maxDeliver` counted times
 * (DeliveryDeferredError failures not counted), is published to `${subjectPrefix}${destination}.dlq`
 * with its reason and `stream:sequence`, then terminated; if that publish fails the message is
 * nak'ed and comes back. Every message the loop holds is kept from redelivery by an in-progress
 * ack (`working()`) every half `ackWaitMs`, so neither a slow inbox commit, a back-off, nor a wait
 * behind its key triggers a duplicate delivery.
 *
 * Deliveries lost in transit (a NATS restart or a cut connection while they were on their way)
 * would otherwise come back only after `ack_wait`, behind later messages of their keys: the loop
 * notices them (LostDeliveries) and reads them from the stream first, handling them before the
 * delivery that revealed the gap (without an ack: their own redelivery later finds them handled by
 * the inbox and is acked). A subscriber's crash is not covered: what it had taken comes back after
 * `ack_wait`, possibly behind later messages of its keys.
 *
 * With a batch handler (SubscribeOptions.batch), a first delivery (JetStream's delivery count 1)
 * waits for the earlier messages of its key without a slot, then joins the batch being gathered
 * (LaneBatches): one message per key, those that became free in the same I/O turn and while the
 * batch waited for a slot, up to the handler's `maxSize` (and never more than the loop holds). A
 * batch is ONE handler call on one slot, and holds each of its keys until it settles. When it
 * resolves true each message is acked (after the inbox transaction committed); when it resolves
 * false or rejects, each of its messages goes through the per-message path above on a slot of its
 * own (retries holding its key only, dead letters), other keys going on meanwhile. A redelivery
 * (count above 1), a lost delivery read from the stream and a batch of one take the per-message
 * path directly.
 *
 * `stop()` drains: running handlers finish and are acked; a message waiting to retry, or not yet
 * started, is nak'ed (after the messages before it of its key settled) and JetStream redelivers it,
 * possibly to another member; order across that redelivery (or a crash) is JetStream's.
 * The loop survives server restarts (the client re-pulls) and restarts itself, with backoff,
 * if the consume iterator ends for any reason other than `stop()`.
 */
export class NatsConsumeLoop {
  private readonly abort = new AbortController();
  private readonly lanes: KeyLanes;
  /** Taken from the pull and not settled: kept from redelivery by `working()`. */
  private readonly held = new Set<JsMsg>();
  private keepAlive: NodeJS.Timeout | undefined;
  private messages: ConsumerMessages | undefined;
  private running: Promise<void> | undefined;
  private readonly lost = new LostDeliveries();
  private seenDisconnects: number;
  private streamHandle: Stream | undefined;
  private readonly batches: LaneBatches<Taken> | undefined;

  constructor(private readonly options: NatsConsumeLoopOptions) {
    this.seenDisconnects = options.disconnects?.() ?? 0;
    this.lanes = new KeyLanes(options.concurrency, (error) =>
      options.logger.error('NATS message handling failed unexpectedly', {
        durable: options.durable,
        error: errorText(error),
      }),
    );
    const batch = options.batch;
    if (batch && batch.maxSize > 1)
      this.batches = new LaneBatches(this.lanes, batch.maxSize, (items, slot) =>
        this.runBatch(batch, items, slot),
      );
  }

  start(): void {
    this.running ??= this.run();
  }

  /**
   * Stops pulling; resolves once no handler call is running. Running handlers finish (acked);
   * buffered, waiting and retrying messages are nak'ed.
   */
  async stop(): Promise<void> {
    if (!this.abort.signal.aborted) {
      this.abort.abort();
      void this.messages?.close();
    }
    await this.running;
  }

  private async run(): Promise<void> {
    this.keepAlive = setInterval(
      () => {
        try {
          for (const m of this.held) m.working();
        } catch (error) {
          // The connection is closed: JetStream redelivers what is held here once ack_wait ends.
          this.options.logger.debug('NATS in-progress ack failed', { error: errorText(error) });
        }
      },
      Math.max(Math.floor(this.options.ackWaitMs / 2), 250),
    );
    try {
      await this.consume();
    } finally {
      await this.lanes.drained();
      clearInterval(this.keepAlive);
    }
  }

  private async consume(): Promise<void> {
    const { js, stream, durable, logger, concurrency, prefetch } = this.options;
    const signal = this.abort.signal;
    let failures = 0;
    let first = true;
    while (!signal.aborted) {
      try {
        const consumer = await js.consumers.get(stream, durable);
        // A restarted consume may have lost what was on its way to the old one.
        if (!first) this.lost.interrupted();
        first = false;
        const messages = await consumer.consume({
          max_messages: prefetch,
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
          const range = this.observe(m);
          if (range) await this.recoverLost(range);
          this.accept(m);
          failures = 0;
          // Take the next only when there is room: bounds what waits un-acked in this process.
          await this.lanes.whenFewerThan(concurrency + prefetch);
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

  private observe(m: JsMsg): LostRange | undefined {
    const disconnects = this.options.disconnects?.() ?? 0;
    if (disconnects !== this.seenDisconnects) {
      this.seenDisconnects = disconnects;
      this.lost.interrupted();
    }
    const { deliverySequence, streamSequence, deliveryCount } = m.info;
    return this.lost.observe({ deliverySequence, streamSequence, deliveryCount });
  }

  /**
   * Reads the consumer's messages in `range` from the stream and puts them in their key lanes
   * ahead of the delivery that revealed the gap. Bounded (what can be in transit or unacked is
   * about the pull size); a failure to read leaves them to JetStream's redelivery.
   */
  private async recoverLost(range: LostRange): Promise<void> {
    const o = this.options;
    const subject = o.subjectPrefix + o.destination;
    const limit = 4 * (o.prefetch + o.concurrency);
    let recovered = 0;
    try {
      this.streamHandle ??= await o.js.streams.get(o.stream);
      for (let seq = range.after + 1; recovered < limit; recovered++) {
        // STREAM.MSG.GET with next_by_subj (the client's MsgRequest type lacks the field).
        const query = { seq, next_by_subj: subject } as unknown as MsgRequest;
        const sm = await this.streamHandle.getMessage(query);
        if (!sm || sm.seq >= range.before) break;
        seq = sm.seq + 1;
        const inbound = decodeMessage(fromStored(sm), o.subjectPrefix, o.maxMessageBytes);
        if (!inbound.ok) continue; // its own redelivery dead-letters it
        const delivered = inbound.message;
        this.lanes.submit(delivered.key, (slot) => this.handleRecovered(delivered, slot));
      }
    } catch (error) {
      o.logger.warn(
        'NATS lost deliveries could not be read from the stream; JetStream redelivers them',
        {
          durable: o.durable,
          afterStreamSequence: range.after,
          error: errorText(error),
        },
      );
    }
    if (recovered)
      o.logger.info(
        'NATS deliveries were lost in transit; their messages, read from the stream, go first',
        {
          durable: o.durable,
          messages: recovered,
          afterStreamSequence: range.after,
          beforeStreamSequence: range.before,
        },
      );
  }

  /** A message read from the stream: handled (retried like a delivery), never acked here. */
  private async handleRecovered(delivered: BrokerMessage, slot: LaneSlot): Promise<void> {
    const { maxDeliver, logger, durable } = this.options;
    const signal = this.abort.signal;
    for (let attempt = 1; !signal.aborted; attempt++) {
      try {
        await this.options.handler({ ...delivered, deliveryAttempt: attempt });
        return;
      } catch (error) {
        if (maxDeliver !== -1 && attempt >= maxDeliver) {
          // Its own redelivery comes after ack_wait and is dead-lettered on the usual path.
          logger.warn('NATS recovered message keeps failing; left to its redelivery', {
            durable,
            messageId: delivered.id,
            error: errorText(error),
          });
          return;
        }
        await slot.releasedWhile(sleep(this.options.redeliveryDelayMs(attempt), signal));
      }
    }
  }

  /** Puts the message in its key's lane (a poison message in none: it is dead-lettered on sight). */
  private accept(m: JsMsg): void {
    this.held.add(m);
    const settled = () => this.held.delete(m);
    const inbound = decodeMessage(m, this.options.subjectPrefix, this.options.maxMessageBytes);
    if (!inbound.ok) {
      const { reason, detail, messageId } = inbound.poison;
      this.lanes.submit(null, () =>
        this.deadLetter(m, { reason, detail, messageId, attempts: 0 }).finally(settled),
      );
      return;
    }
    const delivered = inbound.message;
    if (this.batches && m.info.deliveryCount === 1) {
      const batches = this.batches;
      this.lanes.submitHoldingKey(delivered.key, () =>
        this.handleBatched(batches, { m, delivered }).finally(settled),
      );
      return;
    }
    this.lanes.submit(delivered.key, (slot) => this.handle(m, delivered, slot).finally(settled));
  }

  /** Joins a batch once the key is free; on its own (with a slot) if the batch did not take it. */
  private async handleBatched(batches: LaneBatches<Taken>, taken: Taken): Promise<void> {
    if (await batches.join(taken)) return;
    await this.lanes.withSlot((slot) => this.handle(taken.m, taken.delivered, slot));
  }

  /**
   * One batch on one slot. True: every message is settled (acked after the handler took them all,
   * or a lone message handled on the per-message path with this slot). False: none is, and each
   * goes on its own (the handler took none of them, or the loop is stopping: they are nak'ed).
   */
  private async runBatch(
    batch: DeliveryBatchHandler,
    items: readonly Taken[],
    slot: LaneSlot,
  ): Promise<boolean> {
    if (items.length === 1) {
      await this.handle(items[0]!.m, items[0]!.delivered, slot);
      return true;
    }
    if (this.abort.signal.aborted) return false;
    const handed = await batch
      .handle(items.map(({ delivered }) => ({ ...delivered, deliveryAttempt: 1 })))
      .catch((error: unknown) => {
        this.options.logger.debug('NATS batch handler failed; its messages go one by one', {
          durable: this.options.durable,
          messages: items.length,
          error: errorText(error),
        });
        return false;
      });
    if (handed !== true) return false;
    for (const { m } of items) m.ack();
    return true;
  }

  private async handle(m: JsMsg, delivered: BrokerMessage, slot: LaneSlot): Promise<void> {
    const { durable, logger, maxDeliver } = this.options;
    const signal = this.abort.signal;
    // Earlier deliveries by JetStream (a crash, a stop) are counted; deferred ones here are not.
    let counted = m.info.deliveryCount - 1;
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
        logger.warn('NATS message handler failed; retrying it (later messages of its key wait)', {
          durable,
          messageId: delivered.id,
          destination: delivered.destination,
          key: delivered.key,
          deliveryAttempt: attempt,
          retryInMs: delayMs,
          error: errorText(error),
        });
        // Other keys use the slot meanwhile; this key stays held.
        await slot.releasedWhile(sleep(delayMs, signal));
      }
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

/** A message read from the stream, as decodeMessage reads a delivery. */
function fromStored(sm: StoredMsg): Parameters<typeof decodeMessage>[0] {
  return { headers: sm.header, subject: sm.subject, seq: sm.seq, data: sm.data, time: sm.time };
}
