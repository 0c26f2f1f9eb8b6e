import {
  Kafka,
  logLevel as KafkaLogLevel,
  type Admin,
  type KafkaConfig,
  type LogEntry,
  type RetryOptions,
} from 'kafkajs';
import { InvalidOptionsError } from '../../core/errors';
import { errorChainText, errorText } from '../../core/error-text';
import { integerOption } from '../../core/options';
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
import { silentLogger, type SageLogger } from '../../core/ports/logger';
import { withTimeout } from '../../core/with-timeout';
import { DeadLetterReporter } from '../dead-letters';
import { DEFAULT_MAX_DELIVERIES, DEFAULT_MAX_MESSAGE_BYTES } from '../inbound-message';
import { KafkaTopicConsumer, type KafkaConsumerSettings } from './kafka-consumer';
import { KafkaLazyClient } from './kafka-lazy-client';
import { KafkaProducer } from './kafka-producer';
import { kafkaPublishSettings, type KafkaPublishOptions } from './kafka-publish-options';
import { checkKafkaSecurity, type KafkaSaslOptions, type KafkaSslOptions } from './kafka-security';
import { withTlsHint } from '../tls-failure-hint';

export type { KafkaSaslOptions, KafkaSslOptions, KafkaSaslMechanism } from './kafka-security';
export type { KafkaCompression, KafkaPublishOptions } from './kafka-publish-options';

export type KafkaBrokerLogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface KafkaBrokerOptions {
  /** Bootstrap servers, `host:port`. */
  brokers: string[];
  /** Kafka client id (shows in broker logs and quotas). Default `sage`. */
  clientId?: string;
  /** Broker name reported in errors and health. Default `kafka`. */
  name?: string;
  /** CloudEvents `source` attribute (`ce-source` header) unless a message header sets it. Default `sage`. */
  source?: string;
  /**
   * Unacknowledged produce requests per connection. The idempotent producer keeps order with at
   * most 5 (Kafka's limit for idempotence), so values above 5 are rejected. Default 5.
   */
  maxInFlight?: number;
  /** kafkajs client retry policy (producer, admin, consumers). Default: bounded, about 10 s in total. */
  retry?: RetryOptions;
  /** TCP connect timeout. Default 3000 ms. */
  connectionTimeoutMs?: number;
  /** Per-request timeout. Default 30000 ms. */
  requestTimeoutMs?: number;
  /** `health()` gives up after this long and reports down. Default 5000 ms. */
  healthTimeoutMs?: number;
  /**
   * TLS to the brokers (an `SSL` or `SASL_SSL` listener): `true` for Node's trusted CAs, or
   * `{ ca, cert, key, passphrase, servername, rejectUnauthorized }` (PEM contents) for a private CA
   * and a client certificate. Default: plaintext.
   */
  ssl?: KafkaSslOptions;
  /**
   * SASL authentication: `mechanism` (`plain`, `scram-sha-256` or `scram-sha-512`), `username`,
   * `password`. Use it with `ssl` (a `SASL_SSL` listener): PLAIN sends the password as is.
   */
  sasl?: KafkaSaslOptions;
  /** Where kafkajs's own log lines go (at `logLevel` and above). Default: dropped. */
  logger?: SageLogger;
  /** Minimum kafkajs log level forwarded to `logger`. Default `warn`. */
  logLevel?: KafkaBrokerLogLevel;
  /** Producer tuning: compression, linger, batch size (see KafkaPublishOptions). Default: none of them. */
  producer?: KafkaPublishOptions;
  consumer?: KafkaConsumerOptions;
}

export interface KafkaConsumerOptions {
  /** A new group (no committed offsets) starts at the earliest offset, so nothing published before it joined is missed. Default true. */
  fromBeginning?: boolean;
  /** Default 10000 ms (the broker's minimum is usually 6000). */
  sessionTimeoutMs?: number;
  /** Default 1000 ms. */
  heartbeatIntervalMs?: number;
  /** Fetch long-poll; bounds how fast an idle member notices a rebalance. Default 500 ms. */
  maxWaitTimeMs?: number;
  /** Partitions handled at once per subscription (order within a partition is always kept). Default 4. */
  partitionsConsumedConcurrently?: number;
  /** First redelivery delay after a handler failure, doubling per attempt. Default 200 ms. */
  redeliveryDelayMs?: number;
  /** Upper bound of the redelivery delay. Default 5000 ms. */
  maxRedeliveryDelayMs?: number;
  /** `subscribe()` resolves once the member has joined its group, or rejects after this long. Default 30000 ms. */
  joinTimeoutMs?: number;
  /**
   * Attempts at a record whose handler keeps failing before it is written to `${topic}.dlq` and
   * committed past (`SubscribeOptions.maxDeliveries` overrides it per subscription). Default 10.
   */
  maxDeliveries?: number;
  /**
   * Largest record value handed to a handler; a larger one is dead-lettered without being parsed.
   * Default 1 MiB (the producer's limit too). The broker's own limit is `message.max.bytes`.
   */
  maxMessageBytes?: number;
}

const LEVELS: Record<KafkaBrokerLogLevel, KafkaLogLevel> = {
  error: KafkaLogLevel.ERROR,
  warn: KafkaLogLevel.WARN,
  info: KafkaLogLevel.INFO,
  debug: KafkaLogLevel.DEBUG,
};

/**
 * The Kafka Broker on kafkajs.
 *
 * Publishing: an idempotent producer with `acks: -1`; the outbox key is the record key (same key →
 * same partition → per-key order); the value is the JSON payload; CloudEvents 1.0 binary-mode
 * headers (`ce-id` = outbox id, `ce-type`, `ce-source`, `ce-time`, `ce-subject` = key) plus the
 * message's own headers (`traceparent`, ...). A batch goes out as one request per topic, in parallel;
 * a topic whose request fails non-retryably (too large, invalid topic) is re-sent one message at a
 * time so only the guilty messages fail.
 *
 * Consuming: one kafkajs consumer per subscription (groupId = group ?? destination), auto-commit off.
 * Messages of a partition are handled one at a time, in order; an offset is committed only after
 * every handler up to it resolved. A rejected handler stops the partition at that offset (seek back),
 * pauses it for a back-off and redelivers from there, with `deliveryAttempt` counted per
 * (partition, offset); until it succeeded nothing past it in that partition is handled or committed,
 * so per-key order holds across handler failures and a crash or rebalance meanwhile redelivers it.
 */
export class KafkaBroker implements Broker {
  readonly name: string;
  /**
   * `requestTimeoutMs`: how long one produce request waits for its acknowledgement. kafkajs retries
   * a timed-out request (`retry`), so a stalled cluster can hold a publish longer than this.
   */
  readonly publishTimeoutMs: number;
  private readonly kafka: Kafka;
  /** The client settings, for the throwaway client probe() uses. */
  private readonly config: KafkaConfig;
  /** `host:port, host:port`: the bootstrap servers, for messages. */
  private readonly address: string;
  private readonly consumerSettings: KafkaConsumerSettings;
  private readonly healthTimeoutMs: number;
  private readonly logger: SageLogger;
  private readonly producer: KafkaProducer;
  private readonly admin: KafkaLazyClient<Admin>;
  private readonly consumers = new Set<KafkaTopicConsumer>();
  private readonly deadLetters = new DeadLetterReporter(() => this.logger);
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(options: KafkaBrokerOptions) {
    if (!options.brokers?.length)
      throw new InvalidOptionsError('kafka.brokers', 'must list at least one host:port');
    const maxInFlight = integerOption('kafka.maxInFlight', options.maxInFlight, {
      fallback: 5,
      min: 1,
      max: 5,
      why: 'the idempotent producer keeps order with at most 5',
    });
    const tuning = kafkaPublishSettings(options.producer);
    this.name = options.name ?? 'kafka';
    this.healthTimeoutMs = options.healthTimeoutMs ?? 5000;
    const logger = (this.logger = options.logger ?? silentLogger);
    this.consumerSettings = consumerSettings(options.consumer ?? {});
    this.publishTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.address = options.brokers.join(', ');
    const { ssl, sasl } = checkKafkaSecurity(options.ssl, options.sasl, logger);
    this.config = {
      clientId: options.clientId ?? 'sage',
      brokers: options.brokers,
      ssl,
      sasl,
      connectionTimeout: options.connectionTimeoutMs ?? 3000,
      requestTimeout: this.publishTimeoutMs,
      // Bounded (≈10 s): publish() must come back so the relay can retry or stop; the inbox makes
      // the resulting duplicates harmless. kafkajs warns that this "may invalidate EoS guarantees":
      // Sage promises at-least-once delivery, not Kafka exactly-once.
      retry: options.retry ?? { retries: 8, initialRetryTime: 100, maxRetryTime: 2000 },
      logLevel: LEVELS[options.logLevel ?? 'warn'],
      logCreator: () => {
        const quiet = { until: 0 };
        return (entry: LogEntry) => forwardLog(logger, entry, quiet);
      },
    };
    this.kafka = new Kafka(this.config);
    const isClosed = (): boolean => this.closed;
    this.producer = new KafkaProducer(this.kafka, {
      name: this.name,
      address: this.address,
      source: options.source ?? 'sage',
      maxInFlight,
      tuning,
      logger,
      isClosed,
    });
    this.admin = new KafkaLazyClient(this.name, () => this.kafka.admin(), isClosed);
  }

  async publish(batch: readonly BrokerMessage[], signal?: AbortSignal): Promise<PublishResult[]> {
    if (this.closed) throw new BrokerPublishError(this.name, 'broker is closed', true);
    if (batch.length === 0) return [];
    return this.producer.publish(batch, signal);
  }

  async subscribe(
    destination: string,
    handler: (message: DeliveredMessage) => Promise<void>,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    if (this.closed) throw new BrokerPublishError(this.name, 'broker is closed', false);
    const group = options.group ?? destination;
    const consumer = new KafkaTopicConsumer(
      {
        kafka: this.kafka,
        brokerName: this.name,
        logger: this.logger,
        settings: this.consumerSettings,
        ensureTopic: (topic) => this.ensureTopic(topic),
        sendRecord: (topic, record) => this.producer.sendRecord(topic, record),
        deadLetters: this.deadLetters,
      },
      destination,
      group,
      handler,
      integerOption('subscribe.maxDeliveries', options.maxDeliveries, {
        fallback: this.consumerSettings.maxDeliveries,
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
    this.consumers.add(consumer);
    try {
      await consumer.start();
    } catch (error) {
      await this.stopConsumer(consumer);
      throw new BrokerUnavailableError(
        this.name,
        `cannot subscribe to "${destination}" (group "${group}") on Kafka at ${this.address}: ${connectFailureText(error, this.config.ssl)}`,
        { cause: error },
      );
    }
    return { unsubscribe: () => this.stopConsumer(consumer) };
  }

  onDeadLetter(listener: (event: DeadLetteredMessage) => void): () => void {
    return this.deadLetters.listen(listener);
  }

  async health(): Promise<BrokerHealth> {
    if (this.closed) return { up: false, detail: 'closed' };
    const crashed = [...this.consumers].find((c) => c.crashed);
    try {
      const cluster = await withTimeout(
        this.admin.connected().then((admin) => admin.describeCluster()),
        this.healthTimeoutMs,
        () => new Error(`no cluster metadata within ${this.healthTimeoutMs} ms`),
      );
      if (crashed)
        return {
          up: false,
          detail: `consumer of "${crashed.destination}" (group "${crashed.group}") stopped: ${crashed.crashed}`,
        };
      return {
        up: true,
        detail: `${cluster.brokers.length} broker(s), controller ${cluster.controller}`,
      };
    } catch (error) {
      return { up: false, detail: errorText(error) };
    }
  }

  /**
   * One connection attempt with a throwaway client (no retries, kafkajs's own logging off: the
   * outcome is the answer) asking for the cluster metadata; down names the bootstrap servers and
   * the cause.
   */
  async probe(timeoutMs: number): Promise<BrokerHealth> {
    if (this.closed) return { up: false, detail: 'closed' };
    const admin = new Kafka({
      ...this.config,
      retry: { retries: 0 },
      connectionTimeout: Math.min(this.config.connectionTimeout ?? 3000, timeoutMs),
      logLevel: KafkaLogLevel.NOTHING,
    }).admin();
    try {
      const cluster = await withTimeout(
        admin.connect().then(() => admin.describeCluster()),
        timeoutMs,
        () => new Error(`no cluster metadata within ${timeoutMs} ms`),
      );
      return {
        up: true,
        detail: `${cluster.brokers.length} broker(s), controller ${cluster.controller}`,
      };
    } catch (error) {
      return {
        up: false,
        detail: `cannot reach Kafka at ${this.address}: ${connectFailureText(error, this.config.ssl)}`,
      };
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  close(): Promise<void> {
    this.closed = true;
    this.closing ??= (async () => {
      await Promise.allSettled([...this.consumers].map((c) => this.stopConsumer(c)));
      await Promise.allSettled([this.producer.disconnect(), this.admin.disconnect()]);
    })();
    return this.closing;
  }

  private async ensureTopic(topic: string): Promise<void> {
    const admin = await this.admin.connected();
    if ((await admin.listTopics()).includes(topic)) return;
    try {
      await admin.createTopics({ topics: [{ topic }], waitForLeaders: true });
    } catch (error) {
      // Created meanwhile by another subscriber or the producer: fine.
      if (!/already exists/i.test(errorText(error))) throw error;
    }
  }

  private async stopConsumer(consumer: KafkaTopicConsumer): Promise<void> {
    if (!this.consumers.has(consumer)) return;
    try {
      await consumer.stop();
    } finally {
      this.consumers.delete(consumer);
    }
  }
}

const TLS_NAMES = { ca: 'ssl.ca', cert: 'ssl.cert and ssl.key', enable: 'ssl' };

/**
 * A connection failure's text (with its causes) and what it likely means: a TLS failure names the
 * ssl option to set; a failed SASL handshake says to check the mechanism and credentials (kafkajs's
 * texts never include the password).
 */
function connectFailureText(error: unknown, ssl: unknown): string {
  const text = withTlsHint(errorChainText(error), TLS_NAMES);
  if (!ssl && /Closed connection|Connection timeout/i.test(text))
    return `${text} (if the listener expects TLS — SSL or SASL_SSL — set ssl)`;
  if (/SASL .* authentication failed|Authentication failed/i.test(text))
    return `${text} (check sasl.mechanism, sasl.username and sasl.password, and that the user exists for that mechanism on the brokers)`;
  return text;
}

function consumerSettings(c: KafkaConsumerOptions): KafkaConsumerSettings {
  return {
    fromBeginning: c.fromBeginning ?? true,
    sessionTimeoutMs: c.sessionTimeoutMs ?? 10_000,
    heartbeatIntervalMs: c.heartbeatIntervalMs ?? 1000,
    maxWaitTimeMs: c.maxWaitTimeMs ?? 500,
    partitionsConsumedConcurrently: c.partitionsConsumedConcurrently ?? 4,
    redeliveryDelayMs: c.redeliveryDelayMs ?? 200,
    maxRedeliveryDelayMs: c.maxRedeliveryDelayMs ?? 5000,
    joinTimeoutMs: c.joinTimeoutMs ?? 30_000,
    maxDeliveries: integerOption('kafka.consumer.maxDeliveries', c.maxDeliveries, {
      fallback: DEFAULT_MAX_DELIVERIES,
      min: 1,
    }),
    maxMessageBytes: integerOption('kafka.consumer.maxMessageBytes', c.maxMessageBytes, {
      fallback: DEFAULT_MAX_MESSAGE_BYTES,
      min: 1,
    }),
  };
}

/** kafkajs's log lines for a broker it cannot reach: one per connection attempt while it is down. */
const CONNECTION_FAILURE = /Connection error|Connection timeout|Failed to connect to seed broker/;

/**
 * kafkajs's log lines to the SageLogger. Its connection failures repeat with every retry of every
 * client for as long as an outage lasts: the first is logged at its level, the next ones at debug
 * for a minute (`quiet` holds when the last one was logged).
 */
function forwardLog(
  logger: SageLogger,
  { namespace, level, log }: LogEntry,
  quiet: { until: number },
): void {
  const { message, timestamp: _timestamp, ...fields } = log;
  const text = `kafkajs ${namespace}: ${String(message)}`;
  if (level <= KafkaLogLevel.WARN && CONNECTION_FAILURE.test(String(message))) {
    const now = Date.now();
    if (now < quiet.until) {
      logger.debug(text, fields);
      return;
    }
    quiet.until = now + 60_000;
  }
  if (level === KafkaLogLevel.ERROR) logger.error(text, fields);
  else if (level === KafkaLogLevel.WARN) logger.warn(text, fields);
  else if (level === KafkaLogLevel.INFO) logger.info(text, fields);
  else logger.debug(text, fields);
}
