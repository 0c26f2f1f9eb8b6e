import type { OutboxRelayOptions } from '../../core/outbox/outbox-relay';
import { OutboxRelay } from '../../core/outbox/outbox-relay';
import { WalOutboxRelay } from '../../core/outbox/wal-outbox-relay';
import type { Broker } from '../../core/ports/broker';
import type { SageLogger } from '../../core/ports/logger';
import type { PostgresOutboxStore } from '../../persistence/postgres/postgres-outbox-store';
import {
  PostgresWalSource,
  replicationConnectionOf,
} from '../../persistence/postgres/postgres-wal-source';
import type { SageDatabase } from '../sage-database';
import type { WalRelayModuleOptions } from './wal-relay.options';

/**
 * The WAL-streaming relay for `outbox.relay.mode: 'wal'`, on the module's database and broker. Its
 * catch-up (each time it becomes the slot's streamer) drains the polling relay's claim path once:
 * rows written before the slot existed, dead letters replayed since, rows left pending after a
 * slot was dropped; and again while it streams, whenever such rows wait (a dead letter replayed). The polling relay object is never started (no loop, no LISTEN).
 */
export function createWalRelay(
  database: SageDatabase,
  store: PostgresOutboxStore,
  broker: Broker,
  logger: SageLogger,
  tuning: Omit<OutboxRelayOptions, 'store' | 'broker' | 'clock' | 'logger' | 'onBatch'>,
  wal: WalRelayModuleOptions = {},
): WalOutboxRelay {
  const drain = new OutboxRelay({ ...tuning, listen: false, store, broker, logger });
  const source = new PostgresWalSource(
    database.dataSource,
    replicationConnectionOf(database.dataSource),
    {
      schema: database.schema,
      slot: wal.slot,
      publication: wal.publication,
      statusIntervalMs: wal.statusIntervalMs,
    },
  );
  return new WalOutboxRelay({
    source,
    broker,
    logger,
    relayId: tuning.relayId,
    publishBatchSize: tuning.publishBatchSize,
    maxInFlight: tuning.maxInFlight,
    retry: tuning.retry,
    shutdownTimeoutMs: tuning.shutdownTimeoutMs,
    maxWindow: wal.maxWindow,
    standbyRetryMs: wal.standbyRetryMs,
    catchUp: async (signal, emit) => {
      const sent = new Set<string>();
      // What it publishes (through the claim path) is the WAL relay's work: its events (and so the
      // metrics and OutboxRelayService listeners) come from the WAL relay, like the stream's.
      const off = drain.onEvent((e) => {
        if (e.type === 'outbox.published') sent.add(e.messageId);
        emit(e);
      });
      try {
        // Claims a catch-up cut short left behind (the database went away before it recorded
        // them): due again once their lease is over, as the polling relay's reaper would do.
        await drain.reap();
        for (;;) {
          const round = await drain.runOnce();
          if (round.claimed === 0 || signal.aborted) return sent;
        }
      } finally {
        off();
      }
    },
    // A replayed dead letter (an UPDATE: not in the stream) goes out within a check.
    catchUpCheck: () => source.hasStrandedRows(),
    catchUpCheckMs: wal.catchUpCheckMs,
  });
}
