import type { SageLogger } from '../../core/ports/logger';
import type { RabbitMqTlsOptions } from './rabbitmq-tls';

export interface RabbitMqBrokerOptions {
  /**
   * One AMQP URL, or several (tried round-robin on reconnect). `amqps://` encrypts the connection
   * (with Node's trusted CAs unless `tls.ca` is set); user and password go in the URL.
   */
  url: string | string[];
  /**
   * TLS settings for `amqps://` URLs: a private CA, a client certificate (for a server with
   * `ssl_options.verify = verify_peer`), SNI name. Rejected with an `amqp://` URL.
   */
  tls?: RabbitMqTlsOptions;
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
   * dead-letter queue `${queue}.dlq`; `SubscribeOptions.maxDeliveries` overrides it per
   * subscription. Default 10.
   */
  maxDeliveries?: number;
  /**
   * Largest body handed to a handler; a larger one is dead-lettered without being parsed. Default
   * 1 MiB. The broker's own limit is `max_message_size` (default 128 MiB in RabbitMQ 4).
   */
  maxMessageBytes?: number;
  /**
   * Wait before a failed handler is retried (in-process, holding the message's key), doubling per
   * attempt. Default 200.
   */
  redeliveryDelayMs?: number;
  /** Upper bound of the retry wait. Default 5000. */
  maxRedeliveryDelayMs?: number;
  /** How long a publish waits for its confirm (including while reconnecting) before failing, retryable. Default 10000. */
  publishTimeoutMs?: number;
  /**
   * Publisher confirm window: most messages published and not yet confirmed at once, across all
   * `publish` calls of this broker; a message beyond it waits for a confirm to free a slot (its
   * wait counts against the relay's publish timeout like any other). Bounds the broker's and the
   * client's memory when several relays or big batches publish at once. Default: no limit (every
   * message of a batch is handed to the channel at once).
   */
  publishWindow?: number;
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
