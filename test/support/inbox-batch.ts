/**
 * What the inbox-batch int-specs of the broker adapters share (kafka-inbox-batch,
 * rabbitmq-inbox-batch): the inbox on PostgreSQL consuming one destination in batches, its handler
 * writing an effect per message (`public.effect`, test/support/inbox-pipeline) and failing on the
 * poison message, with the size of every batch the store marked processed recorded; and the
 * messages it is sent (`{ seq }` per key) and the effects read back.
 */
import { randomUUID } from 'node:crypto';
import type { DataSource, EntityManager } from 'typeorm';
import { InboxProcessor } from '../../libs/saga-outbox/src/core/inbox/inbox-processor';
import {
  InboxSubscriptions,
  type InboxEndpoint,
} from '../../libs/saga-outbox/src/core/inbox/inbox-subscription';
import type { Broker, BrokerMessage } from '../../libs/saga-outbox/src/core/ports/broker';
import { PostgresInboxStore } from '../../libs/saga-outbox/src/persistence/postgres/postgres-inbox-store';

/** Message `seq` of `key`, its payload `{ seq }`. */
export function seqMessage(destination: string, key: string, seq: number): BrokerMessage {
  return {
    id: randomUUID(),
    destination,
    key,
    type: 'inbox.batch-tested',
    payload: { seq },
    headers: {},
    time: new Date(),
  };
}

export interface BatchingInboxOptions {
  destination: string;
  consumer: string;
  /** InboxProcessorOptions.batchSize; the processor's default when left out. */
  batchSize?: number;
  /** The id of the message whose handler always throws. */
  poison?: string;
  /** How long each handler holds its transaction (`pg_sleep`). */
  handlerMs?: number;
}

/**
 * The inbox on PostgreSQL (3 attempts) consuming `destination` in batches as `consumer`. `batches`
 * records the size of every markProcessedBatch call (the store's real SQL, only observed);
 * `handled` every message id a handler ran for, in order, retries and rolled-back runs included.
 */
export function batchingInbox(dataSource: DataSource, options: BatchingInboxOptions) {
  const { destination, consumer, batchSize, poison, handlerMs } = options;
  const store = new PostgresInboxStore(dataSource);
  const batches: number[] = [];
  const markBatch = store.markProcessedBatch.bind(store);
  store.markProcessedBatch = (tx, name, ids) => {
    batches.push(ids.length);
    return markBatch(tx, name, ids);
  };
  const inbox = new InboxProcessor<EntityManager>({
    store,
    maxAttempts: 3,
    ...(batchSize !== undefined && { batchSize }),
  });
  const handled: string[] = [];
  const endpoint: InboxEndpoint<EntityManager> = {
    destination,
    consumer,
    handle: async (m, { tx, messageId }) => {
      handled.push(messageId);
      await tx.query(
        'INSERT INTO public.effect (consumer, message_id, key, seq) VALUES ($1, $2, $3, $4)',
        [consumer, messageId, m.key, (m.payload as { seq: number }).seq],
      );
      if (handlerMs) await tx.query('SELECT pg_sleep($1)', [handlerMs / 1000]);
      if (messageId === poison) throw new Error('poison: cannot take this one');
    },
    deliveryError: { message: 'could not take a message', event: 'test.delivery_error' },
  };
  const subscriptions = new InboxSubscriptions<EntityManager>({ inbox, batches: true });
  return {
    consumer,
    inbox,
    store,
    batches,
    handled,
    start: (broker: Broker) => subscriptions.subscribe(broker, [endpoint]),
    stop: () => subscriptions.unsubscribeAll(),
  };
}

/** The effects `consumer`'s handlers committed, in the order they were written. */
export function seqEffects(
  dataSource: DataSource,
  consumer: string,
): Promise<{ message_id: string; key: string; seq: number }[]> {
  return dataSource.query(
    'SELECT message_id, key, seq FROM public.effect WHERE consumer = $1 ORDER BY id',
    [consumer],
  );
}

/** Per key, the seq of each effect in the order the effects were written. */
export function seqsByKey(rows: { key: string; seq: number }[]): Map<string, number[]> {
  const byKey = new Map<string, number[]>();
  for (const r of rows) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r.seq]);
  return byKey;
}
