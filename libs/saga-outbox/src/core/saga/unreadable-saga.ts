import type { SageLogger } from '../ports/logger';
import type { SagaStore } from '../ports/saga-store';
import type { DataUnreadableError } from '../protection/protection-errors';
import { SAGA_TRANSITIONS } from './saga-transitions';

/** Where a saga being driven can be failed from: the table's own transitions to `failed`. */
const FAILABLE = [...SAGA_TRANSITIONS.fail.from, ...SAGA_TRANSITIONS.failCompensation.from];

/**
 * A claimed saga whose encrypted state cannot be read (DataUnreadableError: its data subject was
 * erased, or its key is not held) can neither run forward nor compensate: it is recorded as
 * `failed` with the error (`DATA_UNREADABLE …`, naming the location, never the value) rather than
 * resumed and given back at every lease expiry for ever. Its compensations do not run: they would
 * need the same unreadable data. Fenced like every transition: a saga this worker no longer owns is
 * left alone. No saga event is emitted (the saga's name is part of what could not be loaded).
 */
export async function failUnreadableSaga<Tx>(
  store: SagaStore<Tx>,
  owner: string,
  sagaId: string,
  error: DataUnreadableError,
  logger: SageLogger,
): Promise<void> {
  const reason = `${error.code}: ${error.message}`;
  const moved = await store.transition({ sagaId, owner }, FAILABLE, 'failed', { error: reason });
  logger.error(
    moved
      ? `saga ${sagaId} failed: its stored data cannot be decrypted (${error.reason})`
      : `saga ${sagaId}: its stored data cannot be decrypted (${error.reason}); it was not failed (no longer owned here)`,
    { event: 'saga.data_unreadable', sagaId, reason: error.reason, location: error.location },
  );
}
