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
  { id: string; ok: true } | { id: string; ok: false; error: string; retryable: boolean };

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
 */
export interface Broker {
  readonly name: string;
  publish(batch: readonly BrokerMessage[], signal?: AbortSignal): Promise<PublishResult[]>;
  subscribe(
    destination: string,
    handler: (message: DeliveredMessage) => Promise<void>,
    options?: SubscribeOptions,
  ): Promise<Subscription>;
  health(): Promise<BrokerHealth>;
  close(): Promise<void>;
}
