import { Partitioners, type Kafka, type Message, type Producer } from 'kafkajs';
import { errorText } from '../../core/error-text';
import { BrokerPublishError } from '../../core/outbox/outbox-errors';
import type { BrokerMessage, PublishResult } from '../../core/ports/broker';
import type { SageLogger } from '../../core/ports/logger';
import { raceAbort } from '../../core/race-abort';
import { KafkaLazyClient } from './kafka-lazy-client';
import { toKafkaRecord } from './kafka-message-codec';
import type { KafkaPublishSettings } from './kafka-publish-options';
import { PublishLinger } from './publish-linger';

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

export interface KafkaProducerOptions {
  /** Broker name in errors and logs. */
  name: string;
  /** The bootstrap servers (`host:port, …`), in errors. */
  address: string;
  /** CloudEvents `source` unless a message header sets it. */
  source: string;
  maxInFlight: number;
  /** Compression, linger and batch size (KafkaBrokerOptions.producer). */
  tuning: KafkaPublishSettings;
  logger: SageLogger;
  isClosed: () => boolean;
}

/**
 * KafkaBroker's publishing side: an idempotent producer with `acks: -1`, connected on first use.
 * A batch goes out as one request per topic; a topic whose request fails non-retryably (too
 * large, invalid topic) is re-sent one message at a time so only the guilty messages fail.
 *
 * One produce call at a time on the producer (`oneAtATime`), however many `publish()` calls run
 * at once: see `discard` for why concurrent calls on a kafkajs idempotent producer can have the
 * broker acknowledge a message it never wrote.
 */
export class KafkaProducer {
  private readonly producer: KafkaLazyClient<Producer>;
  /** Set when `lingerMs` > 0: publishes wait there to share produce requests. */
  private readonly linger: PublishLinger | undefined;
  /** The produce call running now (settled or not): the next one waits for it. */
  private turn: Promise<unknown> = Promise.resolve();

  constructor(
    kafka: Kafka,
    private readonly options: KafkaProducerOptions,
  ) {
    this.producer = new KafkaLazyClient(
      options.name,
      () =>
        kafka.producer({
          idempotent: true,
          maxInFlightRequests: options.maxInFlight,
          allowAutoTopicCreation: true,
          // Java client's murmur2 partitioner: a key lands on the same partition from any client.
          createPartitioner: Partitioners.DefaultPartitioner,
        }),
      options.isClosed,
      (error) =>
        new BrokerPublishError(
          options.name,
          `producer cannot connect to Kafka at ${options.address}: ${errorText(error)}`,
          true,
          { cause: error },
        ),
    );
    const { lingerMs, batchSize } = options.tuning;
    if (lingerMs > 0)
      this.linger = new PublishLinger(lingerMs, batchSize, (batch) => this.publishNow(batch));
  }

  publish(batch: readonly BrokerMessage[], signal?: AbortSignal): Promise<PublishResult[]> {
    return this.linger ? this.linger.publish(batch, signal) : this.publishNow(batch, signal);
  }

  private async publishNow(
    batch: readonly BrokerMessage[],
    signal?: AbortSignal,
  ): Promise<PublishResult[]> {
    const results = new Map<string, PublishResult>();
    const byTopic = groupByTopic(batch, results);
    let unsent = 'no acknowledgement';
    let unreachable = false;
    if (byTopic.size > 0) {
      let producer: Producer | undefined;
      try {
        producer = await raceAbort(this.producer.connected(), signal);
      } catch (error) {
        unsent = errorText(error); // whole-request failure: every message failed, retryable
        // Cannot connect: the outage, not these messages' fault (the relay does not count it).
        unreachable = !signal?.aborted;
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
          ...(unreachable && !signal?.aborted ? { unavailable: true } : {}),
        },
    );
  }

  disconnect(): Promise<void> | undefined {
    this.linger?.flush(); // what lingers goes out (or fails retryable) rather than wait for ever
    return this.producer.disconnect();
  }

  /**
   * Writes one record as it is (a dead letter) and resolves once every in-sync replica has it.
   * A body the broker refuses as too large is written without it, the headers saying so: the
   * reason and the source position are what must not be lost. Rejects otherwise (the consumer
   * retries the dead letter later).
   */
  async sendRecord(topic: string, record: Message): Promise<void> {
    const failure = await this.oneAtATime(async () => {
      const producer = await this.producer.connected();
      try {
        await producer.send({
          topic,
          acks: -1,
          compression: this.options.tuning.compression,
          messages: [record],
        });
        return undefined;
      } catch (error) {
        this.discard(producer);
        return { error };
      }
    });
    if (!failure) return;
    const { error } = failure;
    if (isRetryable(error) || record.value === null) throw error;
    const headers = {
      ...record.headers,
      'sage-dead-letter-body-omitted': failureText(topic, error),
    };
    await this.sendRecord(topic, { ...record, value: null, headers });
  }

  /**
   * Sends one topic's messages in requests of at most `batchSize`, one after another (per-key
   * order); what a failed request held gets its failure and the rest still goes out.
   */
  private async publishTopic(
    topic: string,
    messages: readonly BrokerMessage[],
    results: Map<string, PublishResult>,
  ): Promise<void> {
    const size = this.options.tuning.batchSize;
    if (messages.length <= size) return this.publishRequest(topic, messages, results);
    for (let from = 0; from < messages.length; from += size)
      await this.publishRequest(topic, messages.slice(from, from + size), results);
  }

  /** Sends messages of one topic in one request; on a non-retryable failure, one by one to find the guilty ones. */
  private async publishRequest(
    topic: string,
    messages: readonly BrokerMessage[],
    results: Map<string, PublishResult>,
  ): Promise<void> {
    const oneByOne = await this.oneAtATime(async () => {
      let producer: Producer | undefined;
      try {
        producer = await this.producer.connected();
        await producer.sendBatch({
          acks: -1,
          compression: this.options.tuning.compression,
          topicMessages: [
            { topic, messages: messages.map((m) => toKafkaRecord(m, this.options.source)) },
          ],
        });
        for (const m of messages) results.set(m.id, { id: m.id, ok: true });
        return false;
      } catch (error) {
        if (producer) this.discard(producer);
        const retryable = isRetryable(error);
        if (!retryable && messages.length > 1) return true;
        // A lost connection is the outage, not these messages' fault (the relay does not count it).
        const unavailable = retryable && isConnectionFailure(error);
        for (const m of messages)
          results.set(m.id, {
            id: m.id,
            ok: false,
            error: failureText(topic, error),
            retryable,
            ...(unavailable ? { unavailable: true } : {}),
          });
        return false;
      }
    });
    if (!oneByOne) return;
    // Some partitions of the failed request may have been written; sending those again makes
    // duplicates (at-least-once), never a loss.
    await Promise.all(messages.map((m) => this.publishRequest(topic, [m], results)));
  }

  /**
   * Runs `call` (a produce call: connect, send, discard on failure) once every earlier one has
   * settled, so the producer never has two produce calls at once. The turn ends when kafkajs's
   * promise settles, not when a caller stops waiting (an abort).
   */
  private oneAtATime<T>(call: () => Promise<T>): Promise<T> {
    const run = this.turn.then(call, call);
    this.turn = run.catch(() => undefined);
    return run;
  }

  /**
   * After a failed send, kafkajs rolls its idempotence sequence numbers back although the broker
   * may have written some of the partitions (or the request timed out after being written); the
   * next send would then reuse sequence numbers and the broker would drop it as a "duplicate"
   * while acknowledging it (with the offset of the batch it already had). A fresh producer (a new
   * producer id) cannot collide. That holds only with one produce call at a time (`oneAtATime`):
   * with several, calls already inside kafkajs go on with the rolled-back numbers, and the
   * disconnect drops requests the broker writes anyway. Found by the WAL relay's chaos run (8
   * publishes at once): acknowledged messages missing from the topic, 312 of 8,000 in a
   * reproduction, 0 with one call at a time.
   */
  private discard(producer: Producer): void {
    if (!this.producer.forget(producer)) return;
    producer.disconnect().catch((error: unknown) =>
      this.options.logger.warn('Kafka producer did not disconnect cleanly', {
        broker: this.options.name,
        error: errorText(error),
      }),
    );
  }
}

/** The batch per topic; a message whose topic Kafka would refuse gets its (non-retryable) result at once. */
function groupByTopic(
  batch: readonly BrokerMessage[],
  results: Map<string, PublishResult>,
): Map<string, BrokerMessage[]> {
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
  return byTopic;
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
  return `topic "${topic}": ${errorText(error)}${typeof type === 'string' ? ` (${type})` : ''}`;
}

/**
 * kafkajs errors that mean the broker could not be reached, looked for down a short cause chain
 * (kafkajs wraps a connection failure it gave up retrying in KafkaJSNumberOfRetriesExceeded).
 */
const CONNECTION_ERRORS = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSBrokerNotFound',
]);

/** The send failed because no broker could be reached (not because of the records). */
function isConnectionFailure(error: unknown): boolean {
  let e: unknown = error;
  for (let depth = 0; depth < 5 && e !== null && typeof e === 'object'; depth++) {
    const name = (e as { name?: unknown }).name;
    if (typeof name === 'string' && CONNECTION_ERRORS.has(name)) return true;
    e =
      (e as { cause?: unknown; originalError?: unknown }).cause ??
      (e as { originalError?: unknown }).originalError;
  }
  return false;
}
