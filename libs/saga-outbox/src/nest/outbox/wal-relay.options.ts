import { InvalidOptionsError } from '../../core/errors';
import { WalRelayUnsupportedError } from '../../core/outbox/wal-relay-errors';
import type { WalOutboxRelayOptions } from '../../core/outbox/wal-outbox-relay';
import type { PostgresWalSourceOptions } from '../../persistence/postgres/postgres-wal-source';

/**
 * `outbox.relay.wal`: the WAL-streaming relay's settings (with `outbox.relay.mode: 'wal'`).
 * docs/outbox.md#wal-streaming-relay.
 */
export interface WalRelayModuleOptions
  extends
    Pick<PostgresWalSourceOptions, 'slot' | 'publication' | 'statusIntervalMs'>,
    Pick<WalOutboxRelayOptions, 'maxWindow' | 'standbyRetryMs' | 'catchUpCheckMs'> {}

/** Which relay a process runs: the polling relay (default; the only one on PGlite) or the WAL relay. */
export type OutboxRelayMode = 'polling' | 'wal';

/**
 * `outbox.relay.mode` checked with the module's options, before anything starts: a known mode,
 * not on embedded PGlite (neither `dataSource` nor `postgres`), not with optimistic sending.
 */
export function validateRelayMode(o: {
  dataSource?: unknown;
  postgres?: unknown;
  outbox?: { relay?: { mode?: unknown }; optimistic?: { enabled?: unknown } };
}): void {
  const mode = o.outbox?.relay?.mode;
  if (mode === undefined || mode === 'polling') return;
  if (mode !== 'wal')
    throw new InvalidOptionsError(
      'outbox.relay.mode',
      `must be "polling" or "wal", got ${JSON.stringify(mode)}`,
    );
  if (o.dataSource === undefined && o.postgres === undefined)
    throw new WalRelayUnsupportedError('embedded PGlite');
  if (o.outbox?.optimistic?.enabled === true) throw walWithOptimisticError();
}

/** Optimistic sending would claim rows the WAL relay publishes at their commit anyway. */
export function walWithOptimisticError(): InvalidOptionsError {
  return new InvalidOptionsError(
    'outbox.optimistic.enabled',
    'cannot be combined with outbox.relay.mode "wal": the WAL relay publishes every row at its commit already (an optimistic claim would publish it a second time); turn optimistic sending off',
  );
}
