import type { OptimisticSenderSettings } from '../../core/outbox/optimistic-sender';
import type { OutboxRelayOptions } from '../../core/outbox/outbox-relay';
import type { OutboxRelayMode, WalRelayModuleOptions } from './wal-relay.options';
import type { OutboxRetentionOptions } from '../../core/outbox/outbox-retention';

/** The Broker the relay publishes to (provide an adapter instance under this token). */
export const OUTBOX_BROKER = Symbol('SAGE_OUTBOX_BROKER');
/** Outbox tuning (OutboxModuleOptions); optional. */
export const OUTBOX_OPTIONS = Symbol('SAGE_OUTBOX_OPTIONS');
/**
 * Optional `() => EntityManager | undefined` returning the ambient transaction. Not needed with
 * `@nestjs-cls/transactional` (TypeORM adapter, default connection): its TransactionHost is found
 * on its own. Provide it to override that, e.g. for a named connection:
 *
 * ```ts
 * { provide: OUTBOX_AMBIENT_TRANSACTION, inject: [getTransactionHostToken('orders')],
 *   useFactory: (host) => () => (host.isTransactionActive() ? host.tx : undefined) }
 * ```
 */
export const OUTBOX_AMBIENT_TRANSACTION = Symbol('SAGE_OUTBOX_AMBIENT_TRANSACTION');
/**
 * Optional boolean: false leaves the relay and retention loops built but not started on
 * application bootstrap, and the optimistic sender built switched off (SagaOutboxModule's
 * `autoStart: false`). Default true.
 */
export const OUTBOX_AUTO_START = Symbol('SAGE_OUTBOX_AUTO_START');

export interface OutboxModuleOptions {
  /** Largest message (payload + headers as JSON bytes). Default 1 MiB. */
  maxMessageBytes?: number;
  /** Relay tuning; `enabled: false` runs no relay in this process (e.g. relays deployed separately). */
  relay?: Omit<OutboxRelayOptions, 'store' | 'broker' | 'clock' | 'logger' | 'onBatch'> & {
    enabled?: boolean;
    /**
     * `'polling'` (default): claim → publish → mark, per key in commit order. `'wal'`:
     * messages reach the relay through PostgreSQL logical decoding, in commit order, with no
     * claim statement (needs `wal_level = logical` and outboxWalPublicationMigration(); not on
     * PGlite). docs/outbox.md#wal-streaming-relay.
     */
    mode?: OutboxRelayMode;
    /** The WAL relay's slot, publication and window (with `mode: 'wal'`). */
    wal?: WalRelayModuleOptions;
  };
  /** Retention of sent rows; `enabled: false` to leave it to another deployment. */
  retention?: Omit<OutboxRetentionOptions, 'store' | 'clock' | 'logger'> & { enabled?: boolean };
  /**
   * Optimistic sending: right after a transaction that wrote outbox rows commits, this process
   * claims and publishes them at once (the relay's claim, restricted to those rows); on failure or
   * timeout the relay takes over. Off by default; `{ enabled: true, percent: 10 }` rolls it out
   * to 10 % of messages; `types` overrides the percentage per message type. Needs a broker.
   * See docs/outbox.md, "Optimistic sending".
   */
  optimistic?: OptimisticSenderSettings;
}
