import type { JsonValue } from '../json';

/**
 * One message as every broker adapter receives it. `id` is the outbox row id and is the broker-side
 * message id everywhere (Kafka header `ce-id`, AMQP `message-id`, NATS `Nats-Msg-Id`), so brokers
 * that can suppress duplicates do.
 */
export interface BrokerMessage {
  id: string;
  destination: string;
  /** Partition / routing key; same key → same partition, so per-key order survives the broker. */
  key: string | null;
  type: string;
  payload: JsonValue;
  /** Transport headers (CloudEvents attributes, `traceparent`), all strings. */
  headers: Record<string, string>;
  /** When the business transaction wrote it (CloudEvents `time`). */
  time: Date;
}

/**
 * Outcome per message, in the order of the batch. `retryable: false` means the broker will never
 * accept this message (too large, unknown destination that will not appear): the relay
 * dead-letters it at once instead of retrying.
 */
export type PublishResult =
  | { id: string; ok: true }
  | {
      id: string;
      ok: false;
      error: string;
      retryable: boolean;
      /**
       * The broker itself could not be reached (not connected, cannot connect): not this
       * message's fault. The relay retries such a failure without counting it as an attempt, so an
       * outage, however long, never dead-letters messages; it backs off while it lasts.
       */
      unavailable?: boolean;
    };

export interface BrokerHealth {
  up: boolean;
  detail?: string;
}

/** A delivered message, as a subscriber's handler receives it. */
export interface DeliveredMessage extends BrokerMessage {
  /** 1 on first delivery, more when redelivered after a handler failure. */
  deliveryAttempt: number;
}

export interface SubscribeOptions {
  /** Consumer group / durable name: members of one group share the messages. Default: the destination. */
  group?: string;
  /**
   * Attempts at a message whose handler keeps failing before the adapter dead-letters it (reason
   * `max-deliveries`). Failures the handler marks with DeliveryDeferredError are not counted.
   * Default: the adapter's `maxDeliveries` (10). The inbox subscribes with twice its `maxAttempts`,
   * so it dead-letters first and the adapter's cap only catches what the inbox could not count.
   */
  maxDeliveries?: number;
  /**
   * Optional: lets the adapter hand several consecutive deliveries over at once (the inbox then
   * handles them in one transaction). An adapter that cannot batch ignores it and calls the
   * per-message handler only, which stays the reference: same messages, same order.
   */
  batch?: DeliveryBatchHandler;
}

/**
 * SubscribeOptions.batch. The adapter passes up to `maxSize` deliveries that must take effect in
 * the order given (Kafka: consecutive records of one partition, none of them redelivered after a
 * failure; NATS: first deliveries, at most one per key). `handle` resolves true when every one of
 * them took effect: the adapter acknowledges them all. It resolves false, or rejects, when none did
 * (nothing was acknowledged or recorded): the adapter then hands each of them to the per-message
 * handler in order, with its usual redelivery, back-off and dead letters.
 */
export interface DeliveryBatchHandler {
  readonly maxSize: number;
  handle(messages: readonly DeliveredMessage[]): Promise<boolean>;
}

/**
 * Why an adapter dead-lettered a delivered message instead of handing it over (or after handing it
 * over too often): the same reasons on every broker.
 * - `missing-id` / `unusable-id`: no message id, or one that is blank, over 512 characters, or holds
 *   NUL or an unpaired surrogate (the inbox could never recognise a redelivery);
 * - `too-large`: the body is over the adapter's `maxMessageBytes` (not parsed);
 * - `empty-body`: a zero-length body (a Sage message's body is JSON, at least `null`);
 * - `not-json`: the body is not UTF-8 JSON;
 * - `too-deep`: the JSON nests arrays/objects deeper than MAX_JSON_DEPTH (not parsed);
 * - `bad-headers`: the transport's client cannot decode the headers at all (a NATS header name
 *   with a space); headers it can decode, however odd their bytes, are handed over as received;
 * - `max-deliveries`: the handler failed on every one of `maxDeliveries` attempts.
 */
export type DeadLetterReason =
  | 'missing-id'
  | 'unusable-id'
  | 'too-large'
  | 'empty-body'
  | 'not-json'
  | 'too-deep'
  | 'bad-headers'
  | 'max-deliveries';

/** A message an adapter dead-lettered, as its `onDeadLetter` listeners see it (never the body). */
export interface DeadLetteredMessage {
  broker: string;
  /** Where it was delivered from. */
  destination: string;
  group: string;
  /** The message's own id, or `sage-derived:<sha256>` when its own is missing or unusable. */
  messageId: string;
  reason: DeadLetterReason;
  /** What exactly was wrong, for operators (never payload data). */
  detail: string;
  /** The topic / queue / subject the dead letter was written to. */
  deadLetterDestination: string;
  /** Handler attempts made: 0 when dead-lettered on sight, `maxDeliveries` for `max-deliveries`. */
  attempts: number;
}

export interface Subscription {
  /** Stops delivery to this handler; resolves once no handler call is running. */
  unsubscribe(): Promise<void>;
}

/**
 * The one Broker port. Adapters: kafka, rabbitmq, nats, memory.
 *
 * Contract (checked by testing/broker-conformance.ts):
 * - `publish` returns exactly one result per input message, same order, same ids; it resolves only
 *   once every `ok: true` message is durably accepted by the broker (ack / confirm). It may also
 *   reject as a whole (connection lost); the caller then treats every message as failed, retryable.
 * - Messages of one batch need not keep their relative order (the relay never puts two messages of
 *   the same key in one batch).
 * - `signal` aborts waiting (shutdown hard-stop); messages whose fate is unknown are reported as
 *   failed, retryable — the relay publishes them again (at-least-once).
 * - `close` is idempotent; after it, `publish` rejects.
 * - Consuming: a message that cannot be handed over (DeadLetterReason) is dead-lettered with its
 *   reason on first sight, and one whose handler keeps failing after `maxDeliveries` attempts; the
 *   dead letter keeps the original body and headers plus `sage-dead-letter-*` headers saying why.
 *   Either way the next message of the same partition / subject / queue is handled: one message
 *   never stops a consumer.
 */
export interface Broker {
  readonly name: string;
  /**
   * The longest one `publish()` waits for the broker to acknowledge a message before it reports
   * the message failed (retryable), in ms; undefined when the adapter sets no such bound. The relay
   * checks its claim lease against it (see OutboxRelayOptions.leaseMs): a publish that outlives the
   * lease lets another relay take the rows and publish them again.
   */
  readonly publishTimeoutMs?: number;
  publish(batch: readonly BrokerMessage[], signal?: AbortSignal): Promise<PublishResult[]>;
  subscribe(
    destination: string,
    handler: (message: DeliveredMessage) => Promise<void>,
    options?: SubscribeOptions,
  ): Promise<Subscription>;
  health(): Promise<BrokerHealth>;
  /**
   * One attempt to reach the broker now (connecting if need be), settled within about
   * `timeoutMs`: up, or down with the cause and the address tried, never credentials
   * (`cannot connect to RabbitMQ at 127.0.0.1:5672: connect ECONNREFUSED 127.0.0.1:5672`). Startup
   * uses it (the module's `brokerStartup`); `health()` is used when an adapter has none. Sage's
   * adapters have it.
   */
  probe?(timeoutMs: number): Promise<BrokerHealth>;
  close(): Promise<void>;
  /**
   * Listens to the messages this adapter dead-letters (metrics, alerts); returns the function that
   * stops listening. Optional for custom adapters; Sage's four have it.
   */
  onDeadLetter?(listener: (event: DeadLetteredMessage) => void): () => void;
}
