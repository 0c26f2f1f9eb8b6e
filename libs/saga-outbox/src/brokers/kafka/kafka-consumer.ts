import type { Consumer, EachBatchPayload, IHeaders, Kafka, KafkaMessage, Message } from 'kafkajs';
import { DeliveryDeferredError } from '../../core/errors';
import { errorText } from '../../core/error-text';
import type {
  DeadLetterReason,
  DeliveredMessage,
  DeliveryBatchHandler,
} from '../../core/ports/broker';
import type { SageLogger } from '../../core/ports/logger';
import { exponentialDelay } from '../backoff';
import { withTimeout } from '../../core/with-timeout';
import {
  deadLetterDestinationOf,
  deadLetterHeaders,
  type DeadLetterReporter,
} from '../dead-letters';
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
  maxDeliveries: number;
  maxMessageBytes: number;
}

export interface KafkaConsumerContext {
  kafka: Kafka;
  /** Broker name in logs. */
  brokerName: string;
  logger: SageLogger;
  settings: KafkaConsumerSettings;
  /** Creates the topic if it does not exist yet and waits for its leaders. */
  ensureTopic: (topic: string) => Promise<void>;
  /** Writes a record to a topic (acks from every in-sync replica): the dead letters. */
  sendRecord: (topic: string, record: Message) => Promise<void>;
  deadLetters: DeadLetterReporter;
}

/**
 * One subscription: a kafkajs consumer (groupId = group), auto-commit off. Messages of a partition
 * are handled one at a time, in order; an offset is committed only after every handler up to it
 * resolved. A rejected handler stops the partition at that offset (seek back), pauses it for a
 * back-off and redelivers from there, with `deliveryAttempt` counted per (partition, offset);
 * until it succeeded nothing past it in that partition is handled or committed, so per-key order
 * holds across handler failures and a crash or rebalance meanwhile redelivers it.
 *
 * A record that cannot be handed over (inbound-message.ts: bad id, oversize, not JSON, …), and one
 * whose handler failed `maxDeliveries` times (failures thrown as DeliveryDeferredError not
 * counted), is written to `${topic}.dlq` with its reason and position, then committed past: the
 * partition moves on. If the dead letter cannot be written, the record is retried like a failure.
 *
 * With a batch handler (SubscribeOptions.batch), consecutive records of a partition's fetch that
 * decode and were never handed over before go to it together, up to its `maxSize`, in offset
 * order; when it resolves true their offsets are resolved and committed as one (only after it
 * resolved: a rebalance or shutdown meanwhile commits nothing of them). When it resolves false or
 * rejects, the same records go through the per-message path above, one by one.
 */
export class KafkaTopicConsumer {
  /** Why kafkajs gave up on this consumer (a crash it will not restart from), if it did. */
  crashed: string | undefined;
  private readonly consumer: Consumer;
  private active = true;
  private readonly running = new Set<Promise<void>>();
  /**
   * Failed deliveries per `partition:offset`, so a redelivery knows its attempt number; `counted`
   * leaves out deferred failures (the inbox store was down), which never lead to a dead letter.
   */
  private readonly failures = new Map<string, { attempts: number; counted: number }>();
  /**
   * Per partition, the offset whose handler failed and awaits redelivery. Nothing past it is handed
   * over, resolved or committed until it succeeded (a batch fetched past it is dropped and the
   * partition seeks back), so a later message of its key never overtakes it and a commit never
   * skips it. Cleared on a group join: a new assignment starts from the committed offset, which
   * never passes it.
   */
  private readonly blocked = new Map<number, string>();
  /**
   * Partitions this subscription paused for a redelivery back-off, with the timer that resumes
   * them. Paused and resumed through the consumer by topic and partition (not the batch's own
   * closure, which acts on the consumer group that fetched it: kafkajs builds a new one when it
   * restarts after a crash), cleared and resumed on every group join, and checked by a watchdog.
   */
  private readonly backOffs = new Map<number, { timer: NodeJS.Timeout; resumeAt: number }>();
  /** Group joins so far: a batch fetched before the latest join must not pause or seek. */
  private generation = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private readonly joined: Promise<void>;

  constructor(
    private readonly context: KafkaConsumerContext,
    readonly destination: string,
    readonly group: string,
    private readonly handler: (message: DeliveredMessage) => Promise<void>,
    private readonly maxDeliveries: number,
    private readonly batch?: DeliveryBatchHandler,
  ) {
    const s = context.settings;
    const consumer = (this.consumer = context.kafka.consumer({
      groupId: group,
      sessionTimeout: s.sessionTimeoutMs,
      heartbeatInterval: s.heartbeatIntervalMs,
      maxWaitTimeInMs: s.maxWaitTimeMs,
      allowAutoTopicCreation: true,
    }));
    consumer.on(consumer.events.GROUP_JOIN, () => this.onGroupJoin());
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
    this.scheduleWatchdog();
    await withTimeout(
      this.joined,
      s.joinTimeoutMs,
      () => new Error(`consumer group "${this.group}" did not join within ${s.joinTimeoutMs} ms`),
    );
  }

  /** Stops handing messages over and disconnects; resolves once no handler call is running. */
  async stop(): Promise<void> {
    this.active = false;
    clearTimeout(this.watchdog);
    for (const { timer } of this.backOffs.values()) clearTimeout(timer);
    this.backOffs.clear();
    try {
      await this.consumer.disconnect();
    } finally {
      await Promise.allSettled([...this.running]);
    }
  }

  private async handleBatch(payload: EachBatchPayload): Promise<void> {
    const { topic, partition } = payload.batch;
    const generation = this.generation;
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
    const records = payload.batch.messages;
    const stopped = (): boolean => !this.active || !payload.isRunning() || payload.isStale();
    /** Marks everything up to `record` handled, then heartbeats (a rebalance keeps what was handled). */
    const handled = async (record: KafkaMessage): Promise<void> => {
      payload.resolveOffset(record.offset);
      handledUpTo = record.offset;
      try {
        await payload.heartbeat();
      } catch (error) {
        // A rebalance is starting: keep what was handled, then let kafkajs rejoin.
        await commit().catch(() => undefined);
        throw error;
      }
    };

    let i = 0;
    records: while (i < records.length) {
      if (stopped()) break;
      const chunk = this.batchAt(topic, partition, records, i);
      if (chunk.length > 1 && (await this.deliverBatch(payload, chunk))) {
        i += chunk.length;
        await handled(chunk[chunk.length - 1]!.record);
        continue;
      }
      // One at a time: no batch here, or the batch took no effect (its records go one by one).
      for (const end = i + Math.max(chunk.length, 1); i < end; i++) {
        if (stopped()) break records;
        const record = records[i]!;
        const key = `${partition}:${record.offset}`;
        const failed = this.failures.get(key) ?? { attempts: 0, counted: 0 };
        const attempt = failed.attempts + 1;
        const run = this.deliver(topic, partition, record, attempt, failed.counted);
        this.running.add(run);
        try {
          await run;
        } catch (error) {
          const counted = failed.counted + (error instanceof DeliveryDeferredError ? 0 : 1);
          this.failures.set(key, { attempts: attempt, counted });
          // After a group join meanwhile, the new assignment starts from the committed offset anyway.
          if (generation === this.generation) this.blocked.set(partition, record.offset);
          // Commit what succeeded before it (never past it), then start again from this offset.
          await commit();
          this.redeliverLater(payload, generation, record, attempt, error);
          return;
        } finally {
          this.running.delete(run);
        }
        this.failures.delete(key);
        if (this.blocked.get(partition) === record.offset) this.blocked.delete(partition);
        await handled(record);
      }
    }
    await commit();
  }

  /**
   * The records from `from` on that can go to the batch handler together: consecutive, at most its
   * `maxSize`, each one decoding to a message and never handed over before (a redelivery keeps its
   * attempt count on the per-message path). Empty without a batch handler.
   */
  private batchAt(
    topic: string,
    partition: number,
    records: readonly KafkaMessage[],
    from: number,
  ): { record: KafkaMessage; message: DeliveredMessage }[] {
    const chunk: { record: KafkaMessage; message: DeliveredMessage }[] = [];
    if (!this.batch) return chunk;
    const maxBytes = this.context.settings.maxMessageBytes;
    for (let i = from; i < records.length && chunk.length < this.batch.maxSize; i++) {
      const record = records[i]!;
      if (this.failures.has(`${partition}:${record.offset}`)) break;
      const inbound = fromKafkaRecord(topic, record, maxBytes);
      if (!inbound.ok) break;
      chunk.push({ record, message: { ...inbound.message, deliveryAttempt: 1 } });
    }
    return chunk;
  }

  /**
   * Hands `chunk` to the batch handler: true when every record took effect. Heartbeats meanwhile
   * (a batch of slow handlers can outlast the session timeout, which would rebalance the group
   * under it); a failed heartbeat is left to the one after the batch, which rejoins.
   */
  private async deliverBatch(
    payload: EachBatchPayload,
    chunk: readonly { record: KafkaMessage; message: DeliveredMessage }[],
  ): Promise<boolean> {
    const { topic, partition } = payload.batch;
    const stopBeating = this.heartbeatWhile(payload);
    const run = this.batch!.handle(chunk.map((c) => c.message)).catch((error: unknown) => {
      this.context.logger.debug('Kafka batch handler failed; its records go one by one', {
        broker: this.context.brokerName,
        topic,
        partition,
        group: this.group,
        fromOffset: chunk[0]?.record.offset,
        records: chunk.length,
        error: errorText(error),
      });
      return false;
    });
    const settled = run.then(() => undefined);
    this.running.add(settled);
    try {
      return (await run) === true;
    } finally {
      stopBeating();
      this.running.delete(settled);
    }
  }

  /** Heartbeats every `heartbeatIntervalMs` until the returned function is called (single-flight). */
  private heartbeatWhile(payload: EachBatchPayload): () => void {
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const next = (): void => {
      timer = setTimeout(() => {
        void payload
          .heartbeat()
          .catch(() => undefined)
          .finally(() => {
            if (!done) next();
          });
      }, this.context.settings.heartbeatIntervalMs);
    };
    next();
    return () => {
      done = true;
      clearTimeout(timer);
    };
  }

  /**
   * Hands the record to the handler, or dead-letters it: on sight when it cannot be handed over,
   * after the handler's failure when that was its `maxDeliveries`-th counted one. Rejects when the
   * record must be redelivered (the handler failed, or the dead letter could not be written).
   */
  private async deliver(
    topic: string,
    partition: number,
    record: KafkaMessage,
    attempt: number,
    counted: number,
  ): Promise<void> {
    const position = `${topic}/${partition}/${record.offset}`;
    const inbound = fromKafkaRecord(topic, record, this.context.settings.maxMessageBytes);
    if (!inbound.ok) {
      const { reason, detail, messageId } = inbound.poison;
      await this.deadLetter(record, position, { reason, detail, messageId, attempts: 0 });
      return;
    }
    const message = inbound.message;
    try {
      await this.handler({ ...message, deliveryAttempt: attempt });
    } catch (error) {
      if (error instanceof DeliveryDeferredError || counted + 1 < this.maxDeliveries) throw error;
      await this.deadLetter(record, position, {
        reason: 'max-deliveries',
        detail: `the handler failed ${counted + 1} times (maxDeliveries ${this.maxDeliveries}); last error: ${errorText(error)}`,
        messageId: message.id,
        attempts: attempt,
      });
    }
  }

  /** Writes the record, as received plus the `sage-dead-letter-*` headers, to `${topic}.dlq`. */
  private async deadLetter(
    record: KafkaMessage,
    position: string,
    what: { reason: DeadLetterReason; detail: string; messageId: string; attempts: number },
  ): Promise<void> {
    const deadLetterDestination = deadLetterDestinationOf(this.destination);
    const event = {
      broker: this.context.brokerName,
      destination: this.destination,
      group: this.group,
      deadLetterDestination,
      ...what,
    };
    const headers: IHeaders = { ...record.headers, ...deadLetterHeaders(event, position) };
    await this.context.ensureTopic(deadLetterDestination);
    await this.context.sendRecord(deadLetterDestination, {
      key: record.key,
      // An oversize body stays only at its position in the source topic: the dead letter says where.
      value: what.reason === 'too-large' ? null : record.value,
      headers,
      timestamp: record.timestamp,
    });
    this.context.deadLetters.report(event);
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
    this.seek(partition, blocked);
    return true;
  }

  /**
   * Seeks the partition back to the failed record and pauses it for the back-off. A batch fetched
   * before the latest group join neither seeks nor pauses: the new assignment starts from the
   * committed offset, which never passes the failed record.
   */
  private redeliverLater(
    payload: EachBatchPayload,
    generation: number,
    record: KafkaMessage,
    attempt: number,
    error: unknown,
  ): void {
    const { topic, partition } = payload.batch;
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
    if (!this.active || generation !== this.generation) return;
    if (!this.seek(partition, record.offset)) return;
    this.pauseFor(partition, delay);
  }

  /**
   * Seeks through the consumer; false when kafkajs has no consumer group at the moment (it is
   * restarting after a crash): the restarted one starts from the committed offsets anyway.
   */
  private seek(partition: number, offset: string): boolean {
    try {
      this.consumer.seek({ topic: this.destination, partition, offset });
      return true;
    } catch {
      return false;
    }
  }

  /** Pauses the partition and resumes it after `delay` ms (a later back-off replaces this one). */
  private pauseFor(partition: number, delay: number): void {
    const topic = this.destination;
    clearTimeout(this.backOffs.get(partition)?.timer);
    try {
      this.consumer.pause([{ topic, partitions: [partition] }]);
    } catch {
      this.backOffs.delete(partition);
      return;
    }
    const backOff = {
      resumeAt: Date.now() + delay,
      timer: setTimeout(() => {
        if (this.backOffs.get(partition) !== backOff) return;
        this.backOffs.delete(partition);
        this.resume([partition]);
      }, delay),
    };
    this.backOffs.set(partition, backOff);
  }

  /** Resumes partitions through the consumer (a no-op while kafkajs restarts: nothing is paused then). */
  private resume(partitions: number[]): void {
    if (partitions.length === 0) return;
    try {
      this.consumer.resume([{ topic: this.destination, partitions }]);
    } catch {
      // No consumer group right now: the next one starts with nothing paused.
    }
  }

  /**
   * A new assignment starts from the committed offsets: forgets the failed offsets and drops every
   * back-off, resuming the partitions it paused (a failure there fails again and pauses anew).
   */
  private onGroupJoin(): void {
    this.generation += 1;
    this.blocked.clear();
    const paused = [...this.backOffs.keys()];
    for (const { timer } of this.backOffs.values()) clearTimeout(timer);
    this.backOffs.clear();
    this.resume(paused);
  }

  /**
   * Every so often, resumes a partition of this subscription that is paused with no back-off
   * pending (or one overdue by a second): only back-offs pause partitions here, so such a pause is
   * stale, and left alone it would stop the partition for good. Logged, as it should not happen.
   */
  private scheduleWatchdog(): void {
    const every = Math.max(1000, this.context.settings.maxRedeliveryDelayMs);
    this.watchdog = setTimeout(() => {
      if (!this.active) return;
      this.resumeStalePauses();
      this.scheduleWatchdog();
    }, every);
    this.watchdog.unref();
  }

  /** The watchdog's check; returns the partitions it resumed. */
  resumeStalePauses(now = Date.now()): number[] {
    const stale = this.consumer
      .paused()
      .filter((tp) => tp.topic === this.destination)
      .flatMap((tp) => tp.partitions)
      .filter((partition) => {
        const backOff = this.backOffs.get(partition);
        return backOff === undefined || now > backOff.resumeAt + 1000;
      });
    if (stale.length === 0) return stale;
    this.context.logger.warn(
      'Kafka partitions paused past their redelivery back-off; resuming them',
      {
        broker: this.context.brokerName,
        topic: this.destination,
        group: this.group,
        partitions: stale.join(','),
      },
    );
    for (const partition of stale) {
      clearTimeout(this.backOffs.get(partition)?.timer);
      this.backOffs.delete(partition);
    }
    this.resume(stale);
    return stale;
  }
}
