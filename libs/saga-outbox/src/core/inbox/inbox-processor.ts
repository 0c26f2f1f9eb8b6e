import { InvalidOptionsError } from '../errors';
import type { JsonValue } from '../json';
import { systemClock, type Clock } from '../ports/clock';
import type { InboxStore } from '../ports/inbox-store';
import { silentLogger, type SageLogger } from '../ports/logger';
import { errorText, storableText } from '../error-text';
import { MessageRefusedError } from './message-refused';
import { DataUnreadableError } from '../protection/protection-errors';
import { InboxHandlerFailedError, InboxMessageIdMissingError } from './inbox-errors';
import type { InboxEvent, InboxEventListener } from './inbox-events';
import { positiveInteger, requiredName } from '../options';
import { MAX_MESSAGE_ID_LENGTH, messageIdProblem } from '../message-id';

/** Attempts (first delivery included) before a failing message is dead-lettered. */
export const DEFAULT_INBOX_MAX_ATTEMPTS = 5;

/** Longest error text kept in the inbox; handler errors can embed whole payloads. */
export const MAX_INBOX_ERROR_LENGTH = 2000;

/**
 * Deliveries handled in one transaction at most (InboxProcessorOptions.batchSize): one dedup
 * statement and one commit per batch instead of per message.
 */
export const DEFAULT_INBOX_BATCH_SIZE = 64;

/** The largest `batchSize` accepted: a longer transaction holds its inbox keys' locks longer. */
export const MAX_INBOX_BATCH_SIZE = 1000;

/** The longest consumer name and message id accepted (both are part of the primary key). */
export const MAX_INBOX_KEY_LENGTH = MAX_MESSAGE_ID_LENGTH;

export interface InboxProcessorOptions<Tx> {
  store: InboxStore<Tx>;
  /** Default for every consumer; `process()` can override it per call. Default 5. */
  maxAttempts?: number;
  /**
   * Most deliveries `processBatch` takes in one transaction (1 to 1000). Default 64. 1 turns
   * batches off: every delivery gets a transaction of its own.
   */
  batchSize?: number;
  logger?: SageLogger;
  clock?: Clock;
}

/** One delivery of a batch (processBatch): its message id and its handler. */
export interface InboxBatchDelivery<Tx, T> {
  messageId: string;
  handle: InboxHandler<Tx, T>;
}

/** How one delivery of a committed batch ended. */
export type InboxBatchResult<T> =
  { outcome: 'processed'; attempt: number; value: T } | { outcome: 'duplicate' };

/** One delivery of one message to one consumer. */
export interface InboxDelivery {
  consumer: string;
  messageId: string;
  /**
   * The delivered message, stored with a dead letter (operators see what failed). Omit to keep
   * none. A function is called only when a failure is recorded: a delivery that succeeds (nearly
   * all of them) never builds the snapshot.
   */
  message?: JsonValue | (() => JsonValue);
}

/** What the handler gets besides the message itself. */
export interface InboxHandlerContext<Tx> {
  /** The transaction the inbox row is written in: write through it and everything commits together. */
  tx: Tx;
  consumer: string;
  messageId: string;
  /** 1 on the first attempt. Counted by the inbox, so it holds across redeliveries to other instances. */
  attempt: number;
}

export type InboxHandler<Tx, T> = (context: InboxHandlerContext<Tx>) => Promise<T>;

/**
 * How a delivery ended, when it ended in a way the broker should acknowledge. (A failure that may be
 * retried throws InboxHandlerFailedError instead: the broker must redeliver.)
 */
export type InboxResult<T> =
  | { outcome: 'processed'; attempt: number; value: T }
  | { outcome: 'duplicate' }
  | { outcome: 'dead-lettered'; attempts: number; error: string };

export interface InboxProcessorStats {
  processed: number;
  duplicates: number;
  failed: number;
  deadLettered: number;
}

const DUPLICATE = Symbol('duplicate');

/**
 * The consumer inbox (effectively exactly-once DB effects). For one delivery:
 *
 * 1. one transaction: record (consumer, message id) in the inbox; if it was already there, the
 *    handler is skipped (duplicate, acknowledged); else the handler runs with that transaction, so
 *    its writes (and any outbox messages it publishes) commit together with the inbox row;
 * 2. the handler throws (or the commit fails) → everything rolls back, the attempt is counted in a
 *    transaction of its own, and `process()` throws InboxHandlerFailedError so the broker
 *    redelivers;
 * 3. the attempt that reaches `maxAttempts` fails → the message becomes a dead letter in the inbox
 *    (with the error and the message, never handled again, visible to operators) and `process()`
 *    resolves `dead-lettered`, so the broker acknowledges it and the messages behind it keep flowing.
 *
 * Two deliveries of one message racing each other are serialised by the inbox's primary key: the
 * second waits for the first's transaction and then sees a duplicate (or, if the first rolled back,
 * runs the handler itself). Framework-free: the Nest layer and the broker adapters call `process()`.
 */
export class InboxProcessor<Tx> {
  readonly stats: InboxProcessorStats = { processed: 0, duplicates: 0, failed: 0, deadLettered: 0 };
  readonly maxAttempts: number;
  /** Most deliveries per batch (1: no batches). */
  readonly batchSize: number;
  private readonly store: InboxStore<Tx>;
  private readonly logger: SageLogger;
  private readonly clock: Clock;
  private readonly listeners = new Set<InboxEventListener>();

  constructor(options: InboxProcessorOptions<Tx>) {
    if (!options?.store) throw new InvalidOptionsError('store', 'InboxProcessor needs a store');
    this.store = options.store;
    this.maxAttempts = validateMaxAttempts(options.maxAttempts ?? DEFAULT_INBOX_MAX_ATTEMPTS);
    this.batchSize = validateInboxBatchSize(options.batchSize ?? DEFAULT_INBOX_BATCH_SIZE);
    this.logger = options.logger ?? silentLogger;
    this.clock = options.clock ?? systemClock;
  }

  /** Subscribes to inbox events; returns the unsubscribe function. */
  onEvent(listener: InboxEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Handles one delivery exactly once per (consumer, message id). Resolves when the broker should
   * acknowledge the message (processed, duplicate, dead-lettered); rejects with
   * InboxHandlerFailedError when it should redeliver it. Bad input (empty consumer or message id)
   * rejects before anything is written: InvalidOptionsError / InboxMessageIdMissingError.
   */
  async process<T>(
    delivery: InboxDelivery,
    handler: InboxHandler<Tx, T>,
    options: { maxAttempts?: number } = {},
  ): Promise<InboxResult<T>> {
    const { consumer, messageId } = validateDelivery(delivery);
    const maxAttempts =
      options.maxAttempts === undefined
        ? this.maxAttempts
        : validateMaxAttempts(options.maxAttempts);
    const key = { consumer, messageId };
    const started = this.clock.now();
    let attempt = 0;
    try {
      const outcome = await this.store.transaction(async (tx) => {
        const recorded = await this.store.markProcessed(tx, key);
        if (recorded === null) return DUPLICATE;
        attempt = recorded;
        return { value: await handler({ tx, consumer, messageId, attempt }) };
      });
      if (outcome === DUPLICATE) {
        this.stats.duplicates++;
        this.logger.debug('inbox: duplicate delivery skipped', {
          event: 'inbox.duplicate',
          consumer,
          messageId,
        });
        this.emit({ type: 'inbox.duplicate', consumer, messageId, at: this.clock.now() });
        return { outcome: 'duplicate' };
      }
      this.stats.processed++;
      this.emit({
        type: 'inbox.processed',
        consumer,
        messageId,
        attempt,
        durationMs: this.clock.now() - started,
        at: this.clock.now(),
      });
      return { outcome: 'processed', attempt, value: outcome.value };
    } catch (error) {
      // A refused message (MessageRefusedError), or data that cannot be decrypted
      // (DataUnreadableError: the same bytes fail the same way), can never succeed: dead-lettered
      // on this attempt.
      return this.failed(
        delivery,
        key,
        error instanceof MessageRefusedError || error instanceof DataUnreadableError
          ? 1
          : maxAttempts,
        error,
      );
    }
  }

  /**
   * Handles several deliveries to `consumer` in ONE transaction, in the order given (a broker's
   * batch, e.g. one Kafka partition's): one dedup statement for all (store.markProcessedBatch),
   * then each new delivery's handler in turn with that transaction, then one commit. A delivery
   * whose id is already in the inbox, or that repeats an earlier id of the batch, is a duplicate
   * (its handler does not run). Events, stats and logs are those of `process()`, per delivery,
   * after the commit.
   *
   * All or nothing: when a handler throws, or the dedup or the commit fails, everything rolls back,
   * nothing is counted or recorded, and it resolves undefined: the caller then hands each delivery
   * to `process()` on its own, which counts, retries and dead-letters as usual (a failing handler
   * thus runs once more alone before its failure is counted). Undefined too when the store has no
   * markProcessedBatch. At most `batchSize` deliveries (InvalidOptionsError `batchSize` beyond);
   * bad ids reject as in `process()`, before anything is written.
   */
  async processBatch<T>(
    consumer: string,
    deliveries: readonly InboxBatchDelivery<Tx, T>[],
  ): Promise<InboxBatchResult<T>[] | undefined> {
    for (const d of deliveries) validateDelivery({ consumer, messageId: d.messageId });
    const name = validateConsumerName(consumer);
    if (deliveries.length > this.batchSize)
      throw new InvalidOptionsError(
        'batchSize',
        `processBatch got ${deliveries.length} deliveries; at most batchSize (${this.batchSize}) go in one transaction. Split the batch, or raise batchSize.`,
      );
    if (deliveries.length === 0) return [];
    const store = this.store;
    if (!store.markProcessedBatch) return undefined;
    const ids = [...new Set(deliveries.map((d) => d.messageId))];
    const started = this.clock.now();
    let results: InboxBatchResult<T>[];
    try {
      results = await store.transaction(async (tx) => {
        const attempts = await store.markProcessedBatch!(tx, name, ids);
        const fresh = new Map(ids.map((id, i) => [id, attempts[i] ?? null]));
        const out: InboxBatchResult<T>[] = [];
        for (const { messageId, handle } of deliveries) {
          const attempt = fresh.get(messageId) ?? null;
          if (attempt === null) {
            out.push({ outcome: 'duplicate' });
            continue;
          }
          fresh.set(messageId, null); // a second copy in the batch is a duplicate
          const value = await handle({ tx, consumer: name, messageId, attempt });
          out.push({ outcome: 'processed', attempt, value });
        }
        return out;
      });
    } catch (error) {
      this.logger.debug('inbox: batch rolled back; its deliveries go one by one', {
        event: 'inbox.batch_rolled_back',
        consumer: name,
        deliveries: deliveries.length,
        error: errorText(error),
      });
      return undefined;
    }
    const at = this.clock.now();
    results.forEach((result, i) => {
      const messageId = deliveries[i]!.messageId;
      if (result.outcome === 'duplicate') {
        this.stats.duplicates++;
        this.logger.debug('inbox: duplicate delivery skipped', {
          event: 'inbox.duplicate',
          consumer: name,
          messageId,
        });
        this.emit({ type: 'inbox.duplicate', consumer: name, messageId, at });
        return;
      }
      this.stats.processed++;
      this.emit({
        type: 'inbox.processed',
        consumer: name,
        messageId,
        attempt: result.attempt,
        durationMs: at - started,
        at,
      });
    });
    return results;
  }

  /**
   * Records `delivery` as a dead letter at once, without running any handler: for a message that
   * can never be handled (its id is unusable, so it goes under a derived one). Resolves `duplicate`
   * when the message was already handled or dead-lettered. Rejects (nothing recorded) when the
   * store cannot be reached: the broker should redeliver it.
   */
  async deadLetter(delivery: InboxDelivery, reason: string): Promise<InboxResult<never>> {
    const { consumer, messageId } = validateDelivery(delivery);
    const error = storableText(reason, MAX_INBOX_ERROR_LENGTH);
    const recorded = await this.store.recordFailure({
      consumer,
      messageId,
      error,
      maxAttempts: 1,
      message: storedMessage(delivery),
    });
    if (recorded.outcome !== 'dead-lettered') {
      this.stats.duplicates++;
      this.emit({ type: 'inbox.duplicate', consumer, messageId, at: this.clock.now() });
      return { outcome: 'duplicate' };
    }
    this.reportDeadLetter('without being handled', consumer, messageId, recorded.attempts, error);
    return { outcome: 'dead-lettered', attempts: recorded.attempts, error };
  }

  private async failed<T>(
    delivery: InboxDelivery,
    key: { consumer: string; messageId: string },
    maxAttempts: number,
    error: unknown,
  ): Promise<InboxResult<T>> {
    const { consumer, messageId } = key;
    // NUL cannot be stored in a text column; the failure must always be recordable.
    const reason = storableText(errorText(error), MAX_INBOX_ERROR_LENGTH);
    let recorded;
    try {
      recorded = await this.store.recordFailure({
        consumer,
        messageId,
        error: reason,
        maxAttempts,
        message: storedMessage(delivery),
      });
    } catch (recordError) {
      // The database is likely down: the broker redelivers, and this attempt goes uncounted.
      this.stats.failed++;
      this.logger.error('inbox: handler failed and the failure could not be recorded', {
        event: 'inbox.record_failure_error',
        consumer,
        messageId,
        error: reason,
        recordError: errorText(recordError),
      });
      this.emit({
        type: 'inbox.failed',
        consumer,
        messageId,
        attempts: null,
        maxAttempts,
        error: reason,
        at: this.clock.now(),
      });
      throw new InboxHandlerFailedError(consumer, messageId, null, maxAttempts, error);
    }
    if (recorded.outcome === 'already-done') {
      // Another delivery handled (or dead-lettered) it while this one failed: nothing left to do.
      this.stats.duplicates++;
      this.emit({ type: 'inbox.duplicate', consumer, messageId, at: this.clock.now() });
      return { outcome: 'duplicate' };
    }
    if (recorded.outcome === 'dead-lettered') {
      this.reportDeadLetter(
        'after its last allowed attempt failed',
        consumer,
        messageId,
        recorded.attempts,
        reason,
      );
      return { outcome: 'dead-lettered', attempts: recorded.attempts, error: reason };
    }
    this.stats.failed++;
    this.logger.warn('inbox: handler failed; rolled back, to be redelivered', {
      event: 'inbox.failed',
      consumer,
      messageId,
      attempts: recorded.attempts,
      maxAttempts,
      error: reason,
    });
    this.emit({
      type: 'inbox.failed',
      consumer,
      messageId,
      attempts: recorded.attempts,
      maxAttempts,
      error: reason,
      at: this.clock.now(),
    });
    throw new InboxHandlerFailedError(consumer, messageId, recorded.attempts, maxAttempts, error);
  }

  /** Counts, logs (error) and announces a dead letter; `why` ends the log line. */
  private reportDeadLetter(
    why: string,
    consumer: string,
    messageId: string,
    attempts: number,
    error: string,
  ): void {
    this.stats.deadLettered++;
    this.logger.error(`inbox: message dead-lettered ${why}`, {
      event: 'inbox.dead_lettered',
      consumer,
      messageId,
      attempts,
      error,
    });
    this.emit({
      type: 'inbox.dead-lettered',
      consumer,
      messageId,
      attempts,
      error,
      at: this.clock.now(),
    });
  }

  private emit(event: InboxEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.logger.warn('inbox event listener threw', {
          event: 'inbox.listener_error',
          error: errorText(error),
        });
      }
    }
  }
}

export function validateMaxAttempts(value: number, option = 'maxAttempts'): number {
  return positiveInteger(option, value);
}

/** Checks InboxProcessorOptions.batchSize (`option` names it in the error). */
export function validateInboxBatchSize(value: number, option = 'batchSize'): number {
  return positiveInteger(option, value, MAX_INBOX_BATCH_SIZE);
}

/** The message to keep with a failure: built now if it was given as a function. */
function storedMessage(delivery: InboxDelivery): JsonValue {
  const message = delivery.message;
  return (typeof message === 'function' ? message() : message) ?? null;
}

/** Checks the consumer name; throws InvalidOptionsError naming what to fix. */
export function validateConsumerName(consumer: unknown): string {
  return requiredName('consumer', consumer, { maxLength: MAX_INBOX_KEY_LENGTH });
}

function validateDelivery(delivery: InboxDelivery): { consumer: string; messageId: string } {
  const consumer = validateConsumerName(delivery?.consumer);
  // The one rule for ids (missing, blank, NUL, lone surrogate, too long: never recordable).
  const problem = messageIdProblem(delivery.messageId);
  if (problem !== undefined) throw new InboxMessageIdMissingError(consumer, problem);
  return { consumer, messageId: delivery.messageId };
}
