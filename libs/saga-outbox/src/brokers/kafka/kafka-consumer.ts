import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import { errorText } from '../../core/error-text';
import type { DeliveredMessage } from '../../core/ports/broker';
import type { SageLogger } from '../../core/ports/logger';
import { exponentialDelay } from '../backoff';
import { withTimeout } from '../../core/with-timeout';
import { fromKafkaRecord } from './kafka-message-codec';

/** KafkaConsumerOptions with every default applied. */
export interface KafkaConsumerSettings {
  fromBeginning: boolean;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  maxWaitTimeMs: number;
  partitionsConsumedConcurrently: number;
  redeliveryDelayMs: number;
  maxRedeliveryDelayMs: number;
  joinTimeoutMs: number;
}

export interface KafkaConsumerContext {
  kafka: Kafka;
  /** Broker name in logs. */
  brokerName: string;
  logger: SageLogger;
  settings: KafkaConsumerSettings;
  /** Creates the topic if it does not exist yet and waits for its leaders. */
  ensureTopic: (topic: string) => Promise<void>;
}

/**
 * One subscription: a kafkajs consumer (groupId = group), auto-commit off. Messages of a partition
 * are handled one at a time, in order; an offset is committed only after every handler up to it
 * resolved. A rejected handler stops the partition at that offset (seek back), pauses it for a
 * back-off and redelivers from there, with `deliveryAttempt` counted per (partition, offset);
 * until it succeeded nothing past it in that partition is handled or committed, so per-key order
 * holds across handler failures and a crash or rebalance meanwhile redelivers it.
 */
export class KafkaTopicConsumer {
  /** Why kafkajs gave up on this consumer (a crash it will not restart from), if it did. */
  crashed: string | undefined;
  private readonly consumer: Consumer;
  private active = true;
  private readonly running = new Set<Promise<void>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Failed deliveries per `partition:offset`, so a redelivery knows its attempt number. */
  private readonly failures = new Map<string, number>();
  /**
   * Per partition, the offset whose handler failed and awaits redelivery. Nothing past it is handed
   * over, resolved or committed until it succeeded (a batch fetched past it is dropped and the
   * partition seeks back), so a later message of its key never overtakes it and a commit never
   * skips it. Cleared on a group join: a new assignment starts from the committed offset, which
   * never passes it.
   */
  private readonly blocked = new Map<number, string>();
  private readonly joined: Promise<void>;

  constructor(
    private readonly context: KafkaConsumerContext,
    readonly destination: string,
    readonly group: string,
    private readonly handler: (message: DeliveredMessage) => Promise<void>,
  ) {
    const s = context.settings;
    const consumer = (this.consumer = context.kafka.consumer({
      groupId: group,
      sessionTimeout: s.sessionTimeoutMs,
      heartbeatInterval: s.heartbeatIntervalMs,
      maxWaitTimeInMs: s.maxWaitTimeMs,
      allowAutoTopicCreation: true,
    }));
    consumer.on(consumer.events.GROUP_JOIN, () => this.blocked.clear());
    consumer.on(consumer.events.CRASH, (event) => {
      if (event.payload.restart) return;
      this.crashed = event.payload.error.message;
      context.logger.error('Kafka consumer crashed and will not restart', {
        broker: context.brokerName,
        destination,
        group,
        error: event.payload.error.message,
      });
    });
    this.joined = new Promise<void>((resolve) => {
      const off = consumer.on(consumer.events.GROUP_JOIN, () => {
        off();
        resolve();
      });
    });
  }

  /** Connects, subscribes and runs; resolves once the member joined its group. */
  async start(): Promise<void> {
    const s = this.context.settings;
    await this.consumer.connect();
    // A consumer may start before anything was published to its topic (a participant deployed
    // before the service that sends it commands): create the topic (broker defaults; no-op when
    // it exists) and wait for its leaders, else the subscription fails on unknown partitions.
    await this.context.ensureTopic(this.destination);
    await this.consumer.subscribe({ topics: [this.destination], fromBeginning: s.fromBeginning });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: s.partitionsConsumedConcurrently,
      eachBatch: (payload) => this.handleBatch(payload),
    });
    await withTimeout(
      this.joined,
      s.joinTimeoutMs,
      () => new Error(`consumer group "${this.group}" did not join within ${s.joinTimeoutMs} ms`),
    );
  }

  /** Stops handing messages over and disconnects; resolves once no handler call is running. */
  async stop(): Promise<void> {
    this.active = false;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    try {
      await this.consumer.disconnect();
    } finally {
      await Promise.allSettled([...this.running]);
    }
  }

  private async handleBatch(payload: EachBatchPayload): Promise<void> {
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
    if (this.seekBackToFailure(payload)) return;

    for (const record of payload.batch.messages) {
      if (!this.active || !payload.isRunning() || payload.isStale()) break;
      const key = `${partition}:${record.offset}`;
      const attempt = (this.failures.get(key) ?? 0) + 1;
      const run = this.handler(fromKafkaRecord(topic, partition, record, attempt));
      this.running.add(run);
      try {
        await run;
      } catch (error) {
        this.failures.set(key, attempt);
        this.blocked.set(partition, record.offset);
        // Commit what succeeded before it (never past it), then start again from this offset.
        await commit();
        this.redeliverLater(payload, record, attempt, error);
        return;
      } finally {
        this.running.delete(run);
      }
      this.failures.delete(key);
      if (this.blocked.get(partition) === record.offset) this.blocked.delete(partition);
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

  /**
   * A batch fetched past an offset that awaits redelivery: handing it over would let a later
   * message of the key overtake the failed one, and committing it would skip that one. Seeks back
   * to it and tells the caller to drop the batch.
   */
  private seekBackToFailure(payload: EachBatchPayload): boolean {
    const { topic, partition } = payload.batch;
    const blocked = this.blocked.get(partition);
    const first = payload.batch.messages[0];
    if (blocked === undefined || !first || BigInt(first.offset) <= BigInt(blocked)) return false;
    this.context.logger.warn('Kafka batch starts past a failed offset; seeking back to it', {
      broker: this.context.brokerName,
      topic,
      partition,
      group: this.group,
      failedOffset: blocked,
      batchFirstOffset: first.offset,
    });
    this.consumer.seek({ topic, partition, offset: blocked });
    return true;
  }

  /** Seeks the partition back to the failed record and pauses it for the back-off. */
  private redeliverLater(
    payload: EachBatchPayload,
    record: KafkaMessage,
    attempt: number,
    error: unknown,
  ): void {
    const { topic, partition } = payload.batch;
    this.consumer.seek({ topic, partition, offset: record.offset });
    const s = this.context.settings;
    const delay = exponentialDelay(attempt, s.redeliveryDelayMs, s.maxRedeliveryDelayMs);
    this.context.logger.warn('Kafka handler failed; the message will be redelivered', {
      broker: this.context.brokerName,
      topic,
      partition,
      offset: record.offset,
      group: this.group,
      attempt,
      retryInMs: delay,
      error: errorText(error),
    });
    const resume = payload.pause();
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      resume();
    }, delay);
    this.timers.add(timer);
  }
}
