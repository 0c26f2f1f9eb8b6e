import {
  Kafka,
  Partitioners,
  logLevel as KafkaLogLevel,
  type Admin,
  type Consumer,
  type EachBatchPayload,
  type IHeaders,
  type KafkaMessage,
  type LogEntry,
  type Message,
  type Producer,
  type RetryOptions,
  type SASLOptions,
} from 'kafkajs';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
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
import { silentLogger, type SageLogger } from '../../core/ports/logger';

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
  ssl?: boolean | TlsConnectionOptions;
  sasl?: SASLOptions;
  /** Where kafkajs's own log lines go (at `logLevel` and above). Default: dropped. */
  logger?: SageLogger;
  /** Minimum kafkajs log level forwarded to `logger`. Default `warn`. */
  logLevel?: KafkaBrokerLogLevel;
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
}

/** Protocol errors after which the broker will never take the message: the relay dead-letters it. */
const NON_RETRYABLE_TYPES = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_TOPIC_EXCEPTION',
  'INVALID_RECORD',
  'CORRUPT_MESSAGE',
  'UNSUPPORTED_FOR_MESSAGE_FORMAT',
]);

/** Kafka's topic-name rule (legal characters, at most 249 of them). */
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

/** Headers that carry `DeliveredMessage` fields; every other header is passed through as-is. */
const FIELD_HEADERS = new Set([
  'ce-specversion',
  'ce-id',
  'ce-type',
  'ce-time',
  'ce-subject',
  'content-type',
]);

const LEVELS: Record<KafkaBrokerLogLevel, KafkaLogLevel> = {
  error: KafkaLogLevel.ERROR,
  warn: KafkaLogLevel.WARN,
  info: KafkaLogLevel.INFO,
  debug: KafkaLogLevel.DEBUG,
};

interface ConsumerEntry {
  destination: string;
  group: string;
  consumer: Consumer;
  active: boolean;
  running: Set<Promise<void>>;
  timers: Set<NodeJS.Timeout>;
  /** Failed deliveries per `partition:offset`, so a redelivery knows its attempt number. */
  failures: Map<string, number>;
  /**
   * Per partition, the offset whose handler failed and awaits redelivery. Nothing past it is handed
   * over, resolved or committed until it succeeded (a batch fetched past it is dropped and the
   * partition seeks back), so a later message of its key never overtakes it and a commit never
   * skips it. Cleared on a group join: a new assignment starts from the committed offset, which
   * never passes it.
   */
  blocked: Map<number, string>;
  crashed?: string;
}

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
  private readonly kafka: Kafka;
  private readonly source: string;
  private readonly consumerOptions: Required<KafkaConsumerOptions>;
  private readonly healthTimeoutMs: number;
  private readonly logger: SageLogger;
  private readonly maxInFlight: number;
  private producer: Producer | undefined;
  private producerReady: Promise<Producer> | undefined;
  private admin: Admin | undefined;
  private adminReady: Promise<Admin> | undefined;
  private readonly consumers = new Set<ConsumerEntry>();
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: KafkaBrokerOptions) {
    if (!options.brokers?.length)
      throw new BrokerPublishError(
        'kafka',
        'options.brokers must list at least one host:port',
        false,
      );
    const maxInFlight = options.maxInFlight ?? 5;
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1 || maxInFlight > 5)
      throw new BrokerPublishError(
        'kafka',
        `options.maxInFlight must be an integer from 1 to 5 for the idempotent producer (got ${maxInFlight})`,
        false,
      );
    this.name = options.name ?? 'kafka';
    this.source = options.source ?? 'sage';
    this.healthTimeoutMs = options.healthTimeoutMs ?? 5000;
    this.logger = options.logger ?? silentLogger;
    const c = options.consumer ?? {};
    this.consumerOptions = {
      fromBeginning: c.fromBeginning ?? true,
      sessionTimeoutMs: c.sessionTimeoutMs ?? 10_000,
      heartbeatIntervalMs: c.heartbeatIntervalMs ?? 1000,
      maxWaitTimeMs: c.maxWaitTimeMs ?? 500,
      partitionsConsumedConcurrently: c.partitionsConsumedConcurrently ?? 4,
      redeliveryDelayMs: c.redeliveryDelayMs ?? 200,
      maxRedeliveryDelayMs: c.maxRedeliveryDelayMs ?? 5000,
      joinTimeoutMs: c.joinTimeoutMs ?? 30_000,
    };
    const logger = this.logger;
    this.kafka = new Kafka({
      clientId: options.clientId ?? 'sage',
      brokers: options.brokers,
      ssl: options.ssl,
      sasl: options.sasl,
      connectionTimeout: options.connectionTimeoutMs ?? 3000,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      // Bounded (≈10 s): publish() must come back so the relay can retry or stop; the inbox makes
      // the resulting duplicates harmless. kafkajs warns that this "may invalidate EoS guarantees":
      // Sage promises at-least-once delivery, not Kafka exactly-once.
      retry: options.retry ?? { retries: 8, initialRetryTime: 100, maxRetryTime: 2000 },
      logLevel: LEVELS[options.logLevel ?? 'warn'],
      logCreator: () => (entry: LogEntry) => forwardLog(logger, entry),
    });
    this.maxInFlight = maxInFlight;
  }

  async publish(batch: readonly BrokerMessage[], signal?: AbortSignal): Promise<PublishResult[]> {
    if (this.closed) throw new BrokerPublishError(this.name, 'broker is closed', true);
    if (batch.length === 0) return [];
    const results = new Map<string, PublishResult>();
    const byTopic = new Map<string, BrokerMessage[]>();
    for (const message of batch) {
      if (!isValidTopic(message.destination)) {
        results.set(message.id, {
          id: message.id,
          ok: false,
          error: `invalid Kafka topic name "${message.destination}" (allowed: 1-249 of [a-zA-Z0-9._-], not "." or "..")`,
          retryable: false,
        });
        continue;
      }
      const group = byTopic.get(message.destination);
      if (group) group.push(message);
      else byTopic.set(message.destination, [message]);
    }

    let unsent = 'no acknowledgement';
    if (byTopic.size > 0) {
      let producer: Producer | undefined;
      try {
        producer = await raceAbort(this.connectedProducer(), signal);
      } catch (error) {
        unsent = errorMessage(error); // whole-request failure: every message failed, retryable
      }
      if (producer) {
        const work = Promise.all(
          [...byTopic].map(([topic, messages]) => this.publishTopic(topic, messages, results)),
        );
        // Abort stops the waiting, not kafkajs: what has not settled by then is reported failed,
        // retryable; the relay sends it again (at-least-once).
        await raceAbort(work, signal);
      }
      if (signal?.aborted) unsent = 'publish aborted before the broker acknowledged';
    }

    return batch.map(
      (m) =>
        results.get(m.id) ?? {
          id: m.id,
          ok: false,
          error: unsent,
          retryable: true,
        },
    );
  }

  async subscribe(
    destination: string,
    handler: (message: DeliveredMessage) => Promise<void>,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    if (this.closed) throw new BrokerPublishError(this.name, 'broker is closed', false);
    const group = options.group ?? destination;
    const o = this.consumerOptions;
    const consumer = this.kafka.consumer({
      groupId: group,
      sessionTimeout: o.sessionTimeoutMs,
      heartbeatInterval: o.heartbeatIntervalMs,
      maxWaitTimeInMs: o.maxWaitTimeMs,
      allowAutoTopicCreation: true,
    });
    const entry: ConsumerEntry = {
      destination,
      group,
      consumer,
      active: true,
      running: new Set(),
      timers: new Set(),
      failures: new Map(),
      blocked: new Map(),
    };
    consumer.on(consumer.events.GROUP_JOIN, () => entry.blocked.clear());
    consumer.on(consumer.events.CRASH, (event) => {
      if (event.payload.restart) return;
      entry.crashed = event.payload.error.message;
      this.logger.error('Kafka consumer crashed and will not restart', {
        broker: this.name,
        destination,
        group,
        error: event.payload.error.message,
      });
    });
    const joined = new Promise<void>((resolve) => {
      const off = consumer.on(consumer.events.GROUP_JOIN, () => {
        off();
        resolve();
      });
    });
    this.consumers.add(entry);
    try {
      await consumer.connect();
      // A consumer may start before anything was published to its topic (a participant deployed
      // before the service that sends it commands): create the topic (broker defaults; no-op when
      // it exists) and wait for its leaders, else the subscription fails on unknown partitions.
      await this.ensureTopic(destination);
      await consumer.subscribe({ topics: [destination], fromBeginning: o.fromBeginning });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: o.partitionsConsumedConcurrently,
        eachBatch: (payload) => this.handleBatch(entry, handler, payload),
      });
      await withTimeout(
        joined,
        o.joinTimeoutMs,
        `consumer group "${group}" did not join within ${o.joinTimeoutMs} ms`,
      );
    } catch (error) {
      await this.stopConsumer(entry);
      throw new BrokerPublishError(
        this.name,
        `subscribe to "${destination}" (group "${group}") failed: ${errorMessage(error)}`,
        true,
        { cause: error },
      );
    }
    return { unsubscribe: () => this.stopConsumer(entry) };
  }

  async health(): Promise<BrokerHealth> {
    if (this.closed) return { up: false, detail: 'closed' };
    const crashed = [...this.consumers].find((c) => c.crashed);
    try {
      const cluster = await withTimeout(
        this.connectedAdmin().then((admin) => admin.describeCluster()),
        this.healthTimeoutMs,
        `no cluster metadata within ${this.healthTimeoutMs} ms`,
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
      return { up: false, detail: errorMessage(error) };
    }
  }

  close(): Promise<void> {
    this.closed = true;
    this.closing ??= (async () => {
      await Promise.allSettled([...this.consumers].map((c) => this.stopConsumer(c)));
      // The instances, not the connect promises: a connect still retrying must not hold close() up.
      const producer = this.producer?.disconnect();
      const admin = this.admin?.disconnect();
      await Promise.allSettled([producer, admin]);
    })();
    return this.closing;
  }

  /** Sends one topic's messages in one request; on a non-retryable failure, one by one to find the guilty ones. */
  private async publishTopic(
    topic: string,
    messages: readonly BrokerMessage[],
    results: Map<string, PublishResult>,
  ): Promise<void> {
    let producer: Producer | undefined;
    try {
      producer = await this.connectedProducer();
      await producer.sendBatch({
        acks: -1,
        topicMessages: [{ topic, messages: messages.map((m) => this.toRecord(m)) }],
      });
      for (const m of messages) results.set(m.id, { id: m.id, ok: true });
      return;
    } catch (error) {
      if (producer) this.discardProducer(producer);
      const retryable = isRetryable(error);
      if (retryable || messages.length === 1) {
        for (const m of messages)
          results.set(m.id, { id: m.id, ok: false, error: failureText(topic, error), retryable });
        return;
      }
    }
    // Some partitions of the failed request may have been written; sending those again makes
    // duplicates (at-least-once), never a loss.
    await Promise.all(messages.map((m) => this.publishTopic(topic, [m], results)));
  }

  /**
   * After a failed send, kafkajs rolls its idempotence sequence numbers back although the broker
   * may have written some of the partitions (or the request timed out after being written); the
   * next send would then reuse sequence numbers and the broker would drop it as a "duplicate"
   * while acknowledging it. A fresh producer (a new producer id) cannot collide.
   */
  private discardProducer(producer: Producer): void {
    if (this.producer !== producer) return;
    this.producer = undefined;
    this.producerReady = undefined;
    producer.disconnect().catch((error: unknown) =>
      this.logger.warn('Kafka producer did not disconnect cleanly', {
        broker: this.name,
        error: errorMessage(error),
      }),
    );
  }

  private toRecord(m: BrokerMessage): Message {
    const headers: IHeaders = {
      'ce-source': this.source,
      ...m.headers,
      'ce-specversion': '1.0',
      'ce-id': m.id,
      'ce-type': m.type,
      'ce-time': m.time.toISOString(),
      'content-type': 'application/json',
    };
    if (m.key !== null) headers['ce-subject'] = m.key;
    return { key: m.key, value: JSON.stringify(m.payload), headers };
  }

  /**
   * A client whose connect finished after close() (which disconnected it mid-connect) would keep
   * its socket, and the process, alive: disconnect it again and fail the caller.
   */
  private unlessClosed<C extends { disconnect(): Promise<void> }>(client: C): C {
    if (!this.closed) return client;
    void client.disconnect().catch(() => undefined);
    throw new BrokerPublishError(this.name, 'broker is closed', false);
  }

  private connectedProducer(): Promise<Producer> {
    if (!this.producerReady) {
      const producer = this.kafka.producer({
        idempotent: true,
        maxInFlightRequests: this.maxInFlight,
        allowAutoTopicCreation: true,
        // Java client's murmur2 partitioner: a key lands on the same partition from any client.
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      this.producer = producer;
      this.producerReady = producer.connect().then(
        () => this.unlessClosed(producer),
        (error: unknown) => {
          if (this.producer === producer) {
            this.producer = undefined;
            this.producerReady = undefined;
          }
          throw new BrokerPublishError(
            this.name,
            `producer cannot connect: ${errorMessage(error)}`,
            true,
            {
              cause: error,
            },
          );
        },
      );
    }
    return this.producerReady;
  }

  private async ensureTopic(topic: string): Promise<void> {
    const admin = await this.connectedAdmin();
    if ((await admin.listTopics()).includes(topic)) return;
    try {
      await admin.createTopics({ topics: [{ topic }], waitForLeaders: true });
    } catch (error) {
      // Created meanwhile by another subscriber or the producer: fine.
      if (!/already exists/i.test(errorMessage(error))) throw error;
    }
  }

  private connectedAdmin(): Promise<Admin> {
    if (!this.adminReady) {
      const admin = (this.admin = this.kafka.admin());
      this.adminReady = admin.connect().then(
        () => this.unlessClosed(admin),
        (error: unknown) => {
          if (this.admin === admin) {
            this.admin = undefined;
            this.adminReady = undefined;
          }
          throw error;
        },
      );
    }
    return this.adminReady;
  }

  private async handleBatch(
    entry: ConsumerEntry,
    handler: (message: DeliveredMessage) => Promise<void>,
    payload: EachBatchPayload,
  ): Promise<void> {
    const { topic, partition } = payload.batch;
    let handledUpTo: string | undefined;
    const commit = async (): Promise<void> => {
      if (handledUpTo === undefined) return;
      const offset = (BigInt(handledUpTo) + 1n).toString();
      handledUpTo = undefined;
      await payload.commitOffsetsIfNecessary({
        topics: [{ topic, partitions: [{ partition, offset }] }],
      });
    };

    const blocked = entry.blocked.get(partition);
    const first = payload.batch.messages[0];
    if (blocked !== undefined && first && BigInt(first.offset) > BigInt(blocked)) {
      // Fetched past an offset that awaits redelivery: handing it over would let a later message of
      // the key overtake the failed one, and committing it would skip that one. Go back to it.
      this.logger.warn('Kafka batch starts past a failed offset; seeking back to it', {
        broker: this.name,
        topic,
        partition,
        group: entry.group,
        failedOffset: blocked,
        batchFirstOffset: first.offset,
      });
      entry.consumer.seek({ topic, partition, offset: blocked });
      return;
    }

    for (const record of payload.batch.messages) {
      if (!entry.active || !payload.isRunning() || payload.isStale()) break;
      const key = `${partition}:${record.offset}`;
      const attempt = (entry.failures.get(key) ?? 0) + 1;
      const run = handler(toDelivered(topic, partition, record, attempt));
      entry.running.add(run);
      try {
        await run;
      } catch (error) {
        entry.failures.set(key, attempt);
        entry.blocked.set(partition, record.offset);
        // Commit what succeeded before it (never past it), then start again from this offset.
        await commit();
        entry.consumer.seek({ topic, partition, offset: record.offset });
        const o = this.consumerOptions;
        const delay = Math.min(o.redeliveryDelayMs * 2 ** (attempt - 1), o.maxRedeliveryDelayMs);
        this.logger.warn('Kafka handler failed; the message will be redelivered', {
          broker: this.name,
          topic,
          partition,
          offset: record.offset,
          group: entry.group,
          attempt,
          retryInMs: delay,
          error: errorMessage(error),
        });
        const resume = payload.pause();
        const timer = setTimeout(() => {
          entry.timers.delete(timer);
          resume();
        }, delay);
        entry.timers.add(timer);
        return;
      } finally {
        entry.running.delete(run);
      }
      entry.failures.delete(key);
      if (entry.blocked.get(partition) === record.offset) entry.blocked.delete(partition);
      payload.resolveOffset(record.offset);
      handledUpTo = record.offset;
      try {
        await payload.heartbeat();
      } catch (error) {
        // A rebalance is starting: keep what was handled, then let kafkajs rejoin.
        await commit().catch(() => undefined);
        throw error;
      }
    }
    await commit();
  }

  private async stopConsumer(entry: ConsumerEntry): Promise<void> {
    if (!this.consumers.has(entry)) return;
    entry.active = false;
    for (const timer of entry.timers) clearTimeout(timer);
    entry.timers.clear();
    try {
      await entry.consumer.disconnect();
    } finally {
      await Promise.allSettled([...entry.running]);
      this.consumers.delete(entry);
    }
  }
}

function toDelivered(
  topic: string,
  partition: number,
  record: KafkaMessage,
  attempt: number,
): DeliveredMessage {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(record.headers ?? {})) {
    if (value === undefined) continue;
    const text = Array.isArray(value) ? value.map(String).join(',') : String(value);
    headers[name] = text;
  }
  const time = headers['ce-time']
    ? new Date(headers['ce-time'])
    : new Date(Number(record.timestamp));
  const delivered: DeliveredMessage = {
    // A record from a non-Sage producer has no ce-id; its position (offsets are per partition) is its identity.
    id: headers['ce-id'] ?? `${topic}/${partition}/${record.offset}`,
    destination: topic,
    key: record.key === null ? null : record.key.toString(),
    type: headers['ce-type'] ?? '',
    payload: parsePayload(record.value),
    headers: {},
    time,
    deliveryAttempt: attempt,
  };
  for (const [name, value] of Object.entries(headers))
    if (!FIELD_HEADERS.has(name)) delivered.headers[name] = value;
  return delivered;
}

/** JSON payloads come back as values; a non-JSON value (another producer) as its text; a tombstone as null. */
function parsePayload(value: Buffer | null): JsonValue {
  if (value === null) return null;
  const text = value.toString('utf8');
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return text;
  }
}

function isValidTopic(topic: string): boolean {
  return TOPIC_NAME.test(topic) && topic !== '.' && topic !== '..';
}

/** Non-retryable only for the protocol errors that mean "never" (see NON_RETRYABLE_TYPES), anywhere in the cause chain. */
function isRetryable(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 10; depth++) {
    const type = (e as { type?: unknown }).type;
    if (typeof type === 'string' && NON_RETRYABLE_TYPES.has(type)) return false;
    e = (e as { cause?: unknown }).cause;
  }
  return true;
}

function failureText(topic: string, error: unknown): string {
  let root: unknown = error;
  while ((root as { cause?: unknown }).cause) root = (root as { cause: unknown }).cause;
  const type = (root as { type?: unknown }).type;
  return `topic "${topic}": ${errorMessage(error)}${typeof type === 'string' ? ` (${type})` : ''}`;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function forwardLog(logger: SageLogger, { namespace, level, log }: LogEntry): void {
  const { message, timestamp: _timestamp, ...fields } = log;
  const text = `kafkajs ${namespace}: ${String(message)}`;
  if (level === KafkaLogLevel.ERROR) logger.error(text, fields);
  else if (level === KafkaLogLevel.WARN) logger.warn(text, fields);
  else if (level === KafkaLogLevel.INFO) logger.info(text, fields);
  else logger.debug(text, fields);
}

/** Resolves with the promise's value, or undefined once `signal` aborts (the promise keeps running, its rejection handled). */
function raceAbort<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T | undefined> {
  if (!signal) return promise;
  promise.catch(() => undefined);
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = (): void => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/** Rejects after `ms` (clearing its timer either way); the promise keeps running, its rejection handled. */
function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  promise.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
